"""Pure forecast-accuracy metrics on numpy arrays.

Shapes follow the package conventions: ``actual`` and point forecasts ``[windows, variates, horizon]``,
quantile forecasts ``[windows, variates, Q, horizon]`` (levels ascending), per-window quantities such as
the last observed value or the MASE scale ``[windows, variates]`` (broadcast over the horizon).

The single metric functions (:func:`mae`, :func:`mase`, :func:`wql`, :func:`coverage`) take ``axis``
(an int, a tuple of ints or ``None`` for all), the axes of ``actual`` to average over: ``axis=(0, 2)``
gives one value per variate (windows and steps pooled), ``axis=0`` one value per variate and horizon
step. Points where ``actual`` (or the forecast) is NaN are left out of the average; a reduction with no
valid point gives NaN, never a warning. :func:`summarize` computes every metric of :data:`METRIC_NAMES`
in one pass, pooled (``axis=(0, 2)``) and per step (``axis=0``), with the same conventions. Percentages
(MAPE, sMAPE) are in percent; coverage and directional accuracy are fractions in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from chronobt.errors import ConfigError

Axis = int | tuple[int, ...] | None
FloatArray = npt.NDArray[np.float64]
#: A reduced metric: a numpy float64 scalar for ``axis=None``, else a float64 array of the kept axes.
Reduced = Any


def _mean(values: npt.ArrayLike, axis: Axis) -> Reduced:
    """NaN-ignoring mean; an empty reduction is NaN, silently."""
    x = np.array(values, dtype=np.float64)  # a copy: NaNs are zeroed in place below
    valid = ~np.isnan(x)
    np.copyto(x, 0.0, where=~valid)  # not np.nansum / np.where (RESULTS.md, bench_evaluation_blocks.py)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x.sum(axis=axis) / valid.sum(axis=axis)


def _per_window(values: npt.ArrayLike) -> FloatArray:
    """``[windows, variates]`` -> ``[windows, variates, 1]`` so it broadcasts over the horizon."""
    return np.asarray(values, dtype=np.float64)[..., None]


def mae(*, actual: npt.ArrayLike, forecast: npt.ArrayLike, axis: Axis = None) -> Reduced:
    """Mean absolute error ``mean |forecast - actual|``; both ``[w, v, h]``."""
    return _mean(np.abs(np.subtract(forecast, actual)), axis)


def _ape(actual: npt.ArrayLike, forecast: npt.ArrayLike) -> FloatArray:
    """Absolute percentage error per point as a fraction; NaN where ``actual`` is 0."""
    a = np.asarray(actual, dtype=np.float64)
    return np.asarray(np.abs(np.subtract(forecast, a)) / np.where(a == 0.0, np.nan, np.abs(a)))


def _sape(actual: npt.ArrayLike, forecast: npt.ArrayLike) -> FloatArray:
    """``|f - a| / (|a| + |f|)`` per point, 0 where both are 0."""
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    total = np.abs(a) + np.abs(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(total == 0.0, 0.0, np.abs(f - a) / total))


def naive_scale(contexts: npt.ArrayLike, *, lag: int = 1) -> FloatArray:
    """MASE scale: mean ``|x_t - x_{t-lag}|`` over each window's valid context.

    Parameters
    ----------
    contexts
        ``[windows, variates, time]``; the NaN left padding drops out (a difference touching NaN is
        ignored).
    lag
        1 (the default) is the one-step naive forecast's in-context MAE; a season length gives the
        seasonal version.

    Returns
    -------
    ``[windows, variates]``; 0 for a constant context, NaN with fewer than ``lag + 1`` valid bars.

    Raises
    ------
    ConfigError
        ``lag`` is not an integer >= 1.
    """
    if isinstance(lag, bool) or not isinstance(lag, (int, np.integer)) or lag < 1:
        raise ConfigError(f"season must be an integer >= 1 (bars per season), got {lag!r}")
    x = np.asarray(contexts, dtype=np.float64)
    steps = x[..., lag:] - x[..., :-lag]
    valid = ~np.isnan(steps)
    np.abs(steps, out=steps)
    np.copyto(steps, 0.0, where=~valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(steps.sum(axis=-1) / valid.sum(axis=-1), dtype=np.float64)


def mase(
    *, actual: npt.ArrayLike, forecast: npt.ArrayLike, scale: npt.ArrayLike, axis: Axis = None
) -> Reduced:
    """Mean absolute scaled error ``mean |forecast - actual| / scale``.

    Each window's errors are divided by that window's own ``scale`` (``[w, v]``, see
    :func:`naive_scale`), so pooling over windows averages the per-window MASE values. A window whose
    scale is 0 (a constant context) has no meaningful scale: its points are left out (NaN) rather than
    made infinite; if every window is like that the result is NaN.
    """
    return _mean(_scaled_error(actual, forecast, scale), axis)


def _scaled_error(actual: npt.ArrayLike, forecast: npt.ArrayLike, scale: npt.ArrayLike) -> FloatArray:
    """``|f - a| / scale`` per point; NaN in windows whose scale is 0."""
    s = _per_window(scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.abs(np.subtract(forecast, actual)) / np.where(s == 0.0, np.nan, s))


def pinball(*, actual: npt.ArrayLike, quantiles: npt.ArrayLike, levels: Sequence[float]) -> FloatArray:
    """Pinball (quantile) loss per level and point: ``max(q (a - f), (q - 1)(a - f))``.

    ``actual`` ``[w, v, h]``, ``quantiles`` ``[w, v, Q, h]`` -> ``[w, v, Q, h]``.
    """
    q = np.asarray(levels, dtype=np.float64)[:, None]  # [Q, 1] broadcasts over [w, v, Q, h]
    diff = np.expand_dims(np.asarray(actual, dtype=np.float64), -2) - np.asarray(quantiles, dtype=np.float64)
    return np.asarray(np.maximum(q * diff, (q - 1.0) * diff), dtype=np.float64)


def wql(
    *, actual: npt.ArrayLike, quantiles: npt.ArrayLike, levels: Sequence[float], axis: Axis = None
) -> Reduced:
    """Weighted quantile loss ``2 * sum pinball / (Q * sum |actual|)``.

    The sums run over the reduced points and, in the numerator, over the ``Q`` levels (the definition of
    GluonTS / fev / utilsforecast's ``scaled_crps``: the mean quantile loss normalised by the mean
    absolute actual, a discrete approximation of the scaled CRPS). ``actual`` ``[w, v, h]``,
    ``quantiles`` ``[w, v, Q, h]``. NaN points drop out of both sums; ``sum |actual| == 0`` gives NaN.
    """
    numerator, denominator = _wql_terms(actual, quantiles, levels)
    return _wql_ratio(numerator.sum(axis=axis), denominator.sum(axis=axis))


def _wql_terms(
    actual: npt.ArrayLike, quantiles: npt.ArrayLike, levels: Sequence[float]
) -> tuple[FloatArray, FloatArray]:
    """Per point ``[w, v, h]``: the pinball loss summed over levels and ``Q |actual|`` (0 where NaN)."""
    a = np.asarray(actual, dtype=np.float64)
    # sum_k pinball_k = sum_k (q_k d_k - min(d_k, 0)) with d = a - f: the per-level loss of :func:`pinball`
    # summed without materialising it (a few passes over [w, v, Q, h] instead of a dozen)
    d = np.expand_dims(a, -2) - np.asarray(quantiles, dtype=np.float64)  # [w, v, Q, h]
    weighted = np.einsum("...qh,q->...h", d, np.asarray(levels, dtype=np.float64))
    loss = weighted - np.minimum(d, 0.0, out=d).sum(axis=-2)  # [w, v, h]
    valid = ~np.isnan(loss) & ~np.isnan(a)
    return np.where(valid, loss, 0.0), len(levels) * np.where(valid, np.abs(a), 0.0)


def _wql_ratio(numerator: Any, denominator: Any) -> Reduced:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2.0 * numerator / np.where(denominator == 0.0, np.nan, denominator)


def coverage(
    *, actual: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike, axis: Axis = None
) -> Reduced:
    """Fraction of points with ``lower <= actual <= upper`` (both ends inclusive); all ``[w, v, h]``."""
    return _mean(_inside(actual, lower, upper), axis)


def _inside(actual: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike) -> FloatArray:
    """1.0 where ``lower <= actual <= upper``, else 0.0; NaN where ``actual`` is NaN."""
    a = np.asarray(actual, dtype=np.float64)
    inside = ((a >= np.asarray(lower)) & (a <= np.asarray(upper))).astype(np.float64)
    return np.asarray(np.where(np.isnan(a), np.nan, inside))


def calibration_error(*, actual: npt.ArrayLike, quantiles: npt.ArrayLike, levels: Sequence[float]) -> float:
    """Mean ``|F(tau) - tau|`` over levels and steps, with ``F(tau)`` the fraction of realised values at
    or below the ``tau`` quantile (pooled over windows and variates; NaN actuals left out).

    ``actual`` ``[w, v, h]``, ``quantiles`` ``[w, v, Q, h]`` at ``levels``. 0 for quantiles that are
    calibrated at every level and step; NaN when nothing was realised.
    """
    a = np.asarray(actual, dtype=np.float64)[:, :, None, :]
    below = np.where(np.isnan(a), np.nan, (a <= np.asarray(quantiles)).astype(np.float64))
    freq = _mean(below, (0, 1))  # [Q, h]
    return float(_mean(np.abs(freq - np.asarray(levels, dtype=np.float64)[:, None]), None))


def _hit(last: npt.ArrayLike, actual: npt.ArrayLike, forecast: npt.ArrayLike) -> FloatArray:
    """1.0 where forecast and actual move the same way from ``last``, else 0.0; NaN where actual is."""
    ref = _per_window(last)
    a = np.asarray(actual, dtype=np.float64)
    hit = (np.sign(np.subtract(forecast, ref)) == np.sign(a - ref)).astype(np.float64)
    return np.asarray(np.where(np.isnan(a), np.nan, hit))


def skill(mase_model: Any, mase_naive: Any) -> Any:
    """Skill score ``1 - MASE_model / MASE_naive``: > 0 beats the naive forecast, 1 is perfect, < 0 worse.

    Takes floats or arrays. For the JSON values of :func:`summarize`, ``None`` in (an undefined MASE)
    gives ``None`` out, and a scalar result that is not finite is ``None`` too.
    """
    if mase_model is None or mase_naive is None:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        result = 1.0 - np.divide(mase_model, mase_naive)
    if np.ndim(result) == 0:
        return float(result) if np.isfinite(result) else None
    return result


def quantile_at(*, quantiles: npt.ArrayLike, levels: Sequence[float], level: float) -> FloatArray:
    """The forecast at one quantile ``level``: ``[w, v, Q, h]`` -> ``[w, v, h]``.

    Taken as is when ``level`` is one of ``levels`` (to 1e-9), else linearly interpolated between the
    two neighbouring levels. Raises :class:`ConfigError` when ``level`` is outside ``levels``.
    """
    q = np.asarray(quantiles, dtype=np.float64)
    grid = np.asarray(levels, dtype=np.float64)
    if grid.ndim != 1 or grid.size != q.shape[-2] or np.any(np.diff(grid) <= 0):
        raise ValueError(f"levels must be {q.shape[-2]} ascending values, got {list(levels)}")
    match = np.flatnonzero(np.isclose(grid, level, rtol=0.0, atol=1e-9))
    if match.size:
        return np.asarray(q[..., int(match[0]), :])
    if not grid[0] < level < grid[-1]:
        raise ConfigError(
            f"quantile level {level} is outside the forecast levels {grid[0]:g}..{grid[-1]:g}; "
            f"include it in --quantiles (the 80% interval needs 0.1 and 0.9)"
        )
    hi = int(np.searchsorted(grid, level))
    weight = (level - grid[hi - 1]) / (grid[hi] - grid[hi - 1])
    return np.asarray((1.0 - weight) * q[..., hi - 1, :] + weight * q[..., hi, :])


METRIC_NAMES = (
    "mae",
    "rmse",
    "mape",
    "smape",
    "mase",
    "wql",
    "coverage_80",
    "width_80",
    "directional_accuracy",
)


def _json_floats(values: Any) -> Any:
    """Float or nested list of floats, NaN/inf -> ``None`` (strict JSON)."""

    def clean(x: Any) -> Any:
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x if math.isfinite(x) else None

    return clean(np.asarray(values, dtype=np.float64).tolist())


def summarize(
    *,
    actual: npt.ArrayLike,
    median: npt.ArrayLike,
    quantiles: npt.ArrayLike,
    levels: Sequence[float],
    last: npt.ArrayLike,
    scale: npt.ArrayLike,
    targets: Sequence[str],
    per_step: bool = True,
) -> dict[str, dict[str, dict[str, Any]]]:
    """All metrics per target, pooled over windows and steps and (optionally) per horizon step.

    Parameters
    ----------
    actual, median
        ``[w, v, h]`` realised values and point (median) forecasts.
    quantiles
        ``[w, v, Q, h]`` at ascending ``levels``; the 80% interval is the 0.1 and 0.9 levels
        (interpolated if absent, see :func:`quantile_at`).
    last
        ``[w, v]`` last observed value per window (the reference of directional accuracy).
    scale
        ``[w, v]`` MASE scale (:func:`naive_scale` of the contexts).
    targets
        ``v`` variate names.
    per_step
        Also report every metric per horizon step (``"per_step"``).

    Returns
    -------
    ``{"metrics": {target: {name: float}}, "per_step": {target: {name: [h floats]}}}`` with the names
    of :data:`METRIC_NAMES` (the same values as the single metric functions); an undefined value (NaN)
    is ``None``, so the dict is strict JSON.

    Notes
    -----
    With ``a`` the actual, ``f`` the median and ``(lo, hi)`` the 80% interval, per point, averaged:

    - ``mae`` ``|f - a|``; ``rmse`` the root of the mean ``(f - a)^2``; ``mase`` see :func:`mase`;
      ``wql`` see :func:`wql`; ``coverage_80`` see :func:`coverage`; ``width_80`` ``hi - lo``.
    - ``mape`` ``100 |f - a| / |a|``, in percent; points where ``a`` is 0 are left out (as utilsforecast
      does).
    - ``smape`` ``200 |f - a| / (|a| + |f|)``, in percent, bounded by [0, 200] (the M4 definition); a
      point where both are 0 counts as 0 error.
    - ``directional_accuracy``: a hit is ``sign(f - last) == sign(a - last)``. ``sign(0) = 0`` is its own
      direction, so a forecast of "no change" is a hit only when the value is exactly unchanged, and a
      move forecast against an unchanged value is a miss.
    """
    a = np.asarray(actual, dtype=np.float64)
    if len(targets) != a.shape[1]:
        raise ValueError(f"{len(targets)} target names for {a.shape[1]} variates")
    f = np.asarray(median, dtype=np.float64)
    lower = quantile_at(quantiles=quantiles, levels=levels, level=0.1)
    upper = quantile_at(quantiles=quantiles, levels=levels, level=0.9)
    # One pass: every mean-type metric's per-point terms, summed over windows once ([k, v, h]); the
    # pooled values are the per-step sums summed over steps, so nothing is computed twice.
    abs_error = np.abs(f - a)
    terms = np.stack(
        [
            abs_error,
            np.square(f - a),
            _ape(a, f),
            _sape(a, f),
            _scaled_error(a, f, scale),
            _inside(a, lower, upper),
            np.subtract(upper, lower, dtype=np.float64),
            _hit(last, a, f),
        ]
    )  # [8, w, v, h]
    valid = ~np.isnan(terms)
    np.copyto(terms, 0.0, where=~valid)
    sums, counts = terms.sum(axis=1), valid.sum(axis=1)  # [8, v, h]
    numerator, denominator = (x.sum(axis=0) for x in _wql_terms(a, quantiles, levels))  # [v, h]

    def finish(total: FloatArray, n: FloatArray, num: FloatArray, den: FloatArray) -> FloatArray:
        with np.errstate(invalid="ignore", divide="ignore"):
            means = total / n
        mae_, mse_, mape_, smape_, mase_, cov_, width_, hit_ = means
        return np.stack(
            [
                mae_,
                np.sqrt(mse_),
                100.0 * mape_,
                200.0 * smape_,
                mase_,
                _wql_ratio(num, den),
                cov_,
                width_,
                hit_,
            ]
        )  # [metrics, v, ...] in METRIC_NAMES order

    pooled = _json_floats(finish(sums.sum(-1), counts.sum(-1), numerator.sum(-1), denominator.sum(-1)))
    out: dict[str, dict[str, dict[str, Any]]] = {
        "metrics": {t: {k: pooled[m][i] for m, k in enumerate(METRIC_NAMES)} for i, t in enumerate(targets)}
    }
    if per_step:
        steps = _json_floats(finish(sums, counts, numerator, denominator))
        out["per_step"] = {
            t: {k: steps[m][i] for m, k in enumerate(METRIC_NAMES)} for i, t in enumerate(targets)
        }
    return out
