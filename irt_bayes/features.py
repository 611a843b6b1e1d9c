"""Dimension reduction of query embeddings into the model's features.

The model conditions difficulty and discrimination on a few dozen standardised
principal components of the sentence embedding, fitted on the training queries, so
that slope priors are on a known scale and new queries map into the same space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irt_bayes.errors import DataError

__all__ = ["EmbeddingFeatures"]


@dataclass(frozen=True)
class EmbeddingFeatures:
    """PCA of embeddings followed by scaling each component to unit variance.

    Parameters
    ----------
    mean : numpy.ndarray
        (dim,) mean embedding of the training queries.
    components : numpy.ndarray
        (n_features, dim) orthonormal principal axes.
    scale : numpy.ndarray
        (n_features,) standard deviation of each component on the training queries.

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.random.default_rng(0).normal(size=(100, 16))
    >>> feats = EmbeddingFeatures.fit(emb, n_features=4)
    >>> x = feats.transform(emb)
    >>> x.shape, bool(np.allclose(x.std(axis=0), 1.0))
    ((100, 4), True)
    """

    mean: np.ndarray
    components: np.ndarray
    scale: np.ndarray

    @property
    def n_features(self) -> int:
        """Number of output features."""
        return int(self.components.shape[0])

    @property
    def dim(self) -> int:
        """Embedding dimension expected on input."""
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, embeddings: np.ndarray, n_features: int) -> EmbeddingFeatures:
        """Fit the PCA on training embeddings.

        Parameters
        ----------
        embeddings : numpy.ndarray
            (n_queries, dim) array.
        n_features : int
            Components to keep; capped at ``min(n_queries - 1, dim)``.

        Returns
        -------
        EmbeddingFeatures
        """
        emb = np.asarray(embeddings, dtype=np.float64)
        n, dim = emb.shape
        k = max(0, min(n_features, n - 1, dim))
        mean = emb.mean(axis=0)
        if k == 0:
            return cls(mean, np.zeros((0, dim)), np.ones(0))
        _, s, vt = np.linalg.svd(emb - mean, full_matrices=False)
        comps = vt[:k]
        # Fix the sign of each axis so refits on the same data give the same features.
        signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
        comps = comps * signs[:, None]
        scale = s[:k] / np.sqrt(max(n - 1, 1))
        scale = np.where(scale > 1e-12, scale, 1.0)
        return cls(mean, comps, scale)

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Map embeddings to standardised components, (n, n_features) float64."""
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[1] != self.dim:
            raise DataError(
                f"embeddings have shape {emb.shape}, expected (n, {self.dim}): "
                "was the router fitted with another encoder?"
            )
        return (emb - self.mean) @ self.components.T / self.scale

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for saving (``np.savez``)."""
        return {"mean": self.mean, "components": self.components, "scale": self.scale}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> EmbeddingFeatures:
        """Inverse of :meth:`to_arrays`."""
        return cls(
            np.asarray(arrays["mean"]),
            np.asarray(arrays["components"]),
            np.asarray(arrays["scale"]),
        )
