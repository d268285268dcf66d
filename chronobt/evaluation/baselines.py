"""Benchmark forecasts: naive, seasonal naive and drift, with normal prediction intervals.

Point forecasts and interval widths follow Hyndman & Athanasopoulos, *Forecasting: Principles and
Practice* (3rd ed.), section 5.5, for a context of ``T`` valid bars ``y_1 .. y_T`` and a step ``h``:

=================  =====================================  ==========================================
method             point forecast                         standard deviation of the h-step error
=================  =====================================  ==========================================
naive              ``y_T``                                ``sigma * sqrt(h)``
seasonal naive     ``y_{T + h - m (k + 1)}``              ``sigma * sqrt(k + 1)``
drift              ``y_T + h (y_T - y_1) / (T - 1)``      ``sigma * sqrt(h (1 + h / (T - 1)))``
=================  =====================================  ==========================================

with ``k = floor((h - 1) / m)`` and ``sigma`` the residual standard deviation of the method's one-step
fitted values inside the context, ``sigma^2 = sum e_t^2 / (T - K - M)`` (K parameters, M residuals
missing at the start): naive ``e_t = y_t - y_{t-1}`` (K=0, M=1), seasonal naive ``e_t = y_t - y_{t-m}``
(K=0, M=m), drift ``e_t = y_t - y_{t-1} - b`` with ``b`` the drift (K=1, M=1). The drift sd is the
exact one for a random walk with an estimated drift (``b`` averages ``T - 1`` differences, so
``Var(h b) = h^2 sigma^2 / (T - 1)``), as in fable's ``RW(y ~ drift())``; FPP2 writes ``h / T``, a
difference below 0.5% of the width for T >= 64 and h <= T. Quantiles are
``point + z_q * sd_h`` with ``z_q`` the standard normal quantile (``statistics.NormalDist``; no scipy).

Contexts are ``[windows, variates, time]`` with NaN for a missing bar: left padding, or a bar that
was missing from the file and forward-filled at load (pass the contexts with those bars masked, as
``SymbolWindows.real_contexts`` gives them: a filled bar's open, high and low are copies of the previous
close, not real values). Every method is then defined from each variate's real bars only:

* ``y_T`` is the variate's **last real value** (the last real high for high, not a close copied into a
  filled bar), ``g`` bars before the origin (``g = 0`` without a trailing gap). The naive and drift
  forecasts count their steps from that bar: ``H = h + g`` replaces ``h`` in the point and the sd.
* Residuals use only pairs of real bars (a difference touching a missing bar is skipped), and ``T - K - M``
  becomes the number of those residuals minus ``K``.
* Drift's slope is ``(y_T - y_1) / (t_T - t_1)``, per bar of time between the first and the last real
  bar, and ``T - 1`` in its sd is that bar distance.
* Seasonal naive takes the bar one season before the step; when that bar is missing, the same phase one
  more season back (``k + 1`` grows by one per season skipped, widening the sd accordingly); a step
  whose phase has no real bar in the context takes the naive forecast.

Without missing bars inside the context these are exactly the formulas above. In :func:`seasonal_naive`,
a window without a single seasonal residual (fewer than ``m + 1`` valid bars with left padding only)
falls back to the naive forecast and interval. Too few bars for any residual (1 bar; 2 for drift) gives
NaN quantiles.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class BaselineForecast(NamedTuple):
    """A baseline's forecasts, unpackable as ``point, quantiles = naive(...)``."""

    point: FloatArray  # [w, v, h]
    quantiles: FloatArray  # [w, v, Q, h], at the requested levels


def _z(levels: Sequence[float]) -> FloatArray:
    """Standard normal quantiles ``[Q]`` of ``levels`` (each strictly inside (0, 1), ascending)."""
    grid = [float(q) for q in levels]
    if not grid or any(not 0.0 < q < 1.0 for q in grid) or any(b <= a for a, b in itertools.pairwise(grid)):
        raise ValueError(f"quantile levels must be ascending values strictly between 0 and 1, got {grid}")
    normal = NormalDist()
    return np.array([normal.inv_cdf(q) for q in grid])


def _rms(residuals: FloatArray, dof: FloatArray) -> FloatArray:
    """``sqrt(sum e^2 / dof)`` over the last axis ignoring NaN; NaN where ``dof <= 0``. -> ``[w, v]``.

    ``residuals`` is a scratch array: its NaNs are zeroed in place (not ``np.nansum``: timings in
    ``benchmarks/RESULTS.md``, section ``bench_evaluation_blocks.py``), and ``einsum`` sums the squares
    without another temporary.
    """
    np.copyto(residuals, 0.0, where=np.isnan(residuals))
    total = np.einsum("...t,...t->...", residuals, residuals)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.sqrt(np.where(dof > 0, total / dof, np.nan)), dtype=np.float64)


def _result(point: FloatArray, sd: FloatArray, levels: Sequence[float]) -> BaselineForecast:
    """Package ``point`` ``[w, v, h]`` and error sd ``[w, v, h]`` as normal quantiles ``[w, v, Q, h]``."""
    z = _z(levels)[:, None]  # [Q, 1]
    quantiles = point[..., None, :] + z * sd[..., None, :]
    return BaselineForecast(point, np.asarray(quantiles))


def _steps(horizon: int) -> FloatArray:
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return np.arange(1, horizon + 1, dtype=np.float64)


class _Context(NamedTuple):
    """A context and where its real values are (see the module docstring)."""

    x: FloatArray  # [w, v, t], NaN = missing
    last: FloatArray  # [w, v] last real value y_T
    last_at: npt.NDArray[np.intp]  # [w, v] its column
    gap: FloatArray  # [w, v] bars from it to the origin (the last column), g


def _prepare(contexts: npt.ArrayLike) -> _Context:
    """The context ``[w, v, t]`` as float64, with its last real value, that value's column and the gap."""
    x = np.asarray(contexts, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] == 0:
        raise ValueError(f"contexts must be [windows, variates, time] with time >= 1, got shape {x.shape}")
    width = x.shape[-1]
    last_at = width - 1 - np.argmax(~np.isnan(x[..., ::-1]), axis=-1)  # all-NaN rows: the origin (NaN)
    last = np.take_along_axis(x, last_at[..., None], axis=-1)[..., 0]
    return _Context(x, last, last_at, (width - 1 - last_at).astype(np.float64))


def _count(residuals: FloatArray) -> FloatArray:
    """Residuals that are real (both bars present) over the last axis, ``[w, v]``."""
    return np.count_nonzero(~np.isnan(residuals), axis=-1).astype(np.float64)


def naive(contexts: npt.ArrayLike, *, horizon: int, levels: Sequence[float]) -> BaselineForecast:
    """Last real value carried forward; sd ``sigma sqrt(h + g)``. ``contexts`` ``[w, v, t]``."""
    c = _prepare(contexts)
    h = _steps(horizon)
    residuals = np.diff(c.x, axis=-1)
    sigma = _rms(residuals, _count(residuals))
    point = np.repeat(c.last[..., None], horizon, axis=-1)
    return _result(point, sigma[..., None] * np.sqrt(h + c.gap[..., None]), levels)


def seasonal_naive(
    contexts: npt.ArrayLike, *, horizon: int, levels: Sequence[float], season: int
) -> BaselineForecast:
    """The real value one season earlier; sd ``sigma sqrt(floor((h-1)/m) + 1)``. ``contexts`` ``[w, v, t]``.

    A missing seasonal bar is replaced by the same phase further back; windows without a seasonal
    residual, and steps whose phase has no real bar, fall back to :func:`naive` (module docstring).
    """
    if season < 1:
        raise ValueError(f"season must be >= 1, got {season}")
    x = _prepare(contexts).x
    width = x.shape[-1]
    if width < season + 1:
        return naive(x, horizon=horizon, levels=levels)
    h = _steps(horizon)
    lookup = width - season + (np.arange(horizon) % season)  # column of y_{T + h - m (k + 1)}
    point = x[..., lookup]  # [w, v, h]
    cycles = np.broadcast_to(np.floor((h - 1) / season) + 1, point.shape).copy()  # k + 1
    missing = np.isnan(point)
    back = 1
    while missing.any() and (lookup - back * season >= 0).any():  # the same phase, seasons further back
        cols = lookup - back * season
        earlier = np.where(cols >= 0, x[..., np.maximum(cols, 0)], np.nan)
        found = missing & ~np.isnan(earlier)
        point = np.where(found, earlier, point)
        cycles = np.where(found, cycles + back, cycles)
        missing &= ~found
        back += 1
    residuals = x[..., season:] - x[..., :-season]
    dof = _count(residuals)
    sigma = _rms(residuals, dof)
    seasonal = _result(point, sigma[..., None] * np.sqrt(cycles), levels)
    short = (dof < 1)[..., None] | missing  # [w, v, h]
    if not short.any():
        return seasonal
    fallback = naive(x, horizon=horizon, levels=levels)
    return BaselineForecast(
        np.where(short, fallback.point, seasonal.point),
        np.where(short[..., None, :], fallback.quantiles, seasonal.quantiles),
    )


def drift(contexts: npt.ArrayLike, *, horizon: int, levels: Sequence[float]) -> BaselineForecast:
    """Line from the first to the last real value, ``H = h + g`` steps on; sd ``sigma sqrt(H (1 + H/D))``.

    ``D`` is the bar distance between the first and the last real value (``T - 1`` without gaps).
    ``contexts`` ``[w, v, t]``.
    """
    c = _prepare(contexts)
    steps = _steps(horizon) + c.gap[..., None]  # H = h + g, [w, v, h]
    first_at = np.argmax(~np.isnan(c.x), axis=-1)  # left padding: first valid column
    first = np.take_along_axis(c.x, first_at[..., None], axis=-1)[..., 0]
    span = (c.last_at - first_at).astype(np.float64)  # D
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(span > 0, (c.last - first) / span, 0.0)  # [w, v]
        residuals = np.diff(c.x, axis=-1)
        residuals -= slope[..., None]
        sigma = _rms(residuals, _count(residuals) - 1)
        sd = sigma[..., None] * np.sqrt(steps * (1.0 + steps / span[..., None]))
    point = c.last[..., None] + slope[..., None] * steps
    return _result(point, sd, levels)


#: The baselines of a backtest, by name (seasonal naive needs ``season``).
BASELINES: dict[str, Callable[..., BaselineForecast]] = {
    "naive": naive,
    "seasonal_naive": seasonal_naive,
    "drift": drift,
}


def run_baselines(
    contexts: npt.ArrayLike, *, horizon: int, levels: Sequence[float], season: int
) -> dict[str, BaselineForecast]:
    """All three baselines on the same ``[w, v, t]`` contexts, keyed by name (``BASELINES`` order)."""
    x = np.asarray(contexts, dtype=np.float64)
    return {
        "naive": naive(x, horizon=horizon, levels=levels),
        "seasonal_naive": seasonal_naive(x, horizon=horizon, levels=levels, season=season),
        "drift": drift(x, horizon=horizon, levels=levels),
    }
