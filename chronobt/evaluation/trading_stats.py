"""Statistics of one strategy's backtest: returns, risk, trades, and whether the Sharpe is more than luck.

Inputs are one strategy's per-decision-period series (``n`` periods, flat ones included, in time order),
its trade table and buy-and-hold over the same periods. With ``p = bars_per_year / bars_per_period``
the periods in a year, ``r`` the net returns and ``E`` the equity after each period (the curve starts
at 1.0 before the first period):

==================== ==================================================================================
``total_return``      ``E[-1] - 1``
``annualized_return`` ``(1 + total) ** (bars_per_year / span) - 1``, ``span = n * bars_per_period``
                      bars unless given (-1.0 when the account is wiped out)
``volatility``        ``sd(r) * sqrt(p)``, sample sd (``ddof=1``)
``sharpe``            ``mean(r) / sd(r) * sqrt(p)``, zero risk-free rate, sample sd
``sortino``           ``mean(r) * p / (sqrt(mean(min(r, 0) ** 2)) * sqrt(p))``: the downside deviation
                      below 0 over all ``n`` periods (a population root-mean-square)
``calmar``            ``annualized_return / max_drawdown``
``max_drawdown``      largest fall of ``E`` from its running peak, a positive fraction (0.25: -25%)
``max_drawdown_bars`` longest time from a peak to the period ``E`` is back at it (or to the last period
                      when it never recovers), in bars (periods * ``bars_per_period``)
``win_rate``          share of trades with ``net_return > 0``
``profit_factor``     sum of winning trades' net returns / |sum of losing trades' net returns|
``expectancy``        arithmetic mean trade net return (= win rate * mean win - loss rate * mean loss)
``avg_trade``         geometric mean trade net return ``exp(mean(log(1 + net))) - 1``
``best_trade``        largest trade net return; ``worst_trade`` the smallest
``exposure``          share of periods holding a position (``gross_exposure > 0`` when given, else
                      periods that opened a trade)
``turnover``          notional traded per year in multiples of equity: ``2 * sum(|size|) / n * p``
                      (each trade buys and sells its size)
``n_trades``          rows of the trade table
``buy_and_hold``      ``prod(1 + hold) - 1`` over the same periods
``beta``              ``cov(r, hold) / var(hold)``
``alpha``             ``(1 + mean(r - beta * hold)) ** p - 1``: the annualised (compounded) mean return
                      left after beta times buy-and-hold
``sharpe_ci95``       ``[lo, hi]``: 2.5% and 97.5% percentiles of the Sharpe over ``N_BOOTSTRAP``
                      moving-block bootstrap resamples of ``r`` (``arch``'s ``MovingBlockBootstrap`` scheme,
                      blocks of ``round(n ** (1/3))`` periods, the rate-optimal order for the variance of a
                      mean; resamples with ``sd = 0`` dropped)
``psr``               Probabilistic Sharpe Ratio against 0 (Bailey & López de Prado, 2012), below
``psr_vs_hold``       the same against buy-and-hold's per-period Sharpe over the same periods
==================== ==================================================================================

Beside them, for the Deflated Sharpe Ratio of a sweep: ``sharpe_period`` (the Sharpe of one period,
``mean(r) / sd(r)``, not annualised), ``skew`` and ``kurtosis`` (of ``r``, the plain moment estimates;
kurtosis not in excess: 3 for a normal) and ``n_periods`` (``n``).

PSR (Bailey & López de Prado, 2012, eq. 11): with ``SR`` the per-period Sharpe, ``g3`` the skew and ``g4``
the kurtosis of ``r``, ``PSR(SR*) = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))``:
the probability that the true Sharpe exceeds ``SR*``. DSR (Bailey & López de Prado, 2014) is the PSR
against the expected maximum Sharpe of ``N`` independent trials with Sharpe variance ``V``:
``SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))``, ``gamma`` the
Euler-Mascheroni constant.

Undefined values are ``None``, for these reasons:

- ``sharpe``, ``sortino``, ``sharpe_ci95``, ``psr``, ``psr_vs_hold`` with fewer than two trades (the
  flat periods' zero returns alone would make one trade look like a track record) or ``sd(r) = 0``;
  ``sortino`` also without a negative period; PSR also when its denominator is not positive (a very
  skewed series with a large Sharpe) and ``psr_vs_hold`` when buy-and-hold's Sharpe is undefined
  (``sd(hold) = 0``);
- ``volatility``, ``alpha``, ``beta`` with fewer than two periods; ``alpha``/``beta`` also when
  ``var(hold) = 0``;
- ``calmar`` without a drawdown;
- ``win_rate``, ``expectancy``, ``avg_trade``, ``best_trade``, ``worst_trade`` without trades;
  ``profit_factor`` without a losing trade; ``avg_trade`` when a trade lost everything;
- ``skew``/``kurtosis`` when ``sd(r) = 0``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import ndtr, ndtri  # scipy.stats would add ~0.4 s of imports to every run

from chronobt.evaluation.significance import N_BOOTSTRAP, block_length

FloatArray = npt.NDArray[np.float64]
Stat = float | int | list[float] | None

#: The Euler-Mascheroni constant of the expected maximum Sharpe (Bailey & López de Prado, 2014).
EULER_GAMMA = 0.5772156649015329

#: Bootstrap resamples stacked at a time (bounds the memory to ``_BATCH * n`` floats).
_BATCH = 250

STAT_KEYS = (
    "total_return",
    "annualized_return",
    "volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_bars",
    "win_rate",
    "profit_factor",
    "expectancy",
    "avg_trade",
    "best_trade",
    "worst_trade",
    "exposure",
    "turnover",
    "n_trades",
    "buy_and_hold",
    "alpha",
    "beta",
    "sharpe_ci95",
    "psr",
    "psr_vs_hold",
    "sharpe_period",
    "skew",
    "kurtosis",
    "n_periods",
)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def period_sharpe(returns: npt.ArrayLike) -> FloatArray:
    """Per-period Sharpe ``mean / sd`` (sample sd) over the last axis: ``[..., n]`` -> ``[...]``.

    NaN where ``n < 2`` or ``sd = 0``.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.shape[-1] < 2:
        return np.full(r.shape[:-1], np.nan)
    sd = np.where(np.ptp(r, axis=-1) > 0, r.std(axis=-1, ddof=1), 0.0)  # constant: 0, not rounding dust
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(sd > 0, r.mean(axis=-1) / sd, np.nan), dtype=np.float64)


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float | None:
    """PSR (Bailey & López de Prado, 2012): probability that the true Sharpe exceeds ``benchmark``.

    ``sharpe`` and ``benchmark`` are per-period (not annualised) Sharpe ratios of ``n_obs`` returns with
    sample ``skew`` and ``kurtosis`` (not in excess). ``None`` when an input is not finite, ``n_obs < 2``
    or ``1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe ** 2 <= 0``.
    """
    values = (sharpe, benchmark, skew, kurtosis)
    if n_obs < 2 or not all(math.isfinite(v) for v in values):
        return None
    denominator = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if denominator <= 0:
        return None
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denominator)
    return float(ndtr(z))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum per-period Sharpe of ``n_trials`` unskilled trials (Bailey & López de Prado, 2014).

    ``sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e)))``; 0 for a single trial (nothing
    was selected).
    """
    if n_trials < 1 or not sharpe_variance >= 0:
        raise ValueError(f"need n_trials >= 1 and sharpe_variance >= 0, got {n_trials}, {sharpe_variance}")
    if n_trials == 1:
        return 0.0
    z1 = ndtri(1.0 - 1.0 / n_trials)
    z2 = ndtri(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def deflated_sharpe_ratio(
    sharpe: float, n_trials: int, sharpe_variance: float, n_obs: int, skew: float, kurtosis: float
) -> float | None:
    """Deflated Sharpe Ratio (Bailey & López de Prado, 2014): the PSR against the expected maximum Sharpe.

    Parameters
    ----------
    sharpe
        Per-period (not annualised) Sharpe of the selected strategy on ``n_obs`` returns.
    n_trials
        Independent trials the selection chose from (every candidate scored).
    sharpe_variance
        Variance of the trials' per-period Sharpe ratios.
    n_obs
        Returns behind ``sharpe``.
    skew, kurtosis
        Sample skewness and kurtosis (not in excess: 3 for a normal) of those returns.

    Returns
    -------
    float or None
        ``PSR(expected_max_sharpe(n_trials, sharpe_variance))``; ``None`` where the PSR is undefined.
    """
    return probabilistic_sharpe_ratio(
        sharpe, expected_max_sharpe(n_trials, sharpe_variance), n_obs, skew, kurtosis
    )


def drawdown(equity: npt.ArrayLike) -> tuple[float, int]:
    """Maximum drawdown (positive fraction) and its longest duration in periods of ``[n]`` equity.

    The curve starts at 1.0 before ``equity[0]``. A drawdown lasts from its peak to the first period
    back at the peak, or to the last period when it never recovers (backtesting.py's definition).
    """
    curve = np.concatenate([[1.0], np.asarray(equity, dtype=np.float64)])
    peak = np.maximum.accumulate(curve)
    fall = float(np.max(1.0 - curve / peak))
    position = np.arange(curve.size)
    under = curve < peak
    last_peak = np.maximum.accumulate(np.where(under, 0, position))
    length = position - last_peak  # periods since the last peak (0 at a peak)
    recovered = np.flatnonzero(under[:-1] & ~under[1:]) + 1
    longest = max(int(length.max()), int(length[recovered - 1].max() + 1) if recovered.size else 0)
    return fall, longest


def sharpe_interval(
    net_returns: npt.ArrayLike, periods_per_year: float, seed: int, n_boot: int = N_BOOTSTRAP
) -> list[float] | None:
    """Moving-block bootstrap 95% percentile interval of the annualised Sharpe of ``[n]`` returns.

    Blocks of :func:`~chronobt.evaluation.significance.block_length` ``(n, 1) = round(n ** (1/3))``
    periods with uniformly drawn starts, ``ceil(n / b)`` of them per resample, concatenated and cut to
    ``n`` (Kuensch, 1989): the scheme of ``arch.bootstrap.MovingBlockBootstrap``, drawn the same way from
    ``numpy.random.default_rng(seed)`` so that the interval equals arch's (a test checks it; arch itself is
    not imported here, its package import alone takes over a second). Vectorized over resamples,
    :data:`_BATCH` at a time. Resamples whose sd is 0 are dropped. ``None`` when no resample has a Sharpe.
    """
    r = np.asarray(net_returns, dtype=np.float64)
    n = int(r.size)
    if n < 2:
        return None
    size = block_length(n, 1)
    n_blocks = -(-n // size)
    starts = np.random.default_rng(seed).integers(n - size + 1, size=(n_boot, n_blocks), dtype=np.int64)
    offsets = np.arange(size)
    sharpe = np.empty(n_boot)
    for lo in range(0, n_boot, _BATCH):  # [batch, n] at a time, not [n_boot, n]
        idx = (starts[lo : lo + _BATCH, :, None] + offsets).reshape(-1, n_blocks * size)[:, :n]
        sharpe[lo : lo + _BATCH] = period_sharpe(r[idx])
    sharpe = sharpe[np.isfinite(sharpe)] * math.sqrt(periods_per_year)
    if sharpe.size == 0:
        return None
    lo_hi = np.percentile(sharpe, [2.5, 97.5])
    return [float(lo_hi[0]), float(lo_hi[1])]


def _trade_block(net: FloatArray) -> dict[str, Stat]:
    """Per-trade statistics of ``[t]`` trade net returns."""
    if net.size == 0:
        keys = ("win_rate", "profit_factor", "expectancy", "avg_trade", "best_trade", "worst_trade")
        return dict.fromkeys(keys)
    losses = float(-net[net < 0].sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        geometric = float(np.expm1(np.mean(np.log1p(net)))) if np.all(net > -1) else math.nan
    return {
        "win_rate": float(np.mean(net > 0)),
        "profit_factor": float(net[net > 0].sum()) / losses if losses > 0 else None,
        "expectancy": float(net.mean()),
        "avg_trade": _finite(geometric),
        "best_trade": float(net.max()),
        "worst_trade": float(net.min()),
    }


def _skew_kurtosis(r: FloatArray) -> tuple[float, float]:
    """Sample skewness and kurtosis (not in excess) of ``[n]`` returns, biased (moments over ``n``), as
    ``scipy.stats.skew`` / ``kurtosis(fisher=False)`` compute them (equal to the last bit in tests)."""
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    return float(np.mean(d * d * d)) / m2**1.5, float(np.mean((d * d) ** 2)) / m2**2


def _risk_block(r: FloatArray, hold: FloatArray, n_trades: int, per_year: float) -> dict[str, Stat]:
    """Volatility, Sharpe, Sortino, alpha/beta and the moments behind PSR/DSR of ``[n]`` returns."""
    n = r.size
    varies = n > 1 and np.ptp(r) > 0  # a constant series has sd 0 (not its floating-point dust)
    sd = float(r.std(ddof=1)) if varies else (0.0 if n > 1 else math.nan)
    defined = n_trades >= 2 and sd > 0
    sharpe = float(r.mean() / sd) if defined else math.nan
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    sortino = (
        float(r.mean()) * per_year / (downside * math.sqrt(per_year)) if defined and downside > 0 else None
    )
    moments = sd > 0
    skew, kurt = _skew_kurtosis(r) if moments else (math.nan, math.nan)
    hold_var = float(hold.var(ddof=1)) if n > 1 and np.ptp(hold) > 0 else 0.0
    if hold_var > 0:
        beta = float(np.cov(r, hold)[0, 1] / hold_var)
        alpha: float | None = _finite(float((1.0 + np.mean(r - beta * hold)) ** per_year - 1.0))
    else:
        beta, alpha = math.nan, None
    return {
        "volatility": _finite(sd * math.sqrt(per_year)),
        "sharpe": _finite(sharpe * math.sqrt(per_year)),
        "sortino": sortino,
        "alpha": alpha,
        "beta": _finite(beta),
        "sharpe_period": _finite(sharpe),
        "skew": _finite(skew),
        "kurtosis": _finite(kurt),
    }


def strategy_statistics(
    net_returns: npt.ArrayLike,
    equity: npt.ArrayLike,
    trades: pd.DataFrame,
    hold_returns: npt.ArrayLike,
    bars_per_period: float,
    bars_per_year: float,
    seed: int,
    *,
    gross_exposure: npt.ArrayLike | None = None,
    span_bars: float | None = None,
) -> dict[str, Stat]:
    """Every statistic of one strategy (definitions and undefined cases in the module docstring).

    Parameters
    ----------
    net_returns
        ``[n]`` net return of each decision period, flat periods (0) included, in time order.
    equity
        ``[n]`` equity after each period (the curve starts at 1.0).
    trades
        The strategy's trade rows (``net_return`` and ``size`` are read).
    hold_returns
        ``[n]`` buy-and-hold return over each of the same periods.
    bars_per_period
        Bars between consecutive decision points.
    bars_per_year
        Bars in a year of the series.
    seed
        Seed of the Sharpe's bootstrap.
    gross_exposure
        ``[n]`` gross exposure of each period; default: a period is exposed when a trade opened in it
        (``trades['origin']``, one trade per period and strategy).
    span_bars
        Bars the periods cover, for ``annualized_return``; default ``n * bars_per_period`` (give it when
        periods are missing from the series, e.g. windows dropped from the grid).

    Returns
    -------
    dict
        :data:`STAT_KEYS` -> strict-JSON values (``None`` where undefined; ``sharpe_ci95`` a list).
    """
    r = np.asarray(net_returns, dtype=np.float64)
    curve = np.asarray(equity, dtype=np.float64)
    hold = np.asarray(hold_returns, dtype=np.float64)
    n = r.size
    if r.ndim != 1 or n == 0 or curve.shape != r.shape or hold.shape != r.shape:
        raise ValueError(
            "net_returns, equity and hold_returns must share one non-empty 1-d shape, "
            f"got {r.shape}, {curve.shape}, {hold.shape}"
        )
    if not (bars_per_period > 0 and bars_per_year > 0):
        raise ValueError(
            f"bars_per_period and bars_per_year must be > 0, got {bars_per_period}, {bars_per_year}"
        )
    per_year = bars_per_year / bars_per_period
    net = trades["net_return"].to_numpy(dtype=np.float64) if len(trades) else np.empty(0)
    n_trades = int(net.size)

    total = float(curve[-1] - 1.0)
    span = n * bars_per_period if span_bars is None else span_bars
    annualized = (1.0 + total) ** (bars_per_year / span) - 1.0 if total > -1.0 else -1.0
    fall, longest = drawdown(curve)
    risk = _risk_block(r, hold, n_trades, per_year)
    if gross_exposure is None:
        held = int(trades["origin"].nunique()) if n_trades else 0
        exposure = min(1.0, held / n)
    else:
        exposure = float(np.mean(np.asarray(gross_exposure, dtype=np.float64) > 0))
    size = np.abs(trades["size"].to_numpy(dtype=np.float64)) if n_trades else np.empty(0)

    sp = risk["sharpe_period"]
    skew, kurt = risk["skew"], risk["kurtosis"]
    hold_sharpe = float(period_sharpe(hold))
    psr = psr_hold = ci = None
    if isinstance(sp, float) and isinstance(skew, float) and isinstance(kurt, float):
        psr = probabilistic_sharpe_ratio(sp, 0.0, n, skew, kurt)
        psr_hold = probabilistic_sharpe_ratio(sp, hold_sharpe, n, skew, kurt)
        ci = sharpe_interval(r, per_year, seed)
    out: dict[str, Any] = {
        "total_return": total,
        "annualized_return": float(annualized),
        "max_drawdown": fall,
        "max_drawdown_bars": round(longest * bars_per_period),
        "calmar": float(annualized) / fall if fall > 0 else None,
        "exposure": exposure,
        "turnover": float(2.0 * size.sum() / n * per_year),
        "n_trades": n_trades,
        "buy_and_hold": _finite(float(np.prod(1.0 + hold) - 1.0)),
        "sharpe_ci95": ci,
        "psr": psr,
        "psr_vs_hold": psr_hold,
        "n_periods": n,
        **risk,
        **_trade_block(net),
    }
    return {key: out[key] for key in STAT_KEYS}
