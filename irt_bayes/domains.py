"""Which dataset (domain) a query belongs to, from its embedding alone.

A router sees only the query text: real traffic carries no ``dataset`` label. The model's
dataset-indexed terms (dataset level, LLM x dataset offsets, guessing) are therefore fed,
for a new query, a *posterior over datasets* ``P(d | x)`` from :class:`DomainModel`, and
prediction marginalises over it (:mod:`irt_bayes.predict`). Labels in the training data
are used to fit it; a label on a new query is used only when asked (``use_labels``).

* With labels: a multinomial logistic regression on the first 32 standardised principal
  components of the embedding, its inverse regularisation ``C`` chosen by
  cross-validated log loss (stratified folds) so that the probabilities are calibrated,
  not a hard nearest-neighbour pick. (On the whole 384-d embedding the same regression
  over-fits: cross-validated log loss 0.72 against 0.12 on RouterBench's clusters, and it
  took ten times longer.)
* Without labels: the training queries are split into latent clusters (k-means on the
  unit embeddings, i.e. by cosine similarity), which then play the role of datasets:
  the model learns a difficulty level and LLM offsets per cluster, and new queries get
  the same calibrated classifier over clusters. This is how a model trained on
  unlabelled logs still finds domain structure.
* ``mode="labels+clusters"``: each labelled dataset is split into its own clusters
  (``dataset/cluster-k``), so a broad dataset (MMLU's 57 subjects) gets finer domains
  while queries of different datasets are never pooled. ``parents`` maps each domain back
  to its dataset label.

Which mode is the default was decided by cross-validation on the training files
(``benchmarks/selection.py``).

The fitted classifier is stored as plain arrays (coefficients, intercepts), so loading a
saved router runs no code from the file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import softmax

from irt_bayes.errors import DataError
from irt_bayes.features import EmbeddingFeatures

__all__ = ["DOMAIN_MODES", "DomainModel", "cluster_count"]

# Candidate inverse regularisations of the dataset classifier, searched by CV log loss,
# and the principal components it reads.
_CS = (1.0, 3.0, 10.0, 30.0)
_MAX_FOLDS = 3
_CLASSIFIER_DIMS = 32
# How training queries are grouped into the model's datasets.
DOMAIN_MODES = ("labels", "clusters", "labels+clusters")


def cluster_count(n_queries: int, low: int = 2) -> int:
    """Latent clusters for ``n_queries`` training queries.

    About one cluster per 150 queries, between ``low`` and 8: each cluster needs enough
    queries for its LLM offsets to be estimated (the offsets of a cluster of 100
    queries have a posterior sd of about 0.3 logits here).
    """
    return int(np.clip(round(n_queries / 150), low, 8))


@dataclass(frozen=True)
class DomainModel:
    """A calibrated classifier of a query's dataset (or latent cluster) from its embedding.

    Attributes
    ----------
    names : list of str
        The datasets, in the order of the model's ``dataset`` coordinate.
    coef : numpy.ndarray
        (D, F) logistic-regression weights on the embedding's principal components
        (zeros for D = 1).
    intercept : numpy.ndarray
        (D,) intercepts.
    source : str
        ``"labels"``, ``"clusters"`` or ``"labels+clusters"``.
    C : float
        Inverse regularisation chosen by cross-validation (NaN when not fitted by CV).
    parents : list of str or None
        The dataset label each domain belongs to (None when the domains are plain
        labels or clusters of unlabelled data).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emb = np.vstack([rng.normal(1, 1, (40, 8)), rng.normal(-1, 1, (40, 8))])
    >>> emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    >>> labels = np.array(["a"] * 40 + ["b"] * 40)
    >>> dom = DomainModel.fit(emb, labels)
    >>> dom.names, dom.predict_proba(emb[:1]).round(2).tolist()  # doctest: +SKIP
    (['a', 'b'], [[0.99, 0.01]])
    """

    names: list[str]
    coef: np.ndarray
    intercept: np.ndarray
    source: str = "labels"
    C: float = float("nan")
    parents: list[str] | None = None
    features: EmbeddingFeatures | None = None

    @property
    def n_domains(self) -> int:
        """Number of datasets or clusters."""
        return len(self.names)

    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        labels: np.ndarray | None,
        *,
        mode: str = "labels",
        names: list[str] | None = None,
        n_clusters: int | None = None,
        seed: int = 0,
    ) -> tuple[DomainModel, np.ndarray]:
        """Fit on the training queries; cluster them as ``mode`` says.

        Parameters
        ----------
        embeddings : numpy.ndarray
            (Q, dim) unit-norm embeddings of the training queries.
        labels : numpy.ndarray or None
            (Q,) dataset labels, or None (then the domains are latent clusters).
        mode : {"labels", "clusters", "labels+clusters"}
            With labels: use them, ignore them for clusters, or split each into clusters.
        names : list of str, optional
            Order of the datasets (the model's coordinate); default first appearance.
        n_clusters : int, optional
            Clusters of unlabelled data (or per dataset); default :func:`cluster_count`.
        seed : int
            Seed of the k-means initialisation.

        Returns
        -------
        domain_model : DomainModel
        labels : numpy.ndarray
            (Q,) the domain of each training query.
        """
        if mode not in DOMAIN_MODES:
            raise DataError(f"unknown domain mode {mode!r}; use one of {DOMAIN_MODES}")
        emb = np.asarray(embeddings, dtype=np.float64)
        source, parents = "labels", None
        if labels is None or mode == "clusters":
            source = "clusters"
            k = min(n_clusters or cluster_count(len(emb)), len(emb))
            labels = _kmeans_labels(emb, k, seed)
        elif mode == "labels+clusters":
            source = "labels+clusters"
            labels = np.asarray(labels).astype(str)
            cells = labels.astype(object).copy()
            for lab in pd.unique(labels):
                rows = np.flatnonzero(labels == lab)
                k = min(n_clusters or cluster_count(len(rows), low=1), len(rows))
                if k > 1:
                    cells[rows] = [f"{lab}/{c}" for c in _kmeans_labels(emb[rows], k, seed)]
            parent_of = dict(zip(cells, labels, strict=True))
            labels = cells.astype(str)
        labels = np.asarray(labels).astype(str)
        names = list(pd.unique(labels)) if names is None else list(names)
        idx = pd.Index(names).get_indexer(labels)
        if (idx < 0).any():
            raise DataError(f"dataset {labels[idx < 0][0]!r} is not among {names}")
        if source == "labels+clusters":
            parents = [str(parent_of[n]) for n in names]
        D = len(names)
        feats = EmbeddingFeatures.fit(emb, _CLASSIFIER_DIMS)
        if D == 1:
            coef = np.zeros((1, feats.n_features))
            return cls(names, coef, np.zeros(1), source, parents=parents, features=feats), labels
        coef, icpt, C = _fit_classifier(feats.transform(emb), idx, D, seed)
        return cls(names, coef, icpt, source, C, parents, feats), labels

    def label_of(self, domain: int) -> str:
        """The dataset label of a domain (the domain itself unless clusters refine labels)."""
        return self.names[domain] if self.parents is None else self.parents[domain]

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, D) probability of each dataset for each query."""
        emb = np.asarray(embeddings, dtype=np.float64)
        if self.n_domains == 1:
            return np.ones((emb.shape[0], 1))
        return softmax(self.features.transform(emb) @ self.coef.T + self.intercept, axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for ``np.savez`` (names go to router.json)."""
        out = {"coef": self.coef, "intercept": self.intercept}
        out.update({f"pca_{k}": v for k, v in self.features.to_arrays().items()})
        return out

    @classmethod
    def from_arrays(
        cls,
        names: list[str],
        arrays: dict[str, np.ndarray],
        source: str,
        C: float,
        parents: list[str] | None = None,
    ) -> DomainModel:
        """Inverse of :meth:`to_arrays`."""
        feats = EmbeddingFeatures.from_arrays(
            {k[4:]: v for k, v in arrays.items() if k[:4] == "pca_"}
        )
        return cls(
            list(names),
            np.asarray(arrays["coef"]),
            np.asarray(arrays["intercept"]),
            source,
            C,
            None if parents is None else list(parents),
            feats,
        )


def _kmeans_labels(emb: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(emb)
    # name clusters by size, largest first, so refits give stable names
    order = np.argsort(-np.bincount(km.labels_, minlength=k), kind="stable")
    rank = np.empty(k, dtype=int)
    rank[order] = np.arange(k)
    return np.array([f"cluster-{rank[c]}" for c in km.labels_])


def _fit_classifier(
    emb: np.ndarray, y: np.ndarray, n_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Multinomial logistic regression with C chosen by stratified CV log loss."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(y, minlength=n_classes)
    folds = int(min(_MAX_FOLDS, counts.min()))
    best_C = _CS[len(_CS) // 2]
    if folds >= 2:
        loss = dict.fromkeys(_CS, 0.0)
        split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(emb, y)
        for fit_idx, val_idx in split:
            for C in _CS:
                m = LogisticRegression(C=C, max_iter=500).fit(emb[fit_idx], y[fit_idx])
                p = np.full((len(val_idx), n_classes), 1e-12)
                p[:, m.classes_] = np.clip(m.predict_proba(emb[val_idx]), 1e-12, 1.0)
                loss[C] -= float(np.log(p[np.arange(len(val_idx)), y[val_idx]]).sum())
        best_C = min(loss, key=loss.__getitem__)
    m = LogisticRegression(C=best_C, max_iter=500).fit(emb, y)
    coef = np.zeros((n_classes, emb.shape[1]))
    icpt = np.full(n_classes, -30.0)  # a class absent from the fit gets ~0 probability
    if len(m.classes_) == 2:
        # binary: scikit-learn keeps one row; the softmax of (0, z) is the same model
        lo, hi = m.classes_
        coef[hi], icpt[hi], icpt[lo] = m.coef_[0], m.intercept_[0], 0.0
    else:
        coef[m.classes_], icpt[m.classes_] = m.coef_, m.intercept_
    return coef, icpt, float(best_C)
