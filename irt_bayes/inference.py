"""Fitting the PyMC model: NUTS, (minibatch) ADVI, and diagnostics.

NUTS uses nutpie's numba backend by default, the fastest sampler here on CPU; PyMC's
own sampler, numpyro and blackjax (JAX, the optional 'jax' extra, on a GPU when one is
present) are the alternatives (:data:`SAMPLERS`). ADVI uses PyMC's mean-field ADVI with
Adam and stops when the ELBO stops improving.
"""

from __future__ import annotations

import itertools
import logging
import time
import warnings
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from irt_bayes import progress as _progress

__all__ = [
    "ConvergenceWarning",
    "Diagnostics",
    "SAMPLERS",
    "sample_nuts",
    "fit_advi",
    "diagnose",
    "align_skills",
    "slim_posterior",
]

# PyTensor from pip warns at every compile that it found no BLAS to link and falls back
# to NumPy's C-API (which calls NumPy's bundled BLAS). Profiled on the RouterBench 2PL
# gradient, indexing and elementwise ops dominate, and linking OpenBLAS directly moved
# an ADVI fit by about 1 s in 29 s: the warning is noise for this model.
logging.getLogger("pytensor.tensor.blas").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS", category=UserWarning)

RHAT_MAX = 1.01
ESS_MIN = 400
_MAX_NAMED = 4  # failing variables named with their numbers; the rest by name only


class ConvergenceWarning(UserWarning):
    """The posterior may not be trustworthy: R-hat, ESS, divergences or ADVI."""


@dataclass
class Diagnostics:
    """Convergence summary of a fit.

    Attributes
    ----------
    method : str
        ``"nuts"`` or ``"advi"``.
    seconds : float
        Wall time of the fit (compilation included).
    table : pandas.DataFrame
        ArviZ diagnostics (``r_hat``, ``ess_bulk``, ``ess_tail``...) of the abilities,
        one row per (LLM, skill) (NUTS only; empty for ADVI).
    variables : pandas.DataFrame
        Worst R-hat and ESS of *every* posterior variable: ``size``, ``max_r_hat``,
        ``min_ess_bulk``, ``min_ess_tail`` per variable (NUTS only).
    divergences : int
        Divergent transitions after tuning (NUTS).
    iterations : int
        ADVI iterations run (0 for NUTS).
    converged : bool
        ADVI: the ELBO stopped changing before ``max_iter``; NUTS: every check passed.
    interrupted : bool
        The fit was stopped by an interrupt and kept anyway (``fit --keep-partial``);
        ``route`` refuses such a router without ``--force``.
    """

    method: str
    seconds: float
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    divergences: int = 0
    iterations: int = 0
    converged: bool = True
    elbo_change: float = float("nan")
    variables: pd.DataFrame = field(default_factory=pd.DataFrame)
    interrupted: bool = False

    @property
    def max_rhat(self) -> float:
        """Largest ability R-hat (NaN for ADVI)."""
        return float(self.table["r_hat"].max()) if "r_hat" in self.table else float("nan")

    @property
    def min_ess_bulk(self) -> float:
        """Smallest ability bulk ESS (NaN for ADVI)."""
        return float(self.table["ess_bulk"].min()) if "ess_bulk" in self.table else float("nan")

    @property
    def min_ess_tail(self) -> float:
        """Smallest ability tail ESS (NaN for ADVI)."""
        return float(self.table["ess_tail"].min()) if "ess_tail" in self.table else float("nan")

    @property
    def failing(self) -> pd.DataFrame:
        """Variables whose worst R-hat or ESS fails the checks (NUTS)."""
        v = self.variables
        if v.empty:
            return v
        bad = (v["max_r_hat"] > RHAT_MAX) | (
            v[["min_ess_bulk", "min_ess_tail"]].min(axis=1) < ESS_MIN
        )
        return v[bad]

    @property
    def abilities_ok(self) -> bool:
        """Whether the abilities themselves pass R-hat and ESS (NUTS)."""
        if self.table.empty:
            return True
        worst_ess = min(self.min_ess_bulk, self.min_ess_tail)
        return bool(self.max_rhat <= RHAT_MAX and worst_ess >= ESS_MIN)

    @property
    def problems(self) -> list[str]:
        """What fails the checks, one phrase each (empty when all is well)."""
        out = []
        if self.method == "nuts":
            bad = self.failing.assign(
                ess=lambda d: d[["min_ess_bulk", "min_ess_tail"]].min(axis=1)
            ).sort_values(["max_r_hat", "ess"], ascending=[False, True])
            for name, r in bad.head(_MAX_NAMED).iterrows():
                out.append(f"{name} (R-hat {r['max_r_hat']:.3f}, ESS {r['ess']:.0f})")
            if len(bad) > _MAX_NAMED:
                rest = ", ".join(bad.index[_MAX_NAMED:])
                out.append(f"also {rest}")
            if self.variables.empty and not self.abilities_ok:
                out.append(
                    f"abilities (R-hat {self.max_rhat:.3f}, "
                    f"ESS {min(self.min_ess_bulk, self.min_ess_tail):.0f})"
                )
            if self.divergences:
                out.append(f"{self.divergences} divergent transitions")
        elif not self.converged:
            out.append(
                f"ADVI did not converge in {self.iterations} iterations "
                f"(last relative ELBO change {self.elbo_change:.1e})"
            )
        return out

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return not self.problems

    def verdict(self) -> str:
        """One line for humans: every parameter, and whether the abilities are affected."""
        if self.interrupted:
            return (
                f"{self.method.upper()} INTERRUPTED after {self.seconds:.1f} s and saved with "
                "--keep-partial: not converged, refit before routing"
            )
        if self.method == "advi":
            state = "converged" if self.converged else "NOT converged"
            return (
                f"ADVI {state} after {self.iterations:,} steps in {self.seconds:.1f} s, "
                "compiling included "
                "(variational fit: no R-hat; refit with NUTS for calibrated intervals)"
            )
        n_vars = len(self.variables) if not self.variables.empty else 1
        ab = (
            f"abilities max R-hat {self.max_rhat:.3f}, min ESS bulk {self.min_ess_bulk:.0f} / "
            f"tail {self.min_ess_tail:.0f}"
        )
        tail = f"{self.divergences} divergences, {self.seconds:.1f} s (compiling included)"
        if self.ok:
            return (
                f"NUTS ok: all {n_vars} variables pass R-hat <= {RHAT_MAX} and ESS >= "
                f"{ESS_MIN}; {ab}; {tail}"
            )
        affected = "abilities affected" if not self.abilities_ok else "abilities ok"
        return f"NUTS WARNING: {'; '.join(self.problems)}; {affected} ({ab}); {tail}"

    def to_dict(self) -> dict[str, float | int | str | bool]:
        """Plain numbers for metadata files."""
        return {
            "method": self.method,
            "seconds": round(self.seconds, 3),
            "divergences": self.divergences,
            "iterations": self.iterations,
            "converged": self.converged,
            "interrupted": self.interrupted,
            "max_rhat": self.max_rhat,
            "min_ess_bulk": self.min_ess_bulk,
            "min_ess_tail": self.min_ess_tail,
            "verdict": self.verdict(),
        }


def slim_posterior(idata: az.InferenceData) -> az.InferenceData:
    """Drop raw non-centred and transformed variables, keeping interpretable ones.

    Everything prediction and reports use is a deterministic (``theta``,
    ``difficulty``, ``discrimination``...) or a named scale, so the ``*_z`` / ``*_c``
    innovations and ``*__`` transformed values only cost memory and disk.
    """
    post = idata.posterior
    drop = [v for v in post.data_vars if v.endswith(("_z", "_c")) or "__" in v]
    idata.posterior = post.drop_vars(drop)
    if "unconstrained_posterior" in idata.groups():
        del idata["unconstrained_posterior"]
    return idata


def _nutpie(
    model: pm.Model,
    draws: int,
    tune: int,
    chains: int,
    seed: int,
    cores: int | None,
    progress: bool,
) -> az.InferenceData:
    import nutpie

    _progress.compile_notice(progress)
    with _progress.Heartbeat("compiling the model for NUTS (nutpie, numba)", enabled=progress):
        compiled = nutpie.compile_pymc_model(model)
    _progress.compiled()
    kwargs = {"cores": cores} if cores else {}
    # nutpie's bar redraws in place: in a log it would be one frozen line
    bar = progress and _progress.interactive()
    what = f"NUTS: {chains} chains x ({tune} warm-up + {draws} draws)"
    with _progress.Heartbeat(what, enabled=progress, quiet_in_terminal=True):
        return nutpie.sample(
            compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=bar, **kwargs
        )


def _through_pymc(name: str):
    """A sampler run by ``pm.sample(nuts_sampler=name)``; JAX ones need the 'jax' extra."""

    def run(
        model: pm.Model,
        draws: int,
        tune: int,
        chains: int,
        seed: int,
        cores: int | None,
        progress: bool,
    ) -> az.InferenceData:
        if name in ("numpyro", "blackjax"):
            import importlib.util

            missing = [m for m in ("jax", name) if importlib.util.find_spec(m) is None]
            if missing:
                from irt_bayes.errors import IrtBayesError

                raise IrtBayesError(
                    f"the {name} sampler needs {' and '.join(missing)}: pip install "
                    "'irt-bayes[jax]' (CPU; for a GPU install jax's CUDA build first)"
                )
        bar = progress and _progress.interactive()
        what = f"NUTS ({name}): {chains} chains x ({tune} warm-up + {draws} draws)"
        kwargs = {} if name in ("numpyro", "blackjax") else {"cores": cores or min(chains, 4)}
        with model, _progress.Heartbeat(what, enabled=progress, quiet_in_terminal=True):
            return pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                nuts_sampler=name,
                random_seed=seed,
                progressbar=bar,
                compute_convergence_checks=False,  # diagnose() below covers every variable
                **kwargs,
            )

    return run


# NUTS implementations: the dict is the list of valid --sampler names. nutpie (numba)
# is the default: the fastest here on CPU (benchmarks/fit.py); numpyro and blackjax run
# on JAX, on a GPU when jax's CUDA build is installed.
SAMPLERS = {
    "nutpie": _nutpie,
    "pymc": _through_pymc("pymc"),
    "numpyro": _through_pymc("numpyro"),
    "blackjax": _through_pymc("blackjax"),
}


def sample_nuts(
    model: pm.Model,
    *,
    draws: int = 500,
    tune: int = 500,
    chains: int = 4,
    seed: int = 0,
    cores: int | None = None,
    progress: bool = True,
    sampler: str = "nutpie",
) -> tuple[az.InferenceData, Diagnostics]:
    """Sample the posterior with NUTS.

    Parameters
    ----------
    model : pymc.Model
        From :func:`irt_bayes.model.build_model` (full data, no minibatches).
    draws, tune, chains : int
        Kept draws and warm-up iterations per chain, number of chains.
    seed : int
        Makes the run reproducible.
    cores : int, optional
        Chains run in parallel; default all cores.
    progress : bool
        Show the sampler's progress.
    sampler : {"nutpie", "pymc", "numpyro", "blackjax"}, default "nutpie"
        Which NUTS implementation (:data:`SAMPLERS`).

    Returns
    -------
    idata : arviz.InferenceData
    diagnostics : Diagnostics
    """
    if sampler not in SAMPLERS:
        from irt_bayes.errors import IrtBayesError

        raise IrtBayesError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    t0 = time.perf_counter()
    idata = SAMPLERS[sampler](model, draws, tune, chains, seed, cores, progress)
    idata = align_skills(slim_posterior(idata))
    diag = diagnose(idata, method="nuts", seconds=time.perf_counter() - t0)
    return idata, diag


class _ElboConvergence:
    """Stop ADVI when the mean loss stops moving between two windows of steps.

    Converged when the change is below ``tol`` relative to the loss, or below twice
    its Monte Carlo standard error (the loss is a noisy one-sample estimate, so on
    small data or minibatches a relative rule alone would never trigger), twice in a
    row.
    """

    def __init__(self, every: int = 250, tol: float = 5e-4, patience: int = 2) -> None:
        self.every, self.tol, self.patience = every, tol, patience
        self.hits = 0
        self.last_change = float("nan")
        self.stopped_at: int | None = None

    def __call__(self, approx: object, losses: np.ndarray, i: int) -> None:
        if i % self.every or i < 2 * self.every:
            return
        cur_w = np.asarray(losses[-self.every :])
        prev_w = np.asarray(losses[-2 * self.every : -self.every])
        cur, prev = cur_w.mean(), prev_w.mean()
        se = np.sqrt((cur_w.var() + prev_w.var()) / self.every)
        self.last_change = float(abs(prev - cur) / max(abs(cur), 1e-12))
        small = abs(prev - cur) < max(self.tol * abs(cur), 2.0 * se)
        self.hits = self.hits + 1 if small else 0
        if self.hits >= self.patience:
            self.stopped_at = i
            raise StopIteration


class _AdviLog:
    """ADVI progress as log lines: when compiling ended, then every ``LOG_EVERY`` s."""

    def __init__(self, max_iter: int, t0: float) -> None:
        self.max_iter, self.t0 = max_iter, t0
        self.ticker: _progress.Ticker | None = None

    def __call__(self, approx: object, losses: np.ndarray, i: int) -> None:
        if self.ticker is None:  # the first step runs once compiling is done
            took = time.perf_counter() - self.t0
            _progress.say(f"ADVI: compiled in {took:.0f} s; up to {self.max_iter:,} steps")
            self.ticker = _progress.Ticker("ADVI", self.max_iter, unit="step")
        self.ticker.set(i, f"loss {losses[-1]:,.1f}")


def fit_advi(
    model: pm.Model,
    *,
    max_iter: int = 8000,
    learning_rate: float = 0.05,
    draws: int = 1000,
    seed: int = 0,
    tol: float = 5e-4,
    progress: bool = True,
) -> tuple[az.InferenceData, Diagnostics]:
    """Fit mean-field ADVI with Adam and a convergence check.

    Parameters
    ----------
    model : pymc.Model
        Full-data or minibatch model from :func:`irt_bayes.model.build_model`.
    max_iter : int
        Upper bound on optimisation steps.
    learning_rate : float
        Adam step size.
    draws : int
        Draws taken from the fitted approximation (one chain).
    seed : int
        Makes the fit reproducible.
    tol : float
        Relative change of the mean loss between two windows of 250 steps under which
        the fit counts as converged (twice in a row).
    progress : bool
        Show PyMC's progress bar.

    Returns
    -------
    idata : arviz.InferenceData
    diagnostics : Diagnostics
        ``converged`` is False when ``max_iter`` was reached first; a
        :class:`ConvergenceWarning` is issued by the caller's :func:`warn_if_needed`.
    """
    t0 = time.perf_counter()
    check = _ElboConvergence(tol=tol)
    bar = progress and _progress.interactive()
    callbacks: list = [check]
    if progress and not bar:  # plain lines for logs, where PyMC's bar would freeze
        callbacks.append(_AdviLog(max_iter, t0))
    _progress.compile_notice(progress)
    # PyMC logs "Interrupted at N" when our check stops it early, which reads like a
    # failure; the Diagnostics verdict says what happened instead.
    pm_log = logging.getLogger("pymc")
    level = pm_log.level
    pm_log.setLevel(logging.WARNING)
    try:
        with model:
            approx = pm.fit(
                max_iter,
                method="advi",
                obj_optimizer=pm.adam(learning_rate=learning_rate),
                random_seed=seed,
                callbacks=callbacks,
                progressbar=bar,
            )
    finally:
        pm_log.setLevel(level)
    _progress.compiled()
    if progress:
        # says why a bar stopped short of 100%
        steps = len(approx.hist)  # the count the verdict reports
        how = f"converged after {steps:,} steps" if check.stopped_at else f"ran {steps:,} steps"
        _progress.say(f"ADVI {how}; drawing {draws:,} samples from the approximation")
    with model:
        idata = approx.sample(draws, random_seed=seed, return_inferencedata=True)
    idata = slim_posterior(idata)
    hist = np.asarray(approx.hist)
    idata.add_groups({"sample_stats": xr.Dataset({"loss": ("iteration", hist)})})
    diag = Diagnostics(
        method="advi",
        seconds=time.perf_counter() - t0,
        iterations=len(hist),
        converged=check.stopped_at is not None,
        elbo_change=check.last_change,
    )
    return idata, diag


def diagnose(
    idata: az.InferenceData,
    *,
    method: str = "nuts",
    seconds: float = 0.0,
    var_names: tuple[str, ...] = ("theta",),
) -> Diagnostics:
    """R-hat, bulk/tail ESS and divergences of every posterior variable.

    Parameters
    ----------
    idata : arviz.InferenceData
        With a ``posterior`` group (and ``sample_stats`` for divergences).
    method : str
        Fit method recorded in the result.
    seconds : float
        Fit wall time recorded in the result.
    var_names : tuple of str
        Variables reported element by element in ``table`` (the abilities); every
        variable of the posterior is summarised in ``variables``.

    Returns
    -------
    Diagnostics

    See Also
    --------
    arviz.summary, arviz.rhat, arviz.ess

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> rng = np.random.default_rng(0)
    >>> idata = az.from_dict(posterior={"theta": rng.normal(size=(2, 500, 3)),
    ...                                 "rho": rng.normal(size=(2, 500))})
    >>> diag = diagnose(idata)
    >>> list(diag.variables.index), diag.ok
    (['theta', 'rho'], True)
    """
    table = az.summary(idata, var_names=list(var_names), kind="diagnostics")
    post = idata.posterior[[v for v, x in idata.posterior.data_vars.items() if x.dtype.kind == "f"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single chains, constant variables
        r_all = az.rhat(post)
        eb_all, et_all = az.ess(post, method="bulk"), az.ess(post, method="tail")
    rows = {}
    for name in post.data_vars:
        if float(post[name].std()) == 0.0:
            continue  # a constant (a = 1 of the Rasch model) has nothing to converge
        rhat, ess_b, ess_t = (d[name].to_numpy() for d in (r_all, eb_all, et_all))
        rows[name] = {
            "size": int(np.size(rhat)),
            "max_r_hat": float(np.nanmax(rhat)) if np.size(rhat) else np.nan,
            "min_ess_bulk": float(np.nanmin(ess_b)) if np.size(ess_b) else np.nan,
            "min_ess_tail": float(np.nanmin(ess_t)) if np.size(ess_t) else np.nan,
        }
    variables = pd.DataFrame.from_dict(rows, orient="index")
    variables.index.name = "variable"
    div = 0
    if "sample_stats" in idata.groups() and "diverging" in idata.sample_stats:
        div = int(idata.sample_stats["diverging"].sum())
    diag = Diagnostics(
        method=method, seconds=seconds, table=table, divergences=div, variables=variables
    )
    diag.converged = diag.ok
    return diag


def warn_if_needed(diag: Diagnostics) -> None:
    """Issue one :class:`ConvergenceWarning` line when a check failed."""
    if not diag.ok:
        warnings.warn(diag.verdict(), ConvergenceWarning, stacklevel=3)


def align_skills(idata: az.InferenceData) -> az.InferenceData:
    """Relabel skills chain by chain so that every chain matches chain 0.

    With K > 1 the likelihood is invariant to permuting skills (positivity of the
    discrimination rules out other rotations), so separate chains can settle on
    different labels. Each chain gets the permutation whose mean abilities correlate
    best with chain 0's. Variables with a ``skill`` dim are permuted together.
    """
    post = idata.posterior
    if "skill" not in post.dims or post.sizes["skill"] < 2 or post.sizes.get("chain", 1) < 2:
        return idata
    K = post.sizes["skill"]
    theta = post["theta"].mean("draw").transpose("chain", "llm", "skill").to_numpy()
    ref = theta[0]
    perms = list(itertools.permutations(range(K)))
    best = []
    for c in range(theta.shape[0]):
        scores = [
            sum(np.corrcoef(ref[:, k], theta[c][:, p[k]])[0, 1] for k in range(K)) for p in perms
        ]
        best.append(perms[int(np.nanargmax(scores))])
    if all(p == tuple(range(K)) for p in best):
        return idata
    new = {}
    for name, var in post.data_vars.items():
        if "skill" not in var.dims:
            continue
        parts = [
            var.isel(chain=c).isel(skill=list(best[c])).assign_coords(skill=post["skill"])
            for c in range(len(best))
        ]
        new[name] = xr.concat(parts, dim="chain").transpose(*var.dims)
    idata.posterior = post.assign(new)
    return idata
