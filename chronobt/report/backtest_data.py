"""A backtest folder read back into arrays, and the numbers its report draws (pure numpy, no charts).

Shapes: ``actual`` and ``median`` ``[windows, targets, horizon]``, ``quantiles`` (the raw model's) and
``calibrated`` (the ``calibrated_<level>`` columns, when the run calibrated its intervals) ``[windows,
targets, Q, horizon]`` (levels ascending), ``timestamps`` ``[windows, horizon]``; windows in ascending
origin order. ``issued`` is what the run issued: the calibrated quantiles when there are any, else the raw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from chronobt.errors import DataError
from chronobt.evaluation import metrics as m
from chronobt.report.sources import History, as_utc, load_history, read_json, read_table
from chronobt.report.strategies import primary_strategy
from chronobt.runs.summary import BacktestSummary

FloatArray = npt.NDArray[np.float64]
FORECAST_COLUMNS = ("origin", "step", "timestamp", "target", "actual", "median")
#: Prefix of forecasts.parquet's calibrated quantile columns (``calibrated_0.1``), beside the raw ``0.1``.
CALIBRATED_PREFIX = "calibrated_"


def level_of(column: object) -> float | None:
    """``"0.1"`` -> 0.1; any column that is not a quantile level in (0, 1) -> ``None``."""
    try:
        level = float(str(column))
    except ValueError:
        return None
    return level if 0.0 < level < 1.0 else None


@dataclass(frozen=True, eq=False)
class BacktestRun:
    """One backtest result folder: its JSON records and its forecasts as arrays."""

    folder: Path
    metrics: BacktestSummary  # metrics.json
    manifest: dict[str, Any]
    targets: list[str]
    levels: list[float]
    origins: pd.DatetimeIndex  # [w] UTC
    timestamps: pd.DatetimeIndex  # [w * h] UTC, row-major [w, h]
    actual: FloatArray  # [w, v, h]
    median: FloatArray  # [w, v, h]
    quantiles: FloatArray  # [w, v, Q, h]
    trades: pd.DataFrame
    history: History | None
    history_note: str
    calibrated: FloatArray | None = None  # [w, v, Q, h]; None: the run issued the raw quantiles

    @property
    def issued(self) -> FloatArray:
        """``[w, v, Q, h]`` the quantiles the run issued: calibrated when it calibrated, else raw."""
        return self.quantiles if self.calibrated is None else self.calibrated

    @property
    def issued_kind(self) -> str:
        """``"calibrated"`` or ``"raw"``: which quantiles :attr:`issued` holds."""
        return "raw" if self.calibrated is None else "calibrated"

    @property
    def horizon(self) -> int:
        return int(self.actual.shape[-1])

    @property
    def primary(self) -> str:
        """The target the fan charts and per-step charts show: close when forecast, else the first."""
        return "close" if "close" in self.targets else self.targets[0]

    def times(self, window: int) -> pd.DatetimeIndex:
        h = self.horizon
        return self.timestamps[window * h : (window + 1) * h]


def load_backtest(folder: Path) -> BacktestRun:
    """Read forecasts.parquet, metrics.json, trades.parquet and manifest.json (the last two optional)."""
    rerun = f"rerun `chronobt backtest` to rewrite {folder}"
    summary = BacktestSummary.from_json(read_json(folder / "metrics.json", rerun=rerun))
    manifest = read_json(folder / "manifest.json", rerun=rerun) if (folder / "manifest.json").exists() else {}
    frame = read_table(folder / "forecasts.parquet", rerun=rerun, columns=FORECAST_COLUMNS)
    level_cols = sorted((lv, c) for c in frame.columns if (lv := level_of(c)) is not None)
    if not level_cols:
        raise DataError(f"{folder / 'forecasts.parquet'}: no quantile columns such as '0.1'; {rerun}")
    found = list(dict.fromkeys(frame["target"].astype(str)))
    targets = [t for t in summary.targets or found if t in found] or found
    frame = frame[frame["target"].astype(str).isin(targets)]
    origins = as_utc(frame["origin"]).unique().sort_values()
    horizon = int(frame["step"].max())
    w, v = len(origins), len(targets)
    if w == 0 or len(frame) != w * v * horizon:
        raise DataError(
            f"{folder / 'forecasts.parquet'}: {len(frame)} rows, expected {w} origins x {horizon} steps x "
            f"{v} targets = {w * v * horizon}; {rerun}"
        )
    order = pd.DataFrame(
        {
            "o": origins.get_indexer(as_utc(frame["origin"])),
            "s": frame["step"].to_numpy(),
            "t": pd.Categorical(frame["target"].astype(str), categories=targets).codes,
        }
    )
    rows = np.lexsort((order["t"], order["s"], order["o"]))
    frame = frame.iloc[rows]

    def cube(column: str) -> FloatArray:  # rows (origin, step, target) -> [w, v, h]
        values = frame[column].to_numpy(dtype=np.float64).reshape(w, horizon, v)
        return np.ascontiguousarray(values.transpose(0, 2, 1))

    quantiles = np.stack([cube(c) for _, c in level_cols], axis=2)
    calibrated_cols = [f"{CALIBRATED_PREFIX}{c}" for _, c in level_cols]
    calibrated = None
    if all(c in frame.columns for c in calibrated_cols):
        calibrated = np.stack([cube(c) for c in calibrated_cols], axis=2)
    first = frame["target"].astype(str).to_numpy() == targets[0]
    trades_path = folder / "trades.parquet"
    trades = read_table(trades_path, rerun=rerun) if trades_path.exists() else pd.DataFrame()
    history, note = load_history(manifest.get("data"), folder)
    summary, trades = primary_strategy(summary, trades)  # the single-strategy views show the first
    return BacktestRun(
        folder=folder,
        metrics=summary,
        manifest=manifest,
        targets=targets,
        levels=[lv for lv, _ in level_cols],
        origins=origins,
        timestamps=as_utc(frame["timestamp"].to_numpy()[first]),
        actual=cube("actual"),
        median=cube("median"),
        quantiles=quantiles,
        trades=trades,
        history=history,
        history_note=note,
        calibrated=calibrated,
    )


def window_losses(run: BacktestRun) -> FloatArray:
    """``[w]`` weighted quantile loss of each window's issued quantiles, all targets and steps pooled."""
    return np.asarray(
        m.wql(actual=run.actual, quantiles=run.issued, levels=run.levels, axis=(1, 2)), dtype=np.float64
    )


def pick_windows(losses: FloatArray) -> list[tuple[str, int]]:
    """The windows worth a fan chart: latest, best, worst and the median by loss, each once.

    Returns ``(label, window)`` pairs; a window that is both (say) latest and worst appears once with
    both names.
    """
    n = len(losses)
    finite = np.flatnonzero(np.isfinite(losses))
    picks: dict[int, list[str]] = {n - 1: ["latest"]}
    if finite.size:
        by_loss = finite[np.argsort(losses[finite], kind="stable")]
        for name, index in (
            ("best", by_loss[0]),
            ("worst", by_loss[-1]),
            ("median", by_loss[len(by_loss) // 2]),
        ):
            picks.setdefault(int(index), []).append(name)
    return [(" · ".join(names), index) for index, names in picks.items()]


def recent_actuals(run: BacktestRun, target: str) -> pd.Series:
    """The realised values of ``target`` at every forecast timestamp (a stand-in for missing history)."""
    values = run.actual[:, run.targets.index(target), :].ravel()
    series = pd.Series(values, index=run.timestamps)
    return series[~series.index.duplicated(keep="last")].sort_index().dropna()


def context_before(run: BacktestRun, window: int, target: str, bars: int) -> pd.Series:
    """The last ``bars`` observed values of ``target`` up to the window's origin."""
    origin = run.origins[window]
    if run.history is not None and target in run.history.frame.columns:
        return run.history.before(target, origin, bars)
    past = recent_actuals(run, target)
    return past[past.index <= origin].iloc[-bars:]


def reliability(run: BacktestRun, quantiles: FloatArray | None = None) -> FloatArray:
    """``[v, Q]`` share of actuals at or below each quantile level's forecast (ideal: the level).

    ``quantiles`` ``[w, v, Q, h]``: the run's issued ones unless given (``run.quantiles`` for the raw).
    """
    q = run.issued if quantiles is None else quantiles
    below = run.actual[:, :, None, :] <= q  # [w, v, Q, h]
    valid = ~np.isnan(run.actual)[:, :, None, :] & ~np.isnan(q)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((below & valid).sum(axis=(0, 3)) / valid.sum(axis=(0, 3)), dtype=np.float64)


def pit_histogram(
    run: BacktestRun, target: str, quantiles: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """Bin edges ``[Q + 2]`` (0, the levels, 1) and the density of actuals per bin (uniform = 1).

    ``quantiles`` ``[w, v, Q, h]``: the run's issued ones unless given (``run.quantiles`` for the raw).
    """
    v = run.targets.index(target)
    a = run.actual[:, v, :]  # [w, h]
    q = (run.issued if quantiles is None else quantiles)[:, v, :, :]  # [w, Q, h]
    ok = ~np.isnan(a) & ~np.isnan(q).any(axis=1)
    rank = (a[:, None, :] > q).sum(axis=1)[ok]  # bin index 0..Q: how many quantiles lie below
    counts = np.bincount(rank, minlength=len(run.levels) + 1).astype(np.float64)
    edges = np.array([0.0, *run.levels, 1.0])
    share = counts / max(counts.sum(), 1.0)
    return edges, share / np.diff(edges)


@dataclass(frozen=True)
class Equity:
    """The trading rule's equity at each used window's exit, and buy-and-hold on the close."""

    times: pd.DatetimeIndex  # [n + 1] first entry, then each used window's exit
    equity: FloatArray  # [n + 1] from 1.0
    hold_times: pd.DatetimeIndex
    hold: FloatArray  # close / close at the first entry

    @staticmethod
    def drawdown(values: FloatArray) -> FloatArray:
        """``values / running peak - 1`` (0 at a peak, -0.25 for a 25% fall)."""
        return np.asarray(values / np.maximum.accumulate(values) - 1.0, dtype=np.float64)


def equity_curves(run: BacktestRun) -> Equity | None:
    """Rebuild the equity curve from trades.parquet and the windows (see :mod:`chronobt.evaluation.trading`).

    The rule trades every ``ceil(horizon / stride)``-th window counting back from the latest; a used
    window without a trade is flat (0%). ``None`` when the backtest did not forecast close.
    """
    trading = run.metrics.trading
    if not trading or "close" not in run.targets:
        return None
    w, h = len(run.origins), run.horizon
    config = run.manifest.get("config") or {}
    stride = config.get("stride") or h
    every = math.ceil(h / int(stride))
    used = np.arange(w - 1, -1, -every)[::-1]
    net = pd.Series(0.0, index=run.origins[used])
    if len(run.trades):
        trade_net = pd.Series(
            run.trades["net_return"].to_numpy(dtype=np.float64), index=as_utc(run.trades["origin"])
        )
        trade_net = trade_net[trade_net.index.isin(net.index)]
        net.loc[trade_net.index] = trade_net.to_numpy()
    exits = pd.DatetimeIndex([run.times(int(i))[-1] for i in used])
    times = pd.DatetimeIndex([run.origins[used[0]], *exits])
    equity = np.concatenate([[1.0], np.cumprod(1.0 + net.to_numpy())])
    start, end = times[0], times[-1]
    if run.history is not None:
        closes = run.history.between("close", start, end)
    else:
        past = recent_actuals(run, "close")
        closes = past[(past.index > start) & (past.index <= end)]
        first_entry = run.trades[as_utc(run.trades["origin"]) == start] if len(run.trades) else run.trades
        if len(first_entry):
            closes = pd.concat([pd.Series([float(first_entry["entry"].iloc[0])], index=[start]), closes])
    if closes.empty:
        return Equity(times=times, equity=equity, hold_times=times[:0], hold=np.empty(0))
    values = closes.to_numpy(dtype=np.float64)
    return Equity(
        times=times, equity=equity, hold_times=pd.DatetimeIndex(closes.index), hold=values / values[0]
    )
