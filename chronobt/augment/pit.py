"""Probability integral transforms of realised values under quantile forecasts, and their normal scores.

The first step of :mod:`chronobt.augment.dependence` (and of the calibration of
:mod:`chronobt.evaluation.calibration`): :func:`pit` reads each realised value's level off its window's
per-step predictive distribution with the inverse-CDF interpolation of :mod:`chronobt.augment.sampling`
(linear in the level between predicted quantiles, Gaussian tails); :func:`normal_scores` maps the levels
to ``z = Phi^-1(PIT)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri

from chronobt.augment.sampling import check_levels

FloatArray = npt.NDArray[np.float64]

#: PIT values are clipped to ``[PIT_CLIP, 1 - PIT_CLIP]`` before the normal scores.
PIT_CLIP = 1e-6


def pit(*, quantiles: npt.ArrayLike, levels: Sequence[float], actual: npt.ArrayLike) -> FloatArray:
    """Predictive CDF at the realised value, per window, variate and step.

    Parameters
    ----------
    quantiles
        ``[w, v, Q, h]`` predicted quantiles at ascending ``levels`` (crossing ones are sorted).
    actual
        ``[w, v, h]`` realised values in the same space (model space for augmented forecasts).

    Returns
    -------
    ``[w, v, h]`` in [0, 1]: linear in the level between the predicted quantiles, through the Gaussian
    tail matched to the two outermost quantiles beyond them (the exact inverse of the interpolation of
    :mod:`chronobt.augment.sampling`). At a value several tied quantiles share, the middle of their
    levels. NaN where the value or a quantile is NaN; exactly 0 or 1 only beyond a flat (degenerate) tail.
    """
    q = np.asarray(quantiles, dtype=np.float64)
    y = np.asarray(actual, dtype=np.float64)
    lv = check_levels(levels, q.shape[-2])
    if q.ndim != 4 or y.shape != q.shape[:2] + q.shape[3:]:
        raise ValueError(f"quantiles [w, v, Q, h] and actual [w, v, h] expected, got {q.shape} and {y.shape}")
    q = sorted_quantiles(q)
    yq = y[..., None, :]
    # right-continuous CDF and its left limit; they differ only on a value shared by tied quantiles
    at_most, below = (q <= yq).sum(axis=-2), (q < yq).sum(axis=-2)
    right = _cdf(q, lv, y, at_most)
    # where no value equals a quantile both counts agree and the mean is the CDF itself (0.5 * (c + c) == c)
    left = right if np.array_equal(at_most, below) else _cdf(q, lv, y, below)
    out = 0.5 * (right + left)
    return np.asarray(np.where(np.isnan(q).any(axis=-2), np.nan, out))


def sorted_quantiles(q: FloatArray) -> FloatArray:
    """``q`` ``[..., Q, h]`` with each step's quantiles ascending: ``q`` itself when every difference of
    neighbours is ``>= 0``, else sorted along the level axis (a copy).

    The neighbours are compared without building their differences. The two differ only where two
    neighbours are the same infinity (``inf - inf`` is NaN: sorted): in an ascending column that pair
    reaches the top (``+inf``) or bottom (``-inf``) end, so only such columns take the differences.
    """
    ascending = bool((q[..., 1:, :] >= q[..., :-1, :]).all())
    if (
        ascending
        and q.shape[-2] > 1
        and (np.isposinf(q[..., -2, :]).any() or np.isneginf(q[..., 1, :]).any())
    ):
        ascending = bool((np.diff(q, axis=-2) >= 0).all())
    return q if ascending else np.sort(q, axis=-2)


def _cdf(q: FloatArray, lv: FloatArray, y: FloatArray, k: np.ndarray) -> FloatArray:
    """CDF at ``y`` given ``k`` [w, v, h] = how many quantiles lie below it (0: lower tail, Q: upper)."""
    n_q = lv.size
    z_lv = ndtri(lv)
    seg = np.clip(k - 1, 0, n_q - 2)
    lo = np.take_along_axis(q, seg[..., None, :], axis=-2)[..., 0, :]
    hi = np.take_along_axis(q, seg[..., None, :] + 1, axis=-2)[..., 0, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = lv[seg] + (y - lo) / (hi - lo) * (lv[seg + 1] - lv[seg])
        q0, q1, qm, qn = q[..., 0, :], q[..., 1, :], q[..., -2, :], q[..., -1, :]
        z_low = z_lv[0] + np.where(y == q0, 0.0, (y - q0) * (z_lv[1] - z_lv[0]) / (q1 - q0))
        z_high = z_lv[-1] + np.where(y == qn, 0.0, (y - qn) * (z_lv[-1] - z_lv[-2]) / (qn - qm))
    return np.asarray(np.where(k == 0, ndtr(z_low), np.where(k == n_q, ndtr(z_high), inside)))


def normal_scores(pit_values: npt.ArrayLike, *, clip: float = PIT_CLIP) -> FloatArray:
    """``z = Phi^-1(clip(PIT, clip, 1 - clip))``, same shape; NaN stays NaN."""
    return np.asarray(ndtri(np.clip(np.asarray(pit_values, dtype=np.float64), clip, 1.0 - clip)))
