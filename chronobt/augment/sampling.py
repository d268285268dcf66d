"""Inverse-CDF interpolation of quantile forecasts and reading quantiles off sample paths.

A quantile forecast ``q`` at ascending ``levels`` defines each step's predictive distribution through
its inverse CDF: linear in the level between two predicted levels and, beyond the outermost levels,
linear in the *normal score* ``z = Phi^-1(level)`` through the two outermost quantiles (a Gaussian
tail matched to them: exact for normal forecasts, never a point mass at the extremes, never an
unbounded linear extrapolation). The interpolation weights depend only on the levels, so they are
computed once and shared by all windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from chronobt.errors import ConfigError

_NORMAL = NormalDist()

#: Key steps over a row's bracket in :func:`keyed_quantiles` (16-bit keys).
KEY_STEPS = 65535
#: Fewest keys between the lowest and the highest order statistic needed for a keyed read to stand.
MIN_KEY_SPAN = 4096
#: Paths in the pilot that places the bracket (:func:`key_bracket`), and its spare ranks on each side.
PILOT_PATHS = 128
PILOT_MARGIN = 8


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
    """
    chol = np.linalg.cholesky(np.asarray(correlation, dtype=np.float64))
    g = np.random.default_rng(seed).standard_normal((n_paths, chol.shape[0]))
    ranks = np.argsort(np.argsort(g @ chol.T, axis=0, kind="stable"), axis=0, kind="stable").T  # [h, P]
    seg, frac = _segments(levels, (np.arange(n_paths) + 0.5) / n_paths)
    return seg[ranks], frac[ranks]


def sample_steps(
    q_tf: np.ndarray, seg: np.ndarray, frac: np.ndarray, *, out: np.ndarray | None = None
) -> np.ndarray:
    """Sampled step values [h, rows, P] from per-step quantiles ``q_tf`` [h, rows, Q] (into ``out``).

    ``q[seg] + (q[seg + 1] - q[seg]) * frac``: one gather per step of (lower quantile, segment rise)
    pairs, packed as the real and imaginary parts of a complex table (gathers cost per element, not
    per byte: one of 16-byte pairs is ~15% faster than two of 8-byte values). A matrix product
    against the sparse weights is slower on these shapes, and BLAS threads oversubscribe small
    machines.
    """
    pairs = np.empty((*q_tf.shape[:2], q_tf.shape[2] - 1), dtype=np.complex128)  # [h, rows, Q - 1]
    pairs.real = q_tf[..., :-1]
    pairs.imag = np.diff(q_tf, axis=-1)
    if out is None:
        out = np.empty((q_tf.shape[0], q_tf.shape[1], seg.shape[1]))
    drawn = np.empty(out.shape[1:], dtype=np.complex128)  # one buffer for every step
    for k in range(q_tf.shape[0]):
        np.take(pairs[k], seg[k], axis=1, out=drawn)
        np.multiply(drawn.imag, frac[k], out=out[k])
        out[k] += drawn.real
    return out


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

    The reference for :func:`keyed_quantiles`, and its fallback for rows with a non-finite value.
    """
    lo, hi, frac = hazen_positions(targets, paths.shape[-1])
    ordered = np.sort(paths, axis=-1)
    return ordered[..., lo] * (1.0 - frac) + ordered[..., hi] * frac


def key_bracket(flat: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``flat`` ``[rows, P]``: the lowest key's value, the key step and whether keys apply.

    The bracket holds the order statistics at ``targets`` with room to spare but not the outliers: from
    a pilot of :data:`PILOT_PATHS` evenly strided paths (exchangeable: every step's strata are assigned
    to the paths at random), the values :data:`PILOT_MARGIN` pilot ranks beyond the outermost targets,
    widened by a quarter of their distance on each side. Rows holding a NaN or an infinity, and rows
    whose bracket is empty (a constant centre), are marked for an exact read.
    """
    n = flat.shape[1]
    pilot = flat[:, :: max(1, n // PILOT_PATHS)]
    m = pilot.shape[1]
    t = np.asarray(targets, dtype=np.float64)
    ranks = np.clip(
        [int(np.floor(t.min() * m)) - PILOT_MARGIN, int(np.ceil(t.max() * m)) + PILOT_MARGIN], 0, m - 1
    )
    part = np.partition(pilot, ranks, axis=1)
    a, b = part[:, ranks[0]], part[:, ranks[1]]
    with np.errstate(invalid="ignore", over="ignore"):
        low = a - 0.25 * (b - a)
        step = 1.5 * (b - a) / KEY_STEPS
        usable = np.isfinite(flat.sum(axis=1)) & np.isfinite(step) & (step > 0)
    return np.where(usable, low, 0.0), np.where(usable, step, 0.0), usable


def keyed_quantiles(
    paths: np.ndarray,
    targets: np.ndarray,
    *,
    keys: np.ndarray | None = None,
    ordered: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`path_quantiles` read off 16-bit keys: within half a key step of it.

    Each row's values are rounded to one of :data:`KEY_STEPS` + 1 evenly spaced keys over a bracket of
    the order statistics needed (:func:`key_bracket`; values beyond it take the end keys), a map that
    keeps the order. The keys are radix-sorted (numpy's stable sort of 16-bit integers: linear time,
    ~5x faster than sorting the float32 values, ~10x float64) and the order statistics read back at
    their keys. Each differs from the exact one by at most half a key step (to rounding). Rows are read
    exactly (:func:`path_quantiles`) where that bound could matter: where the bracket misses (an order
    statistic at an end key), where the needed order statistics span fewer than :data:`MIN_KEY_SPAN`
    keys (an outlier in the pilot stretched the bracket), and rows holding a NaN or an infinity or
    with a constant centre. So every keyed value is within 1/(2 * MIN_KEY_SPAN) of the spread of the
    needed order statistics (e.g. of q0.1..q0.9): for 4,096 paths, a few percent of their Monte Carlo
    error. ``keys`` (float64) and ``ordered`` (uint16), both ``[rows, P]``, are optional work buffers.
    """
    n = paths.shape[-1]
    flat = paths.reshape(-1, n)
    lo, hi, frac = hazen_positions(targets, n)
    low, step, usable = key_bracket(flat, targets)
    scale = np.divide(1.0, step, out=np.zeros_like(step), where=usable)
    with np.errstate(invalid="ignore"):
        keys = np.subtract(flat, (low - 0.5 * step)[:, None], out=keys)  # differences first: no cancellation
        keys *= scale[:, None]  # (x - low) / step + 0.5: rounded half up by the cast
        np.clip(keys, 0.0, KEY_STEPS, out=keys)
        if ordered is None:
            ordered = np.empty(flat.shape, dtype=np.uint16)
        np.copyto(ordered, keys, casting="unsafe")  # rows with a NaN get garbage keys: read exactly below
    ordered.sort(axis=-1, kind="stable")
    out = low[:, None] + (ordered[:, lo] * (1.0 - frac) + ordered[:, hi] * frac) * step[:, None]
    first, last = ordered[:, lo.min()], ordered[:, hi.max()]
    missed = ~(usable & (first > 0) & (last < KEY_STEPS) & (last - first.astype(np.int64) >= MIN_KEY_SPAN))
    if missed.any():
        out[missed] = path_quantiles(flat[missed], targets)
    return out.reshape(*paths.shape[:-1], -1)
