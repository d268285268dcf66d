"""Dependence between forecast steps, estimated from resolved windows without look-ahead.

Chronos-2 forecasts each step's marginal distribution; how the steps move *together* matters as soon as
a path-dependent augmentation (differencing, log returns) sums them back into prices. This module
measures that dependence on windows whose outcomes are known:

1. :func:`pit` - the probability integral transform of each realised (model-space) value under its
   window's per-step predictive distribution, with the inverse-CDF interpolation of
   :mod:`chronobt.augment.sampling` (linear in the level between predicted quantiles, Gaussian tails),
   and :func:`normal_scores` ``z = Phi^-1(PIT)``. For a calibrated forecast each ``z`` is N(0, 1).
2. :func:`fit_step_dependence` - a Gaussian copula on the ``h``-dim normal-score vectors (every
   window-variate pair is one observation; all variates share the matrix), either
   (a) ``"ar1"``: ``R_ij = rho^|i-j|`` with ``rho`` the mean of the sample lag-1 correlations of
   consecutive steps (pooled over the ``h - 1`` step pairs), or
   (b) ``"shrunk"``: the sample correlation shrunk toward that AR(1) matrix with the Schaefer-Strimmer
   (2005) intensity ``lambda = sum Var(r_ij) / sum (r_ij - t_ij)^2`` over off-diagonal pairs, clipped to
   [0.001, 1] and raised toward 1 until the matrix is positive definite.
   **Missing steps.** A realised value that was not observed (a forward-filled bar is NaN in the
   futures) has a NaN normal score. Rows are not dropped for it: a row enters with its finite steps
   when it has at least 2, and a window counts toward ``n_windows`` (and :data:`MIN_WINDOWS`) when at
   least one of its rows does. Correlations are pairwise-complete: pair ``(i, j)`` uses the rows where
   both steps are finite (each column standardized by the mean and sd of all its finite values), and a
   pair with fewer than 3 such rows takes the AR(1) target's value; ``rho`` averages the lag-1 pairs
   that have 3. A held-out row is scored by the copula density of its observed sub-vector. Without NaN
   this is the plain complete-data estimate, by the same arithmetic (the same numbers as before).
   Both are fitted on the earlier half of the windows and scored, with ``"independent"``, on the later
   half; the best is refitted on all windows. Holding out the later half keeps the
   ``h (h - 1) / 2``-parameter matrix from winning by overfitting, and matches how the estimate is
   used: on windows after the ones it was fitted on. The score is a ``choose`` callback's: chronobt's
   inversion (:mod:`chronobt.pipeline.uncertainty`) inverts the held-out windows under each candidate and
   scores the calibration of their *price* quantiles (measured calibration, what the dependence is
   for). Without one, the mean Gaussian-copula log-density of the held-out normal scores (a proper
   score of the dependence alone; independence scores 0).
3. :func:`resolved_before` / :func:`rolling_step_dependence` - the no-look-ahead version for a
   backtest: window ``i`` (origin = index of its last observed bar) may use window ``j`` only when
   ``origin_j + horizon <= origin_i`` (its last forecast bar was observed by then).

Below :data:`MIN_WINDOWS` resolved windows the estimate is ``"independent"`` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from chronobt.augment.pit import PIT_CLIP as PIT_CLIP
from chronobt.augment.pit import normal_scores, pit
from chronobt.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
Method = Literal["ar1", "shrunk", "independent"]

#: A choice among candidate correlations ``{"independent": I, "ar1": ..., "shrunk": ...}`` fitted on the
#: earlier half, given the later half's window indices: the chosen name and every candidate's score.
Chooser = Callable[[Mapping[str, "FloatArray"], np.ndarray], tuple[str, dict[str, float]]]

#: Fewest resolved windows for a dependence estimate (below it: independent steps).
MIN_WINDOWS = 20
#: Default refit interval of :func:`rolling_step_dependence`, in resolved windows.
REFIT_EVERY = 50
_RHO_MAX = 0.995  # |rho| bound: keeps the AR(1) matrix well conditioned for the Cholesky factor
_MIN_SHRINK = 1e-3
_MIN_PAIR = 3  # fewest rows with both steps finite for a pair's sample correlation (else: the target)


def ar1_correlation(rho: float, horizon: int) -> FloatArray:
    """The AR(1) correlation ``rho^|i-j|``, ``[horizon, horizon]``."""
    lag = np.abs(np.subtract.outer(np.arange(horizon), np.arange(horizon)))
    return np.asarray(np.power(float(rho), lag), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class StepDependence:
    """A fitted step-dependence (Gaussian copula) estimate.

    Attributes
    ----------
    method : ``"ar1"``, ``"shrunk"`` or ``"independent"``.
    rho : the AR(1) coefficient fitted on the windows (``None`` when none was fitted).
    correlation : ``[h, h]`` correlation of the normal scores (identity when independent).
    n_windows : resolved windows the estimate used: those with a row of at least 2 finite normal scores.
    reason : why the estimate is ``"independent"`` (``None`` when chosen on its merits or not independent).
    criterion : what chose among the candidates (``"calibration"``, ``"loglik"``; ``None``: no choice).
    holdout_scores : each candidate's held-out score under ``criterion`` (``None`` when not compared).
    """

    method: Method
    rho: float | None
    correlation: FloatArray
    n_windows: int
    reason: str | None = None
    criterion: str | None = None
    holdout_scores: dict[str, float] | None = field(default=None)

    def record(self) -> dict[str, Any]:
        """Strict-JSON summary: method, rho, mean off-diagonal correlation, windows, fallback reason."""
        h = self.correlation.shape[0]
        off = (self.correlation.sum() - h) / (h * (h - 1)) if h > 1 else 0.0
        return {
            "method": self.method,
            "rho": None if self.rho is None else float(self.rho),
            "mean_offdiag": float(off),
            "n_windows": int(self.n_windows),
            "fallback_reason": self.reason,
            "criterion": self.criterion,
            "holdout_scores": None
            if self.holdout_scores is None
            else {k: float(v) for k, v in self.holdout_scores.items()},
        }


def _rows(z: FloatArray) -> tuple[FloatArray, np.ndarray]:
    """Normal-score rows ``[N, h]`` with at least 2 finite steps (window-major, NaN where a step is
    missing) and the window of each row ``[N]``; with no NaN every window-variate row is kept."""
    n, v, h = z.shape
    rows = z.reshape(n * v, h)
    keep = np.isfinite(rows).sum(axis=1) >= 2
    return rows[keep], np.repeat(np.arange(n), v)[keep]


def _standardize(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Columns of ``x`` ``[N, h]`` centred and scaled by the mean and sd (ddof 1) of their own finite
    values, 0 where a value is missing (a constant column is all 0); and the finite mask as 0/1 floats."""
    ok = np.isfinite(x)
    count = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(ok, x, 0.0).sum(axis=0) / count
        dev = np.where(ok, x - mean, 0.0)
        sd = np.sqrt((dev * dev).sum(axis=0) / (count - 1))
    return np.asarray(dev / np.where(sd > 0, sd, np.inf)), ok.astype(np.float64)


def _pair_counts(ok: FloatArray) -> FloatArray:
    """``[h, h]`` rows where both steps are finite, from the 0/1 mask ``[N, h]``."""
    return np.asarray(ok.T @ ok)


def _sample_correlation(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Pairwise-complete correlation of rows ``x`` ``[N, h]`` and the joint counts ``n_ij`` ``[h, h]``.

    ``r_ij = sum_k s_ki s_kj / (n_ij - 1)`` over the rows ``k`` where both steps are finite, with the
    column standardization of :func:`_standardize` (each column's mean and sd from all its finite
    values, not re-estimated per pair); NaN where ``n_ij < 3``. Without NaN: the sample correlation.
    """
    s, ok = _standardize(x)
    n_ij = _pair_counts(ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = s.T @ s / (n_ij - 1)
    r = np.where(n_ij >= _MIN_PAIR, r, np.nan)
    np.fill_diagonal(r, 1.0)
    return np.asarray(r), n_ij


def ar1_rho(x: npt.ArrayLike) -> float:
    """AR(1) coefficient of normal-score rows ``[N, h]`` (NaN: missing step): the mean of the lag-1
    pairwise-complete correlations of :func:`_sample_correlation` over the step pairs with at least 3
    joint rows (0 when none has), bounded to ``|rho| <= 0.995``."""
    lag1 = np.diag(_sample_correlation(np.asarray(x, dtype=np.float64))[0], 1)
    lag1 = lag1[np.isfinite(lag1)]
    return float(np.clip(np.mean(lag1), -_RHO_MAX, _RHO_MAX)) if lag1.size else 0.0


def shrunk_correlation(x: npt.ArrayLike, target: npt.ArrayLike) -> tuple[FloatArray, float]:
    """Sample correlation of ``x`` ``[N, h]`` shrunk toward ``target`` ``[h, h]``; returns it and lambda.

    Schaefer & Strimmer (2005): with standardized columns and ``w_kij = x_ki x_kj``,
    ``Var(r_ij) = N / (N - 1)^3 sum_k (w_kij - mean_k w_kij)^2`` and
    ``lambda = sum_{i != j} Var(r_ij) / sum_{i != j} (r_ij - t_ij)^2``, clipped to [0.001, 1].
    With missing steps (NaN) each pair uses its ``n_ij`` pairwise-complete rows in place of ``N``
    (standardization as in :func:`_sample_correlation`); a pair with fewer than 3 takes ``t_ij`` (and
    adds nothing to either sum). A pairwise matrix need not be positive definite: while the Cholesky
    factor of the result fails, lambda moves half way to 1 (``target`` itself must be positive definite).
    """
    s, ok = _standardize(np.asarray(x, dtype=np.float64))
    n = _pair_counts(ok)
    t = np.asarray(target, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_w = s.T @ s / n
        r = n / (n - 1) * mean_w
        sq = s * s
        var_r = n / (n - 1) ** 3 * (sq.T @ sq - n * mean_w**2)
    few = n < _MIN_PAIR
    r = np.where(few, t, r)
    np.fill_diagonal(r, 1.0)
    off = ~np.eye(s.shape[1], dtype=bool)
    denom = float(np.sum((r - t)[off] ** 2))
    lam = 1.0 if denom <= 0 else float(np.clip(var_r[off & ~few].sum() / denom, _MIN_SHRINK, 1.0))
    for _ in range(60):  # 1 - lambda halves each time: after 60 it is below 1e-18, i.e. lambda == 1
        shrunk = np.asarray(lam * t + (1.0 - lam) * r)
        try:
            np.linalg.cholesky(shrunk)
        except np.linalg.LinAlgError:
            lam += (1.0 - lam) / 2
            continue
        return shrunk, lam
    return t.copy(), 1.0


def copula_loglik(x: npt.ArrayLike, correlation: npt.ArrayLike) -> float:
    """Mean Gaussian-copula log-density ``-log|R| / 2 - z'(R^-1 - I) z / 2`` of rows ``x`` ``[N, h]``.

    A row with missing steps (NaN) scores its observed sub-vector under the matching sub-matrix of ``R``
    (the copula density of its observed margins); a row with fewer than 2 observed steps scores 0. The
    mean is over all ``N`` rows; rows sharing a pattern of missing steps are scored together.
    """
    z = np.asarray(x, dtype=np.float64)
    corr = np.asarray(correlation, dtype=np.float64)
    ok = np.isfinite(z)
    patterns, group = np.unique(ok, axis=0, return_inverse=True)
    group = group.reshape(-1)
    total = 0.0
    for p, observed in enumerate(patterns):
        if observed.sum() < 2:
            continue
        members = group == p
        sub = z if members.all() and observed.all() else z[np.ix_(members, observed)]
        chol = np.linalg.cholesky(corr[np.ix_(observed, observed)])
        white = np.linalg.solve(chol, sub.T)  # [h_obs, N_p]: L^-1 z, so z' R^-1 z = |L^-1 z|^2
        quad = np.sum(white**2, axis=0) - np.sum(sub**2, axis=1)
        total += members.sum() / z.shape[0] * float(-np.log(np.diag(chol)).sum() - 0.5 * quad.mean())
    return total


def _independent(h: int, n_windows: int, reason: str | None, rho: float | None = None) -> StepDependence:
    return StepDependence("independent", rho, np.eye(h), n_windows, reason)


def _candidates(x: FloatArray) -> dict[str, tuple[FloatArray, float]]:
    rho = ar1_rho(x)
    target = ar1_correlation(rho, x.shape[1])
    return {"ar1": (target, rho), "shrunk": (shrunk_correlation(x, target)[0], rho)}


@dataclass(frozen=True, eq=False)
class PendingFit:
    """A fit waiting for its choice: the candidates fitted on the earlier half, the later half's windows.

    Attributes
    ----------
    x : ``[N, h]`` normal-score rows with at least 2 finite steps; ``n_windows``: windows with such a row.
    fitted : ``{"independent": I, "ar1": ..., "shrunk": ...}`` fitted on the earlier half.
    held : the later half's window indices (into ``z``, windows with a usable row only).
    later : ``[N]`` whether each row of ``x`` is in the later half.
    """

    x: FloatArray
    n_windows: int
    fitted: dict[str, FloatArray]
    held: np.ndarray
    later: np.ndarray


#: A choice for many fits at once: ``[(candidates, held)]`` -> ``[(name, scores)]``, one per fit, the
#: same as calling a :data:`Chooser` on each (a batch lets the caller invert every fit's held-out
#: windows together, e.g. each window's independent paths once for all fits).
BatchChooser = Callable[
    [Sequence[tuple[Mapping[str, "FloatArray"], np.ndarray]]], list[tuple[str, dict[str, float]]]
]


def prepare_fit(z: npt.ArrayLike, *, min_windows: int = MIN_WINDOWS) -> StepDependence | PendingFit:
    """The first half of :func:`fit_step_dependence`: the independent result when no choice is needed,
    else the candidates to choose among (:class:`PendingFit`)."""
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"normal scores must be [windows, variates, horizon], got {arr.shape}")
    if min_windows < 4:
        raise ConfigError(f"min_windows must be >= 4 (two per half), got {min_windows}")
    h = arr.shape[-1]
    x, window = _rows(arr)
    windows = np.unique(window)
    n_windows = int(windows.size)
    if h == 1:
        return _independent(h, n_windows, "a one-step horizon has no step dependence")
    if n_windows < min_windows:
        return _independent(
            h, n_windows, f"{n_windows} resolved windows, fewer than the {min_windows} needed"
        )
    later = window >= windows[n_windows // 2]
    fitted = {"independent": np.eye(h)} | {name: r for name, (r, _) in _candidates(x[~later]).items()}
    return PendingFit(x, n_windows, fitted, windows[n_windows // 2 :], later)


def finish_fit(pending: PendingFit, choice: tuple[str, dict[str, float]] | None = None) -> StepDependence:
    """The second half of :func:`fit_step_dependence`: the chosen candidate refitted on every window.

    ``choice``: ``(name, scores)`` from a chooser (criterion ``"calibration"``); ``None``: chosen by
    held-out copula log-density (criterion ``"loglik"``).
    """
    x, h = pending.x, pending.x.shape[1]
    if choice is None:
        scores = {name: copula_loglik(x[pending.later], r) for name, r in pending.fitted.items()}
        best = max(scores, key=lambda name: scores[name])  # ties keep the first (simpler)
        criterion = "loglik"
    else:
        (best, scores), criterion = choice, "calibration"
    final = _candidates(x)
    rho = final["ar1"][1]
    if best == "independent":
        return StepDependence("independent", rho, np.eye(h), pending.n_windows, None, criterion, scores)
    method: Method = "ar1" if best == "ar1" else "shrunk"
    return StepDependence(method, rho, final[best][0], pending.n_windows, None, criterion, scores)


def fit_step_dependence(
    z: npt.ArrayLike, *, min_windows: int = MIN_WINDOWS, choose: Chooser | None = None
) -> StepDependence:
    """Fit the Gaussian copula of the steps on normal scores ``z`` ``[windows, variates, h]``.

    Windows are in ascending origin order (the held-out half is the later one); NaN marks a missing
    step, and a window-variate row with fewer than 2 finite steps is left out (see "Missing steps" in
    the module docstring). See the module docstring for the candidates and the choice: ``choose``
    gets the candidates fitted on the earlier half and the later half's window indices (into ``z``,
    windows with a usable row only); ``None`` chooses by held-out copula log-density. Fewer than
    ``min_windows`` windows with a usable row (or ``h == 1``) gives ``"independent"`` with the reason.
    """
    pending = prepare_fit(z, min_windows=min_windows)
    if isinstance(pending, StepDependence):
        return pending
    return finish_fit(pending, None if choose is None else choose(pending.fitted, pending.held))


def resolved_before(origins: npt.ArrayLike, horizon: int) -> npt.NDArray[np.int64]:
    """For each window ``i``, how many earlier windows were fully realised by its origin ``[w]``.

    Origins are ascending bar indices of each window's last observed bar; window ``j`` is resolved at
    window ``i`` when ``origin_j + horizon <= origin_i``. Because origins ascend, the resolved windows
    of ``i`` are exactly the prefix ``0 .. count_i - 1``.
    """
    o = np.asarray(origins, dtype=np.int64)
    if o.ndim != 1 or np.any(np.diff(o) <= 0):
        raise ConfigError("origins must be a strictly ascending [windows] array of bar indices")
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1, got {horizon}")
    return np.asarray(np.searchsorted(o + horizon, o, side="right"), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class RollingDependence:
    """Per-window step dependence: window ``i`` uses ``fits[fit_of[i]]``, fitted on ``counts[i]`` windows.

    ``counts[i]`` (<= the windows resolved at origin ``i``) is the prefix the fit saw.
    """

    fits: tuple[StepDependence, ...]
    fit_of: npt.NDArray[np.int64]  # [w]
    counts: npt.NDArray[np.int64]  # [w]
    refit_every: int
    min_windows: int

    def matrices(self) -> FloatArray:
        """``[n_fits, h, h]``: each fit's correlation; window ``i`` uses ``matrices()[fit_of[i]]``."""
        return np.stack([f.correlation for f in self.fits])

    def correlations(self) -> FloatArray:
        """``[w, h, h]``: each window's correlation (identical matrices for windows sharing a fit)."""
        return self.matrices()[self.fit_of]

    def record(self) -> dict[str, Any]:
        """Strict JSON: refit settings, windows per method, and the latest fit's :meth:`record`."""
        methods = [self.fits[i].method for i in self.fit_of]
        return {
            "refit_every": self.refit_every,
            "min_windows": self.min_windows,
            "n_fits": len(self.fits),
            "windows_per_method": {m: methods.count(m) for m in sorted(set(methods))},
            "latest": self.fits[int(self.fit_of[-1])].record(),
        }


def rolling_step_dependence(
    z: npt.ArrayLike,
    origins: npt.ArrayLike,
    horizon: int,
    *,
    min_windows: int = MIN_WINDOWS,
    refit_every: int = REFIT_EVERY,
    choose: Chooser | None = None,
    choose_all: BatchChooser | None = None,
) -> RollingDependence:
    """Step dependence of every window from the windows resolved before it (no look-ahead).

    ``z`` ``[w, v, h]`` normal scores of all windows (ascending origins ``[w]``). Window ``i`` with
    ``c_i`` resolved windows (:func:`resolved_before`) uses the fit on the first ``u_i`` windows, where
    ``u_i = c_i`` below ``min_windows`` (independent) and otherwise the latest refit point
    ``min_windows + m * refit_every <= c_i``: windows between refit points share one fit, so at most
    ``w / refit_every`` fits are made, and ``z[j]`` for ``j >= c_i`` never reaches window ``i``.
    Each refit point is chosen once: by ``choose`` per point, or by ``choose_all`` for every point in one
    batch (the same choices when it scores each point as ``choose`` would), else by log-density.
    """
    arr = np.asarray(z, dtype=np.float64)
    if refit_every < 1:
        raise ConfigError(f"refit_every must be >= 1, got {refit_every}")
    counts = resolved_before(origins, horizon)
    if counts.size != arr.shape[0]:
        raise ValueError(f"{counts.size} origins for {arr.shape[0]} windows")
    used = np.where(
        counts < min_windows, counts, min_windows + (counts - min_windows) // refit_every * refit_every
    )
    points, fit_of = np.unique(used, return_inverse=True)
    prepared = [prepare_fit(arr[: int(u)], min_windows=min_windows) for u in points]
    pending = [p for p in prepared if isinstance(p, PendingFit)]
    if choose_all is not None:  # every refit point's choice in one batch
        choices: list[tuple[str, dict[str, float]] | None] = list(
            choose_all([(p.fitted, p.held) for p in pending]) if pending else []
        )
    else:
        choices = [None if choose is None else choose(p.fitted, p.held) for p in pending]
    chosen = iter(choices)
    fits = tuple(p if isinstance(p, StepDependence) else finish_fit(p, next(chosen)) for p in prepared)
    return RollingDependence(fits, fit_of.astype(np.int64), used.astype(np.int64), refit_every, min_windows)


def rolling_dependence(
    *,
    quantiles: npt.ArrayLike,
    levels: Sequence[float],
    actual: npt.ArrayLike,
    origins: npt.ArrayLike,
    horizon: int,
    min_windows: int = MIN_WINDOWS,
    refit_every: int = REFIT_EVERY,
    choose: Chooser | None = None,
    choose_all: BatchChooser | None = None,
) -> RollingDependence:
    """:func:`rolling_step_dependence` of the normal scores of :func:`pit` (model-space quantiles
    ``[w, v, Q, h]`` and realised model-space values ``[w, v, h]``, e.g. ``transform_future``)."""
    z = normal_scores(pit(quantiles=quantiles, levels=levels, actual=actual))
    return rolling_step_dependence(
        z,
        origins,
        horizon,
        min_windows=min_windows,
        refit_every=refit_every,
        choose=choose,
        choose_all=choose_all,
    )
