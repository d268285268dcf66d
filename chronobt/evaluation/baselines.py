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

Contexts are ``[windows, variates, time]``, left-padded with NaN; each window uses only its valid bars.
In :func:`seasonal_naive`, a window with fewer than ``m + 1`` valid bars (no season plus one residual
to estimate the spread from) falls back to the naive forecast and interval. Too few bars for any
residual (1 bar; 2 for drift) gives NaN quantiles.
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


def _prepare(contexts: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """-> contexts ``[w, v, t]`` float64, last value ``[w, v]``, number of valid bars ``[w, v]``."""
    x = np.asarray(contexts, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] == 0:
        raise ValueError(f"contexts must be [windows, variates, time] with time >= 1, got shape {x.shape}")
    return x, x[..., -1], np.count_nonzero(~np.isnan(x), axis=-1).astype(np.float64)


def naive(contexts: npt.ArrayLike, *, horizon: int, levels: Sequence[float]) -> BaselineForecast:
    """Last value carried forward; sd ``sigma sqrt(h)``. ``contexts`` ``[w, v, t]``."""
    x, last, n = _prepare(contexts)
    h = _steps(horizon)
    sigma = _rms(np.diff(x, axis=-1), n - 1)
    point = np.repeat(last[..., None], horizon, axis=-1)
    return _result(point, sigma[..., None] * np.sqrt(h), levels)


def seasonal_naive(
    contexts: npt.ArrayLike, *, horizon: int, levels: Sequence[float], season: int
) -> BaselineForecast:
    """The value one season earlier; sd ``sigma sqrt(floor((h-1)/m) + 1)``. ``contexts`` ``[w, v, t]``.

    Windows with fewer than ``season + 1`` valid bars fall back to :func:`naive` (documented above).
    """
    if season < 1:
        raise ValueError(f"season must be >= 1, got {season}")
    x, _, n = _prepare(contexts)
    width = x.shape[-1]
    if width < season + 1:
        return naive(x, horizon=horizon, levels=levels)
    h = _steps(horizon)
    cycles = np.floor((h - 1) / season) + 1  # k + 1
    lookup = width - season + (np.arange(horizon) % season)  # column of y_{T + h - m (k + 1)}
    point = x[..., lookup]
    sigma = _rms(x[..., season:] - x[..., :-season], n - season)
    seasonal = _result(point, sigma[..., None] * np.sqrt(cycles), levels)
    short = (n < season + 1)[..., None]  # [w, v, 1]
    if not short.any():
        return seasonal
    fallback = naive(x, horizon=horizon, levels=levels)
    return BaselineForecast(
        np.where(short, fallback.point, seasonal.point),
        np.where(short[..., None], fallback.quantiles, seasonal.quantiles),
    )


def drift(contexts: npt.ArrayLike, *, horizon: int, levels: Sequence[float]) -> BaselineForecast:
    """Line from the first valid to the last value; sd ``sigma sqrt(h (1 + h/(T-1)))``. ``[w, v, t]``."""
    x, last, n = _prepare(contexts)
    h = _steps(horizon)
    first_at = np.argmax(~np.isnan(x), axis=-1)  # left padding: first valid column
    first = np.take_along_axis(x, first_at[..., None], axis=-1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(n > 1, (last - first) / (n - 1), 0.0)  # [w, v]
        residuals = np.diff(x, axis=-1)
        residuals -= slope[..., None]
        sigma = _rms(residuals, n - 2)
        sd = sigma[..., None] * np.sqrt(h * (1.0 + h / (n[..., None] - 1.0)))
    point = last[..., None] + slope[..., None] * h
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
