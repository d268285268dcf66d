"""A track's ``metrics.json``: the complete forecasts scored as a backtest scores its windows, plus the
ledger's counts, the integrity flags and the drift against the backtest.

Keys: ``symbol``, ``label``, ``model``, ``model_checksum``, ``horizon``, ``targets``, ``quantiles``,
``forecasts`` (archived forecasts in the ledger), ``windows`` (complete ones scored), ``pending``
(forecasts with a step still to arrive), ``resolved_steps`` (ledger rows resolved), ``stride`` (bars
between scored origins, the Diebold-Mariano overlap), ``first_origin``, ``last_origin``, then as in a
backtest's ``metrics.json``: ``metrics``, ``per_step``, ``baselines``, ``skill``, ``significance``,
``trading``, ``filled``; then ``revised`` {``count``, ``files``}, ``dropped`` (complete forecasts not
scored: origin gone from the data file, or every step forward-filled), ``drift`` (per target, or null),
``drift_backtest`` (the backtest compared, or why none was), ``orders`` (every forecast's own recorded
strategy orders filled, per strategy: :mod:`chronobt.runs.track_orders`; null without orders),
``refused`` (one line per archived file refused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from chronobt.config import EvaluationOptions, TrackConfig
from chronobt.data import OHLC
from chronobt.evaluation import metrics
from chronobt.evaluation.drift import WindowScores, drift_block
from chronobt.evaluation.evaluate import evaluate, filled_record
from chronobt.runs.track_drift import backtest_scores, find_backtest
from chronobt.runs.track_ledger import Scored, Shape, windows_of


def score_label(
    ledger: pd.DataFrame,
    ohlc: OHLC,
    shape: Shape,
    contexts: Mapping[str, int],
    options: EvaluationOptions | None,
    *,
    entries: Sequence[Mapping[str, Any]],
    label: str,
    config: TrackConfig,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """``metrics.json``'s object and the trading view's trades (``None`` before any forecast completes)."""
    latest = entries[-1] if entries else {}
    files = ledger.groupby("file", sort=False)["resolved"].all() if len(ledger) else pd.Series(dtype=bool)
    revised = sorted(set(ledger.loc[ledger["revised"].astype(bool), "file"])) if len(ledger) else []
    summary: dict[str, Any] = {
        "symbol": ohlc.symbol,
        "label": label,
        "model": latest.get("model"),
        "model_checksum": latest.get("model_checksum"),
        "horizon": shape.horizon,
        "targets": list(shape.targets),
        "quantiles": list(shape.levels),
        "forecasts": len(files),
        "windows": 0,
        "pending": int((~files).sum()),
        "resolved_steps": int(ledger["resolved"].sum()) // max(len(shape.targets), 1) if len(ledger) else 0,
        "stride": None,
        "first_origin": None,
        "last_origin": None,
    }
    scored = windows_of(ledger, ohlc, shape, contexts) if options is not None and len(ledger) else None
    trades = None
    if scored is None or options is None:
        summary.update(
            metrics=None, per_step=None, baselines=None, skill=None, significance=None, trading=None
        )
        summary["filled"] = None
    else:
        sw = scored.windows
        stride = _stride(sw.origins)
        options = _with_stride(options, stride)
        evaluation = evaluate(sw, scored.price_q, options)
        trades = evaluation.trades
        summary.update(
            windows=len(sw.origins),
            stride=stride,
            first_origin=sw.origin_times[0].isoformat(),
            last_origin=sw.origin_times[-1].isoformat(),
            metrics=evaluation.metrics,
            per_step=evaluation.per_step,
            baselines=evaluation.baselines,
            skill=evaluation.skill,
            significance=evaluation.significance,
            trading=evaluation.trading,
            filled=filled_record(sw),
        )
    summary["revised"] = {"count": len(revised), "files": revised}
    summary["dropped"] = list(scored.dropped) if scored is not None else []
    summary["drift"], summary["drift_backtest"] = _drift(scored, ohlc, shape, label, latest, config)
    summary["orders"] = None  # the recorded orders' block (chronobt.runs.track_orders), set by the caller
    return summary, trades


def _stride(origins: np.ndarray) -> int:
    """The smallest step between scored origins (1 with one window): the overlap the tests assume."""
    steps = np.diff(np.sort(origins))
    steps = steps[steps > 0]
    return int(steps.min()) if steps.size else 1


def _with_stride(options: EvaluationOptions, stride: int) -> EvaluationOptions:
    from dataclasses import replace

    return replace(options, stride=stride)


def _drift(
    scored: Scored | None,
    ohlc: OHLC,
    shape: Shape,
    label: str,
    latest: Mapping[str, Any],
    config: TrackConfig,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The ``drift`` block (``None`` without a comparable backtest or a scored window) and what was
    compared."""
    folder, why = find_backtest(
        config.output_dir,
        ohlc.symbol,
        label,
        checksum=latest.get("model_checksum"),
        horizon=shape.horizon,
        targets=shape.targets,
    )
    if folder is None:
        return None, {"folder": None, "reason": why}
    if scored is None:
        return None, {"folder": str(folder), "reason": "no live forecast complete yet"}
    backtest = backtest_scores(
        config.output_dir / folder, ohlc, targets=shape.targets, levels=shape.levels, horizon=shape.horizon
    )
    if backtest is None:
        return None, {"folder": str(folder), "reason": "the backtest's quantiles or origins do not match"}
    sw = scored.windows
    live = WindowScores(
        origins=sw.origins,
        actual=sw.futures,
        quantiles=scored.price_q,
        levels=shape.levels,
        scale=metrics.naive_scale(sw.real_contexts),
    )
    block = drift_block(
        live, backtest, targets=shape.targets, horizon=shape.horizon, alpha=config.drift_alpha
    )
    return block, {"folder": str(folder), "reason": None}
