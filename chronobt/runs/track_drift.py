"""The backtest a track compares its live forecasts with: found, checked and read into window scores.

A backtest counts when ``<output-dir>/backtest/<SYMBOL>/<label>/`` holds ``metrics.json`` and
``forecasts.parquet`` of the same model checksum and horizon, and every tracked target. Its per-window
losses are scaled like the live ones: by the MASE scale of each window's context cut from the data file
as it is now, with the backtest's own context length.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.data import OHLC
from chronobt.data.windows import cut_windows
from chronobt.evaluation import metrics
from chronobt.evaluation.drift import WindowScores
from chronobt.runs.results import backtest_folder, quantile_column

logger = logging.getLogger(__name__)


def find_backtest(
    output_dir: Path, symbol: str, label: str, *, checksum: str | None, horizon: int, targets: Sequence[str]
) -> tuple[Path | None, str | None]:
    """``(folder, None)`` for a comparable backtest, else ``(None, why not)``; the folder and the reason
    name it relative to ``output_dir`` (so a track's files do not depend on where the output dir is)."""
    folder = backtest_folder(Path("."), symbol, label)
    where = output_dir / folder
    try:
        summary = json.loads((where / "metrics.json").read_text())
    except (OSError, ValueError):
        return None, f"no backtest in {folder}"
    if not (where / "forecasts.parquet").is_file():
        return None, f"no forecasts.parquet in {folder}"
    if summary.get("model_checksum") != checksum:
        return (
            None,
            f"{folder}: the backtest ran another model (checksum {str(summary.get('model_checksum'))[:12]})",
        )
    if summary.get("horizon") != horizon:
        return None, f"{folder}: the backtest's horizon is {summary.get('horizon')}, the forecasts' {horizon}"
    if not set(targets) <= set(summary.get("targets") or ()):
        return None, f"{folder}: the backtest does not score every tracked target"
    return folder, None


def backtest_scores(
    folder: Path, ohlc: OHLC, *, targets: Sequence[str], levels: Sequence[float], horizon: int
) -> WindowScores | None:
    """The backtest's windows whose origin is still in the data file, as :class:`WindowScores`."""
    summary: dict[str, Any] = json.loads((folder / "metrics.json").read_text())
    frame = pd.read_parquet(folder / "forecasts.parquet")
    columns = [quantile_column(q) for q in levels]
    if not set(columns) <= set(frame.columns):
        return None
    frame = frame[frame["target"].isin(list(targets))]
    stamps = pd.DatetimeIndex(sorted(set(frame["origin"])))
    index = pd.DatetimeIndex(ohlc.frame.index)
    pos = index.get_indexer(stamps)
    stamps, pos = stamps[pos >= 0], pos[pos >= 0]
    if not len(pos):
        return None
    frame = frame[frame["origin"].isin(stamps)]
    w = stamps.get_indexer(pd.DatetimeIndex(frame["origin"]))
    v = pd.Index(list(targets)).get_indexer(frame["target"])
    s = frame["step"].to_numpy(dtype=np.int64) - 1
    actual = np.full((len(pos), len(targets), horizon), np.nan)
    actual[w, v, s] = frame["actual"].to_numpy(dtype=np.float64, na_value=np.nan)
    quantiles = np.full((len(pos), len(targets), len(levels), horizon), np.nan)
    for k, name in enumerate(columns):
        quantiles[w, v, k, s] = frame[name].to_numpy(dtype=np.float64)
    context = int(summary.get("context_length") or 1)
    contexts, _ = cut_windows(ohlc.values(tuple(targets)), pos, context=context, horizon=0, with_future=False)
    marks, _ = cut_windows(
        ohlc.filled.astype(np.float64)[:, None], pos, context=context, horizon=0, with_future=False
    )
    real = np.where(marks == 1.0, np.nan, contexts)
    return WindowScores(
        origins=pos.astype(np.int64),
        actual=actual,
        quantiles=quantiles,
        levels=tuple(levels),
        scale=metrics.naive_scale(real),
    )
