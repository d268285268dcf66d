"""Inverse-CDF interpolation of quantile forecasts and reading quantiles off sample paths.

A quantile forecast ``q`` at ascending ``levels`` defines each step's predictive distribution through
its inverse CDF: linear in the level between two predicted levels and, beyond the outermost levels,
linear in the *normal score* ``z = Phi^-1(level)`` through the two outermost quantiles (a Gaussian
tail matched to them: exact for normal forecasts, never a point mass at the extremes, never an
unbounded linear extrapolation). The interpolation weights depend only on the levels, so they are
computed once and shared by all windows.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from chronobt.errors import ConfigError

_NORMAL = NormalDist()

#: Paths in the pilot that brackets the order statistics to read (:func:`pilot_ranks`), and its spare
#: ranks on each side.
PILOT_PATHS = 128
PILOT_MARGIN = 8
#: Histogram bins over that bracket in :func:`read_quantiles` (a few values per bin at 4,096 paths).
READ_BINS = 2048
#: :func:`read_quantiles`' own pilot (:func:`read_plan`): paths in it, sorted by insertion, and one bin
#: per path up to :data:`READ_BINS`. A 128-path pilot and 2,048 bins cost a row of 512 paths (the
#: dependence choice's) three times what its values do; the values read are the same for any plan.
READ_PILOT = 32


def check_levels(levels: Sequence[float], n: int | None = None, *, what: str = "levels") -> np.ndarray:
    """Return ``levels`` as a float64 array after checking they are strictly ascending in (0, 1)."""
    arr = np.asarray(levels, dtype=np.float64).reshape(-1)
    if n is not None and arr.size != n:
        raise ConfigError(f"{what}: expected {n} quantile levels (one per forecast quantile), got {arr.size}")
    if arr.size == 0 or not np.all((arr > 0) & (arr < 1)):
        raise ConfigError(f"{what}: quantile levels must lie strictly between 0 and 1, got {arr.tolist()}")
    if what == "levels" and (arr.size < 2 or np.any(np.diff(arr) <= 0)):
        raise ConfigError(f"levels must be strictly ascending with at least two, got {arr.tolist()}")
    return arr


def _segments(levels: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment ``i`` [K] and fraction ``f`` [K]: the value at a target is ``(1-f) q[i] + f q[i+1]``.

    Inside [levels[0], levels[-1]] the fraction is linear in the level; outside it is linear in the
    normal score through the two outermost levels (see the module docstring).
    """
    seg = np.clip(np.searchsorted(levels, targets, side="right") - 1, 0, levels.size - 2)
    lo, hi = levels[seg], levels[seg + 1]
    frac = (targets - lo) / (hi - lo)
    outside = (targets < levels[0]) | (targets > levels[-1])
    if outside.any():
        z = np.array([_NORMAL.inv_cdf(float(t)) for t in targets[outside]])
        z_lo = np.array([_NORMAL.inv_cdf(float(t)) for t in lo[outside]])
        z_hi = np.array([_NORMAL.inv_cdf(float(t)) for t in hi[outside]])
        frac[outside] = (z - z_lo) / (z_hi - z_lo)
    return seg, frac


def interpolate_quantiles(q: np.ndarray, levels: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Quantiles [..., Q, h] at ``levels`` -> [..., K, h] at ``targets`` (inverse-CDF interpolation).

    A target equal to one of ``levels`` is that quantile exactly (also when a neighbouring quantile is
    infinite: no ``0 * inf``); in between, ``(1 - f) q[i] + f q[i + 1]`` (see :func:`_segments`).
    """
    seg, frac = _segments(levels, targets)  # [K] each
    lo, hi = np.take(q, seg, axis=-2), np.take(q, seg + 1, axis=-2)  # [..., K, h]
    f = frac[:, None]  # [K, 1] over the horizon
    with np.errstate(invalid="ignore"):
        mixed = (1.0 - f) * lo + f * hi
    return np.where(f == 0.0, lo, np.where(f == 1.0, hi, mixed))


def stratified_draws(
    levels: np.ndarray, n_paths: int, horizon: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Segments and fractions [horizon, n_paths] of Latin-hypercube draws with independent steps.

    At step ``k`` path ``j`` takes the predictive value at the stratum midpoint
    ``u = (pi_k(j) + 0.5) / n_paths``, where ``pi_k`` is a random permutation per step drawn from
    ``seed``. Each step's marginal is an exact stratified sample of its forecast, the pairing across
    steps is a random (independent) coupling, and the permutations are shared by all windows, so a
    window's result depends neither on the other windows in the call nor on chunking.
    """
    seg, frac = _segments(levels, (np.arange(n_paths) + 0.5) / n_paths)
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.broadcast_to(np.arange(n_paths), (horizon, n_paths)), axis=1)
    return seg[perms], frac[perms]


def check_correlation(correlation: object, horizon: int, n_windows: int) -> np.ndarray:
    """Return a step correlation ``[h, h]`` or per-window ``[w, h, h]`` as float64 after checking it.

    Raises :class:`ConfigError` unless it is symmetric with a unit diagonal and positive definite.
    """
    r = np.asarray(correlation, dtype=np.float64)
    if r.shape not in ((horizon, horizon), (n_windows, horizon, horizon)):
        raise ConfigError(
            f"correlation must be [{horizon}, {horizon}] or [{n_windows}, {horizon}, {horizon}] "
            f"(steps x steps, optionally per window), got {list(r.shape)}"
        )
    diag = np.diagonal(r, axis1=-2, axis2=-1)
    if not np.all(np.isfinite(r)) or not np.allclose(diag, 1.0, atol=1e-8):
        raise ConfigError("correlation must be finite with ones on the diagonal")
    if not np.allclose(r, np.swapaxes(r, -1, -2), atol=1e-8):
        raise ConfigError("correlation must be symmetric")
    try:
        np.linalg.cholesky(r)
    except np.linalg.LinAlgError:
        raise ConfigError("correlation must be positive definite (use |rho| < 1 or shrink it)") from None
    return r


def copula_draws(
    levels: np.ndarray, n_paths: int, correlation: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Segments and fractions [horizon, n_paths] of Latin-hypercube draws coupled by a Gaussian copula.

    ``n_paths`` standard normal vectors ``g`` [P, h] (from ``seed``) become correlated normals
    ``y = L g`` with ``L`` the Cholesky factor of ``correlation`` [h, h]; each step then takes the same
    stratum midpoints ``(j + 0.5) / n_paths`` as :func:`stratified_draws`, assigned to the paths in the
    rank order of that step's ``y`` (Iman & Conover, 1982). Every step's marginal stays an exact
    stratified sample and the paths carry the copula's rank dependence (identity: independent steps,
    ``rho -> 1``: comonotonic). The draws depend only on the levels, the matrix and the seed.

    ``correlation`` ``[m, h, h]`` gives each matrix's draws, ``[m, h, n_paths]`` each: the same as one
    call per matrix, with the normals and the strata made once.
    """
    matrices = np.asarray(correlation, dtype=np.float64)
    stack = matrices.reshape(-1, *matrices.shape[-2:])
    m, h = stack.shape[0], stack.shape[-1]
    g = np.random.default_rng(seed).standard_normal((n_paths, h))
    seg, frac = _segments(levels, (np.arange(n_paths) + 0.5) / n_paths)
    out_seg, out_frac = np.empty((m, h, n_paths), dtype=seg.dtype), np.empty((m, h, n_paths))
    for i in range(m):
        chol = np.linalg.cholesky(stack[i])
        order = _stable_argsort_rows(np.ascontiguousarray((g @ chol.T).T))  # [h, P]
        # the path of rank j at step k takes stratum j: out[k, order[k, j]] = strata[j]
        np.put_along_axis(out_seg[i], order, seg[None, :], axis=1)
        np.put_along_axis(out_frac[i], order, frac[None, :], axis=1)
    shape = (*matrices.shape[:-2], h, n_paths)
    return out_seg.reshape(shape), out_frac.reshape(shape)


def _stable_argsort_rows(x: np.ndarray) -> np.ndarray:
    """``np.argsort(x, axis=1, kind="stable")`` of ``x`` ``[rows, n]``: numpy's default sort (vectorized,
    3x faster here) when no row has two equal values or a NaN, where every sort orders alike."""
    order = np.argsort(x, axis=1)
    ordered = np.take_along_axis(x, order, axis=1)
    if (ordered[:, 1:] == ordered[:, :-1]).any() or np.isnan(ordered[:, -1]).any():
        return np.argsort(x, axis=1, kind="stable")
    return order


def sample_steps(
    q_tf: np.ndarray, seg: np.ndarray, frac: np.ndarray, *, out: np.ndarray | None = None
) -> np.ndarray:
    """Sampled step values [h, rows, P] from per-step quantiles ``q_tf`` [h, rows, Q] (into ``out``).

    ``q[seg] + (q[seg + 1] - q[seg]) * frac`` for the segments and fractions ``[h, P]`` of
    :func:`stratified_draws` or :func:`copula_draws`, in one compiled pass
    (:func:`compiled` ``draw_steps``, C or numba; numpy needs a gather and two strided passes).
    """
    draw_steps = compiled("draw_steps")
    q = _kernel_array(q_tf, np.float64)
    h, rows, n_q = q.shape
    seg_k, frac_k = _kernel_array(seg, np.int64), _kernel_array(frac, np.float64)
    if seg_k.ndim != 2 or seg_k.shape != frac_k.shape or seg_k.shape[0] != h:
        raise ValueError(f"seg and frac must both be [{h}, paths], got {seg.shape} and {frac.shape}")
    _check_segments(draw_steps, seg_k, n_q)
    shape = (h, rows, seg_k.shape[1])
    if out is None:
        out = np.empty(shape)
    elif (
        out.shape != shape or out.dtype != np.float64 or not (out.flags.c_contiguous and out.flags.writeable)
    ):
        raise ValueError(f"out must be a writeable C-contiguous float64 array of shape {shape}")
    draw_steps(q, seg_k, frac_k, out)
    return out


def _check_segments(loop: Callable[..., Any], seg: np.ndarray, n_q: int) -> None:
    """The segments' range, ``0 .. n_q - 2``, for the numba loops (the C ones check it themselves)."""
    from chronobt.augment import loops

    if loop is loops.draw_steps or loop is loops.running_sum_statistics:
        return
    if seg.size and (seg.min() < 0 or seg.max() > n_q - 2):
        raise ValueError(f"segments must lie in 0..{n_q - 2} for {n_q} quantiles")


def _kernel_array(x: np.ndarray, dtype: type) -> np.ndarray:
    """``x`` as the compiled loops take it (one signature each): C-contiguous, writeable, ``dtype``."""
    return np.require(x, dtype=dtype, requirements=["C_CONTIGUOUS", "WRITEABLE", "ALIGNED"])


def hazen_positions(targets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order statistics ``lo``, ``hi`` [K] and weight ``frac`` [K] of ``targets`` among ``n`` values.

    The ``j``-th smallest of ``n`` values sits at level ``(j + 0.5) / n`` (Hazen plotting positions,
    matching the stratum midpoints of :func:`stratified_draws`); levels between two positions are
    linear interpolations and levels beyond the outermost positions take the extreme values.
    """
    pos = np.clip(np.asarray(targets, dtype=np.float64) * n - 0.5, 0.0, n - 1.0)
    lo = np.floor(pos).astype(np.intp)
    return lo, np.minimum(lo + 1, n - 1), pos - lo


def path_quantiles(paths: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Empirical quantiles [..., K] of ``paths`` [..., P] at ``targets`` (:func:`hazen_positions`), exact.

    The reference for :func:`read_quantiles` (which gives the same numbers faster).
    """
    lo, hi, frac = hazen_positions(targets, paths.shape[-1])
    ordered = np.sort(paths, axis=-1)
    return ordered[..., lo] * (1.0 - frac) + ordered[..., hi] * frac


def pilot_ranks(n: int, targets: np.ndarray, pilot: int = PILOT_PATHS) -> tuple[int, int, int]:
    """Stride and ranks of the pilot that brackets the order statistics at ``targets`` among ``n`` paths.

    The pilot is every ``stride``-th path, ``pilot`` of them (exchangeable: every step's
    strata are assigned to the paths at random); its ranks :data:`PILOT_MARGIN` beyond the outermost
    targets bound the order statistics needed with room to spare but not the outliers.
    """
    stride = max(1, n // pilot)
    m = len(range(0, n, stride))
    t = np.asarray(targets, dtype=np.float64)
    low = int(np.clip(int(np.floor(t.min() * m)) - PILOT_MARGIN, 0, m - 1))
    high = int(np.clip(int(np.ceil(t.max() * m)) + PILOT_MARGIN, 0, m - 1))
    return stride, low, high


def running_sum_quantiles(
    q_tf: np.ndarray,
    seg: np.ndarray,
    frac: np.ndarray,
    first: np.ndarray,
    targets: np.ndarray,
    *,
    sums: np.ndarray,
) -> np.ndarray:
    """:func:`read_quantiles` ``[h, rows, K]`` of the paths ``x[k] = d[k] + x[k - 1]`` from ``first``
    ``[rows]`` (differencing's inverse) of the steps ``d`` :func:`sample_steps` draws: the same
    numbers, in one compiled pass per step (:func:`compiled` ``running_sum_statistics``, C or numba)
    without the ``[h, rows, P]`` paths. ``sums``: a writeable C-contiguous float64 ``[rows, P]``
    buffer (overwritten).
    """
    running_sum_statistics = compiled("running_sum_statistics")
    q = _kernel_array(q_tf, np.float64)
    h, rows, n_q = q.shape
    seg_k, frac_k = _kernel_array(seg, np.int64), _kernel_array(frac, np.float64)
    n = seg_k.shape[-1]
    base = _kernel_array(np.asarray(first, dtype=np.float64).reshape(-1), np.float64)
    if seg_k.ndim != 2 or seg_k.shape != frac_k.shape or seg_k.shape[0] != h or base.size != rows or n < 1:
        raise ValueError(f"seg and frac [{h}, paths >= 1] and first [{rows}] expected")
    _check_segments(running_sum_statistics, seg_k, n_q)
    if (
        sums.shape != (rows, n)
        or sums.dtype != np.float64
        or not (sums.flags.c_contiguous and sums.flags.writeable)
    ):
        raise ValueError(f"sums must be a writeable C-contiguous float64 array of shape {(rows, n)}")
    ranks, low, high, w, plan = _read_setup(n, tuple(np.asarray(targets, dtype=np.float64).tolist()))
    stats = np.empty((h, rows, ranks.size))
    running_sum_statistics(q, seg_k, frac_k, base, ranks, *plan, sums, stats)
    return stats[..., low] * (1.0 - w) + stats[..., high] * w


def read_plan(n: int, targets: np.ndarray) -> tuple[int, int, int, int]:
    """The pilot (:func:`pilot_ranks` of :data:`READ_PILOT` paths: stride, low and high rank) and the
    bins (one per path, at most :data:`READ_BINS`) :func:`read_quantiles` reads rows of ``n`` paths with."""
    return (*pilot_ranks(n, targets, READ_PILOT), min(READ_BINS, max(1, n)))


def read_quantiles(paths: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """:func:`path_quantiles` of ``paths`` [..., P] (the same values), without sorting whole rows.

    The order statistics needed come from a histogram refined where they fall
    (:func:`compiled` ``order_statistics``, C or numba, bracketed and binned by :func:`read_plan`), the
    interpolation between them is :func:`path_quantiles`' own.
    """
    order_statistics = compiled("order_statistics")
    n = paths.shape[-1]
    if n < 1:
        raise ValueError("read_quantiles needs at least one path")
    flat = _kernel_array(paths.reshape(-1, n), np.float64)
    ranks, low, high, frac, plan = _read_setup(n, tuple(np.asarray(targets, dtype=np.float64).tolist()))
    stats = np.empty((flat.shape[0], ranks.size))
    order_statistics(flat, ranks, *plan, stats)
    out = stats[:, low] * (1.0 - frac) + stats[:, high] * frac
    return out.reshape(*paths.shape[:-1], -1)


@functools.lru_cache(maxsize=64)
def _read_setup(
    n: int, targets: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """For reading ``targets`` off rows of ``n`` paths (the same for every chunk of a call): the distinct
    order statistics needed (int64 ranks), the places of each target's lower and upper one among them,
    the weights of the upper ones (:func:`hazen_positions`) and the :func:`read_plan`."""
    t = np.asarray(targets, dtype=np.float64)
    lo, hi, frac = hazen_positions(t, n)
    ranks, at = np.unique(np.concatenate([lo, hi]), return_inverse=True)
    at = at.reshape(-1)
    return _kernel_array(ranks, np.int64), at[: lo.size], at[lo.size :], frac, read_plan(n, t)


_LOADED: set[str] = set()
_LOADING = threading.Lock()
#: Whether :func:`compiled` hands out the C loops where they were built (tests compare both).
PREFER_C = True


def compiled(name: str) -> Callable[..., Any]:
    """The compiled loop ``name``: the C one (:mod:`chronobt.augment.loops`) where it was built, else
    numba's (:mod:`chronobt.augment.kernels`) with its machine code loaded. The same numbers either way
    (up to the sign of a zero: :mod:`chronobt.augment.loops`).

    numba's first use in a process imports it and loads the loop (compiled once, then read from numba's
    cache) with the cyclic garbage collector paused: numba creates some 100,000 objects while loading,
    which in a process holding a model (half a million objects) set off a full collection, 0.25-0.29 s
    of a 0.6 s first call; paused, the new objects are collected young afterwards (0.03 s) and no full
    collection followed in the rest of a backtest. One thread loads while the others wait; tiny inputs
    of each loop's one signature load it (the real calls then run).
    """
    if PREFER_C:
        from chronobt.augment import loops

        function = loops.function(name)
        if function is not None:
            return function
    if name not in _LOADED:
        with _LOADING:
            if name not in _LOADED:
                enabled = gc.isenabled()
                gc.disable()
                try:
                    from chronobt.augment import kernels  # numba: imported on first use

                    _first_call(kernels, name)
                finally:
                    if enabled:
                        gc.enable()
                _LOADED.add(name)
    from chronobt.augment import kernels

    return getattr(kernels, name)


def _first_call(kernels: Any, name: str) -> None:
    """Call ``kernels.<name>`` once on one value with the argument types the wrappers pass."""
    one = np.zeros((1, 1))
    q, rank = np.zeros((1, 1, 2)), np.zeros(1, dtype=np.int64)
    seg = np.zeros((1, 1), dtype=np.int64)
    if name == "draw_steps":
        kernels.draw_steps(q, seg, one, np.zeros((1, 1, 1)))
    elif name == "order_statistics":
        kernels.order_statistics(one, rank, 1, 0, 0, 1, np.zeros((1, 1)))
    else:
        kernels.running_sum_statistics(
            q, seg, one, np.zeros(1), rank, 1, 0, 0, 1, np.zeros((1, 1)), q[..., :1].copy()
        )
