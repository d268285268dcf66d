"""Scoring price forecasts against the realised bars, the baselines and the trading rule.

Backtest and sweep both score through :func:`evaluate`, so a sweep's cell and a backtest of the same
windows score identically by construction. :func:`score_reference` holds what depends on the windows
alone (MASE scale, baselines), so a sweep computes it once per symbol and split for every augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from chronobt import baselines, metrics, trading
from chronobt.config import EvaluationOptions
from chronobt.pipeline import SymbolWindows

#: The baselines every forecast is scored against, in report order.
BASELINE_NAMES = tuple(baselines.BASELINES)


@dataclass(frozen=True)
class Reference:
    """What a forecast is scored against that depends on the windows alone, not on the model.

    The MASE scale per window ``[w, v]`` and the baselines' pooled metrics (``{name: {target: {metric}}}``).
    """

    scale: np.ndarray
    baselines: dict[str, dict[str, dict[str, float]]]


@dataclass
class Evaluation:
    """Scores of one set of price forecasts (JSON-ready dicts) and the trades of the trading view."""

    metrics: dict[str, dict[str, float]]
    per_step: dict[str, dict[str, list[float]]]
    baselines: dict[str, dict[str, dict[str, float]]]
    skill: dict[str, float]
    trading: dict[str, Any] | None
    trades: pd.DataFrame | None


def score_reference(sw: SymbolWindows, levels: Sequence[float], *, horizon: int) -> Reference:
    """MASE scale and the naive, seasonal-naive and drift baselines' metrics on ``sw``'s windows."""
    scale = metrics.naive_scale(sw.contexts)
    forecasts = baselines.run_baselines(
        sw.contexts, horizon=horizon, levels=levels, season=sw.ohlc.season_length
    )
    scored = {
        name: metrics.summarize(
            actual=sw.futures,
            median=forecast.point,
            quantiles=forecast.quantiles,
            levels=levels,
            last=sw.last,
            scale=scale,
            targets=sw.targets,
            per_step=False,
        )["metrics"]
        for name, forecast in forecasts.items()
    }
    return Reference(scale=scale, baselines=scored)


def evaluate(
    sw: SymbolWindows,
    price_q: np.ndarray,
    options: EvaluationOptions,
    *,
    reference: Reference | None = None,
) -> Evaluation:
    """Score ``price_q`` [windows, variates, Q, horizon] (at ``options.quantiles``) on ``sw``'s windows.

    ``reference`` is :func:`score_reference` of ``sw`` (computed here when not given).
    """
    levels = list(options.quantiles)
    if reference is None:
        reference = score_reference(sw, levels, horizon=options.horizon)
    median = price_q[:, :, levels.index(0.5), :]
    summary = metrics.summarize(
        actual=sw.futures,
        median=median,
        quantiles=price_q,
        levels=levels,
        last=sw.last,
        scale=reference.scale,
        targets=sw.targets,
    )
    naive = reference.baselines["naive"]
    skill = {t: metrics.skill(summary["metrics"][t]["mase"], naive[t]["mase"]) for t in sw.targets}
    trade_summary: dict[str, Any] | None = None
    trades: pd.DataFrame | None = None
    if "close" in sw.targets:
        c = sw.targets.index("close")
        result = trading.simulate(
            last_close=sw.last[:, c],
            forecast_close=median[:, c, -1],
            realized_close=sw.futures[:, c, -1],
            origins=sw.origin_times,
            fee_bps=options.fee_bps,
            allow_short=options.allow_short,
            horizon=options.horizon,
            stride=options.effective_stride,
            bars_per_year=sw.ohlc.bars_per_year,
        )
        trade_summary = result.summary()
        trades = result.trades
    return Evaluation(
        metrics=summary["metrics"],
        per_step=summary["per_step"],
        baselines=reference.baselines,
        skill=skill,
        trading=trade_summary,
        trades=trades,
    )
