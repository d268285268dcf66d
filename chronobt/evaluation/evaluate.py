"""Scoring price forecasts against the realised bars, the baselines and the trading rule.

Backtest and sweep both score through :func:`evaluate`, so a sweep's cell and a backtest of the same
windows score identically by construction. :func:`score_reference` holds what depends on the windows
alone (MASE scale, baselines), so a sweep computes it once per symbol and split for every augmentation.

Bars forward-filled at load are never scored: their futures are NaN (every metric skips NaN actuals),
the MASE scale uses the real context bars only, and a window whose entry or exit bar is filled is not
traded. :func:`inversion_checks` counts the inverted price quantiles that left the price domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from chronobt.config import EvaluationOptions
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.evaluation import baselines, metrics, trading
from chronobt.evaluation.fills import Bars, Costs
from chronobt.evaluation.significance import significance_block
from chronobt.evaluation.strategies import ForecastView, check_strategies, parse_strategies

#: An inverted price quantile "explodes" when it is non-finite or its magnitude exceeds this many times
#: the largest absolute price in its window's context.
EXPLODING_FACTOR = 10.0


@dataclass(frozen=True)
class Reference:
    """What a forecast is scored against that depends on the windows alone, not on the model.

    The MASE scales per window ``[w, v]`` (lag 1, and the series' season for ``mase_seasonal``), the
    baselines' forecasts (for the significance tests), their pooled metrics
    (``{name: {target: {metric}}}``) and the same per horizon step (``{name: {target: {metric: [h]}}}``).
    """

    scale: np.ndarray
    seasonal_scale: np.ndarray
    forecasts: dict[str, baselines.BaselineForecast]
    baselines: dict[str, dict[str, dict[str, float]]]
    baselines_per_step: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)


@dataclass
class Evaluation:
    """Scores of one set of price forecasts (JSON-ready dicts) and the trades of the trading view.

    ``trading`` is ``{strategy: summary}``; ``trades`` and ``equity`` the tables of
    :class:`chronobt.evaluation.trading.TradingView` (``None`` without a close forecast).
    """

    metrics: dict[str, dict[str, float]]
    per_step: dict[str, dict[str, list[float]]]
    baselines: dict[str, dict[str, dict[str, float]]]
    skill: dict[str, float]
    trading: dict[str, Any] | None
    trades: pd.DataFrame | None
    inversion: dict[str, dict[str, int]]
    significance: dict[str, Any]
    calibrated: dict[str, Any] | None = None
    baselines_per_step: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    equity: pd.DataFrame | None = None


def score_reference(sw: SymbolWindows, levels: Sequence[float], *, horizon: int) -> Reference:
    """MASE scale and the naive, seasonal-naive and drift baselines' metrics on ``sw``'s windows.

    The scale and the baselines skip forward-filled context bars (each baseline starts from every
    variate's last real value, see :mod:`chronobt.evaluation.baselines`); the baselines are scored on
    the real future bars only.
    """
    real = sw.real_contexts
    scale = metrics.naive_scale(real)
    seasonal_scale = metrics.naive_scale(real, lag=sw.ohlc.season_length)
    forecasts = baselines.run_baselines(real, horizon=horizon, levels=levels, season=sw.ohlc.season_length)
    scored = {
        name: _with_seasonal(
            metrics.summarize(
                actual=sw.futures,
                median=forecast.point,
                quantiles=_unscored(sw, forecast.quantiles),
                levels=levels,
                last=sw.last,
                scale=scale,
                targets=sw.targets,
            ),
            sw,
            forecast.point,
            seasonal_scale,
        )
        for name, forecast in forecasts.items()
    }
    return Reference(
        scale=scale,
        seasonal_scale=seasonal_scale,
        forecasts=forecasts,
        baselines={name: s["metrics"] for name, s in scored.items()},
        baselines_per_step={name: s["per_step"] for name, s in scored.items()},
    )


def _with_seasonal(
    summary: dict[str, Any], sw: SymbolWindows, median: np.ndarray, seasonal_scale: np.ndarray
) -> dict[str, Any]:
    """Add ``mase_seasonal`` (MASE scaled by the in-context seasonal-naive error, as fev and utilsforecast
    define it) beside the lag-1 ``mase`` of a :func:`chronobt.evaluation.metrics.summarize` result."""
    pooled = metrics.mase(actual=sw.futures, forecast=median, scale=seasonal_scale, axis=(0, 2))
    for i, target in enumerate(sw.targets):
        summary["metrics"][target]["mase_seasonal"] = _json(pooled[i])
    if "per_step" in summary:
        steps = metrics.mase(actual=sw.futures, forecast=median, scale=seasonal_scale, axis=0)  # [v, h]
        for i, target in enumerate(sw.targets):
            summary["per_step"][target]["mase_seasonal"] = [_json(x) for x in steps[i]]
    return summary


def _json(x: Any) -> float | None:
    value = float(x)
    return value if np.isfinite(value) else None


def evaluate(
    sw: SymbolWindows,
    price_q: np.ndarray,
    options: EvaluationOptions,
    *,
    reference: Reference | None = None,
    calibrated: np.ndarray | None = None,
) -> Evaluation:
    """Score ``price_q`` [windows, variates, Q, horizon] (at ``options.quantiles``) on ``sw``'s windows.

    ``reference`` is :func:`score_reference` of ``sw`` (computed here when not given). ``calibrated`` are
    the conformally calibrated quantiles of the same windows (``--calibrate conformal``): their coverage,
    width and WQL are reported beside the raw ones, and the trading view trades them (the issued
    intervals, as ``forecast``'s orders read them). Every score carries a Diebold-Mariano test against
    each baseline (:mod:`chronobt.evaluation.significance`).
    """
    levels = list(options.quantiles)
    if reference is None:
        reference = score_reference(sw, levels, horizon=options.horizon)
    median = price_q[:, :, levels.index(0.5), :]
    summary = _with_seasonal(
        metrics.summarize(
            actual=sw.futures,
            median=median,
            quantiles=_unscored(sw, price_q),
            levels=levels,
            last=sw.last,
            scale=reference.scale,
            targets=sw.targets,
        ),
        sw,
        median,
        reference.seasonal_scale,
    )
    naive = reference.baselines["naive"]
    skill = {t: metrics.skill(summary["metrics"][t]["mase"], naive[t]["mase"]) for t in sw.targets}
    # the strategies trade the quantiles that were issued, as forecast's orders do: calibrated when calibrated
    view = trading_view(sw, price_q if calibrated is None else calibrated, options)
    return Evaluation(
        metrics=summary["metrics"],
        per_step=summary["per_step"],
        baselines=reference.baselines,
        baselines_per_step=reference.baselines_per_step,
        skill=skill,
        trading=None if view is None else view.summaries,
        trades=None if view is None else view.trades,
        equity=None if view is None else view.equity,
        inversion=inversion_checks(sw, price_q),
        significance=significance_block(
            actual=sw.futures,
            median=median,
            quantiles=price_q,
            levels=levels,
            baselines={name: (f.point, f.quantiles) for name, f in reference.forecasts.items()},
            targets=sw.targets,
            stride=options.effective_stride,
            scale=reference.scale,
            seed=options.seed,
        ),
        calibrated=None if calibrated is None else calibrated_scores(sw, calibrated, options, reference),
    )


def trading_view(
    sw: SymbolWindows, price_q: np.ndarray, options: EvaluationOptions
) -> trading.TradingView | None:
    """Every ``options.strategies`` traded on ``sw``'s windows (:mod:`chronobt.evaluation.trading`);
    ``None`` (no trading view) without a close forecast or without strategies.

    The decisions read the forecast and the close at each origin; the fills read the realised bars
    after it from the loaded frame (forward-filled bars marked, never filled at).
    """
    if "close" not in sw.targets or not options.strategies:
        return None
    parsed = parse_strategies(options.strategies)
    check_strategies(parsed, targets=sw.targets, quantiles=options.quantiles)
    h = options.horizon
    rows = sw.origins[:, None] + np.arange(h + 1)  # [w, h + 1]: the origin's bar and the horizon's
    frame = sw.ohlc.frame
    ohlc = {c: frame[c].to_numpy(dtype=np.float64)[rows] for c in ("open", "high", "low", "close")}
    bars = Bars(**ohlc, real=~sw.ohlc.filled[rows])
    view = ForecastView(
        price_q=np.asarray(price_q, dtype=np.float64),
        targets=tuple(sw.targets),
        levels=tuple(options.quantiles),
        reference=ohlc["close"][:, 0],
    )
    costs = Costs(fee_bps=options.fee_bps, slippage_bps=options.slippage_bps, borrow_rate=options.borrow_rate)
    execution = trading.Execution(entry=options.entry, costs=costs, allow_short=options.allow_short)
    result = trading.trade(
        view,
        bars,
        parsed,
        execution,
        horizon=h,
        stride=options.effective_stride,
        bars_per_year=sw.ohlc.bars_per_year,
        origins=sw.origin_times,
        at=sw.origins,
        times=pd.DatetimeIndex(frame.index).tz_convert("UTC").tz_localize(None).to_numpy()[rows],
        seed=options.seed,
    )
    for summary in result.summaries.values():
        summary["annualisation"] = sw.ohlc.annualisation
    return result


#: What ``metrics.json``'s ``calibrated`` block reports of the calibrated quantiles, beside the raw ones.
CALIBRATED_METRICS = ("coverage_80", "width_80", "wql")


def calibrated_scores(
    sw: SymbolWindows, calibrated: np.ndarray, options: EvaluationOptions, reference: Reference
) -> dict[str, Any]:
    """Coverage, width and WQL (pooled and per step) of conformally calibrated quantiles."""
    levels = list(options.quantiles)
    summary = metrics.summarize(
        actual=sw.futures,
        median=calibrated[:, :, levels.index(0.5), :],
        quantiles=_unscored(sw, calibrated),
        levels=levels,
        last=sw.last,
        scale=reference.scale,
        targets=sw.targets,
    )
    return {
        part: {t: {m: summary[part][t][m] for m in CALIBRATED_METRICS} for t in sw.targets}
        for part in ("metrics", "per_step")
    }


def _unscored(sw: SymbolWindows, quantiles: np.ndarray) -> np.ndarray:
    """``quantiles`` [w, v, Q, h] with NaN at forward-filled future bars.

    Every other metric skips them through their NaN actuals; this makes the interval width, which does
    not read the actuals, leave them out too.
    """
    filled = sw.future_filled
    if not filled.any():
        return quantiles
    return np.where(filled[:, None, None, :], np.nan, quantiles)


def filled_record(sw: SymbolWindows) -> dict[str, int]:
    """Forward-filled bars of ``sw``'s windows, as ``metrics.json`` reports them.

    ``actual_bars``: future bars left unscored; ``context_bars``: filled context bars (missing to the
    model but for a run ending at the origin; summed over windows, so a bar in two contexts counts
    twice); ``windows_dropped``: windows left out because their whole horizon was filled.
    """
    return {
        "actual_bars": int(sw.future_filled.sum()),
        "context_bars": int(sw.context_filled.sum()),
        "windows_dropped": sw.windows_dropped,
    }


def inversion_checks(sw: SymbolWindows, price_q: np.ndarray) -> dict[str, dict[str, int]]:
    """Count inverted price quantiles [windows, variates, Q, horizon] that left the price domain.

    Per target: ``non_positive``, finite quantiles <= 0 in windows whose context prices are all positive;
    ``exploding``, quantiles that are non-finite or larger in magnitude than :data:`EXPLODING_FACTOR`
    times the largest absolute price of their window's context. A quantile may count in both.
    """
    q = np.asarray(price_q, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ceiling = EXPLODING_FACTOR * np.nanmax(np.abs(sw.contexts), axis=-1)  # [w, v]
        positive = np.nanmin(sw.contexts, axis=-1) > 0  # [w, v]
        finite = np.isfinite(q)
        non_positive = (finite & (q <= 0) & positive[:, :, None, None]).sum(axis=(0, 2, 3))
        exploding = (~finite | (np.abs(q) > ceiling[:, :, None, None])).sum(axis=(0, 2, 3))
    return {
        t: {"non_positive": int(non_positive[i]), "exploding": int(exploding[i])}
        for i, t in enumerate(sw.targets)
    }


def inversion_warning(
    symbol: str, spec: str, counts: dict[str, dict[str, int]], *, path_dependent: bool
) -> str | None:
    """One warning line naming the out-of-domain quantile counts per target, or ``None`` when clean."""
    bad = {t: c for t, c in counts.items() if c["non_positive"] or c["exploding"]}
    if not bad:
        return None
    parts = ", ".join(
        f"{t}: {c['non_positive']} non-positive, {c['exploding']} exploding" for t, c in bad.items()
    )
    fix = "another --preaug or --dependence comonotonic" if path_dependent else "another --preaug"
    return (
        f"{symbol}: --preaug {spec} inverted to price quantiles outside the price domain ({parts}; "
        f"exploding = non-finite or above {EXPLODING_FACTOR:g}x the context's largest |price|); try {fix}"
    )
