"""A portfolio folder read back, and what its page draws beside the files (pure numpy, no charts).

Buy-and-hold is the portfolio's own benchmark (:mod:`chronobt.evaluation.portfolio`): the equal-weight
account, ``1 / S`` in each of the ``S`` symbols, booked at each symbol's decision times from its close
to its next decision's close (the last: ``step`` bars on). The files hold only its total
(``buy_and_hold``), so :func:`hold_curve` rebuilds the curve from each symbol's result folder
(``manifest.json`` ``sources``, looked for first at its usual place beside ``_portfolio/``) and data
file, and returns it only when it ends at the recorded total: a data file changed or moved since the run
leaves it out. :func:`weights_path` gives the symbols' weights as held between the account's times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from chronobt.report.axes import utc
from chronobt.report.sources import as_utc, load_history, read_json, read_table

FloatArray = npt.NDArray[np.float64]
EQUITY_COLUMNS = ("strategy", "timestamp", "return", "equity", "gross_exposure")
#: How far the rebuilt buy-and-hold may end from the recorded total and still be drawn.
HOLD_TOLERANCE = 1e-6


@dataclass(frozen=True, eq=False)
class PortfolioRun:
    """One portfolio folder's files."""

    folder: Path
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    equity: pd.DataFrame  # equity.parquet
    trades: pd.DataFrame  # trades.parquet (empty when absent)

    @property
    def symbols(self) -> list[str]:
        found = [
            str(col).removeprefix("weight_") for col in self.equity.columns if str(col).startswith("weight_")
        ]
        return [str(s) for s in self.metrics.get("symbols") or found]

    @property
    def trading(self) -> dict[str, dict[str, Any]]:
        trading = self.metrics.get("trading")
        return {k: v for k, v in trading.items() if isinstance(v, dict)} if isinstance(trading, dict) else {}

    def rows(self, strategy: str) -> pd.DataFrame:
        """``strategy``'s rows of ``equity.parquet`` in time order."""
        rows = self.equity[self.equity["strategy"] == strategy]
        return rows.assign(timestamp=as_utc(rows["timestamp"])).sort_values("timestamp", kind="stable")


@dataclass(frozen=True)
class Source:
    """One symbol's result folder, as far as buy-and-hold needs it."""

    symbol: str
    times: dict[str, npt.NDArray[np.datetime64]]  # strategy -> [n] decision times (naive UTC)
    steps: dict[str, int]  # strategy -> bars in a period
    close: pd.Series | None  # the data file's close (UTC index); None when not found


def load_portfolio(folder: Path) -> PortfolioRun:
    """Read a portfolio folder (``trades.parquet`` and ``manifest.json`` optional)."""
    rerun = f"rerun `chronobt backtest ... --portfolio` to rewrite {folder}"
    metrics = read_json(folder / "metrics.json", rerun=rerun)
    manifest = read_json(folder / "manifest.json", rerun=rerun) if (folder / "manifest.json").exists() else {}
    equity = read_table(folder / "equity.parquet", rerun=rerun, columns=EQUITY_COLUMNS)
    path = folder / "trades.parquet"
    trades = read_table(path, rerun=rerun) if path.exists() else pd.DataFrame()
    return PortfolioRun(folder=folder, metrics=metrics, manifest=manifest, equity=equity, trades=trades)


def symbol_hold(close: pd.Series, times: npt.ArrayLike, step: int) -> FloatArray:
    """``[n]`` close-to-close return from each decision time to the next (the last: ``step`` bars on, or
    the last bar); NaN at a time that is not a bar of ``close``."""
    index = utc(close.index)
    t = np.asarray(times, dtype="datetime64[ns]")
    if index.size == 0 or t.size == 0:
        return np.full(t.size, np.nan)
    at = np.searchsorted(index, t)
    safe = np.minimum(at, index.size - 1)
    ok = (at < index.size) & (index[safe] == t)
    end = np.minimum(np.append(at[1:], at[-1] + step), index.size - 1)
    price = close.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = price[end] / price[safe] - 1.0
    return np.asarray(np.where(ok, out, np.nan), dtype=np.float64)


def hold_equity(account: npt.ArrayLike, parts: list[tuple[Any, FloatArray]], n_symbols: int) -> FloatArray:
    """``[m]`` equity of the equal-weight buy-and-hold account on the ``[m]`` ``account`` times.

    ``parts``: per symbol, its ``[n]`` decision times and buy-and-hold returns; each return is booked at
    its decision time with weight ``1 / n_symbols`` (NaN as 0), compounded from 1.0.
    """
    t = np.asarray(account, dtype="datetime64[ns]")
    booked = np.zeros(t.size)
    for times, hold in parts:
        at = np.searchsorted(t, np.asarray(times, dtype="datetime64[ns]"))
        np.add.at(booked, np.minimum(at, t.size - 1), np.nan_to_num(hold, nan=0.0))
    return np.asarray(np.cumprod(1.0 + booked / n_symbols), dtype=np.float64)


def load_sources(run: PortfolioRun) -> tuple[list[Source], str]:
    """Each symbol's result folder (decision times, steps, close) and a note on what was not found."""
    recorded = run.manifest.get("sources") or {}
    sources, missing = [], []
    for symbol in run.symbols:
        folder = _source_folder(run.folder, symbol, recorded.get(symbol))
        if folder is None:
            missing.append(f"{symbol}'s result folder")
            continue
        rerun = f"rerun `chronobt backtest` to rewrite {folder}"
        frame = read_table(folder / "equity.parquet", rerun=rerun, columns=("strategy", "timestamp"))
        trading = read_json(folder / "metrics.json", rerun=rerun).get("trading") or {}
        manifest = (
            read_json(folder / "manifest.json", rerun=rerun) if (folder / "manifest.json").exists() else {}
        )
        history, _ = load_history(manifest.get("data"), folder)
        if history is None or "close" not in history.frame.columns:
            missing.append(f"{symbol}'s data file")
        times = {
            str(s): np.sort(utc(as_utc(rows["timestamp"])))
            for s, rows in frame.groupby("strategy", sort=False)
        }
        steps = {str(s): int((v or {}).get("step") or 1) for s, v in trading.items() if isinstance(v, dict)}
        close = None if history is None or "close" not in history.frame.columns else history.frame["close"]
        sources.append(Source(symbol=symbol, times=times, steps=steps, close=close))
    return sources, ", ".join(missing)


def _source_folder(folder: Path, symbol: str, recorded: str | None) -> Path | None:
    """A symbol's result folder: beside ``_portfolio/`` (``backtest/<SYMBOL>/<label>/``), else as recorded."""
    candidates = [folder.parent.parent / symbol / Path(recorded).name] if recorded else []
    candidates += [Path(recorded)] if recorded else []
    candidates.append(folder.parent.parent / symbol / folder.name)
    for candidate in candidates:
        if (candidate / "equity.parquet").is_file() and (candidate / "metrics.json").is_file():
            return candidate
    return None


def hold_curve(run: PortfolioRun, strategy: str, sources: list[Source]) -> FloatArray | None:
    """``[m]`` buy-and-hold equity on ``strategy``'s account times, or ``None`` when it cannot be rebuilt
    to end at the recorded ``buy_and_hold``."""
    recorded = (run.trading.get(strategy) or {}).get("buy_and_hold")
    if recorded is None or len(sources) != len(run.symbols) or not sources:
        return None
    parts = []
    for s in sources:
        times = s.times.get(strategy)
        if s.close is None or times is None or times.size == 0:
            return None
        parts.append((times, symbol_hold(s.close, times, s.steps.get(strategy, 1))))
    values = hold_equity(utc(run.rows(strategy)["timestamp"]), parts, len(sources))
    if values.size == 0 or not math.isclose(values[-1] - 1.0, float(recorded), abs_tol=HOLD_TOLERANCE):
        return None
    return values


def symbol_end(source: Source, strategy: str) -> Any:
    """When ``source``'s last period of ``strategy`` ends, its position released: ``step`` bars after its
    last decision (the last bar when the data ends first), else one median decision spacing after it; a
    ``datetime64[ns]`` scalar, or ``None``."""
    times = source.times.get(strategy)
    if times is None or times.size == 0:
        return None
    last = times[-1]
    if source.close is not None:
        index = utc(source.close.index)
        at = int(np.searchsorted(index, last))
        if at < index.size:
            return index[min(at + source.steps.get(strategy, 1), index.size - 1)]
    if times.size < 2:
        return None
    return last + np.median(np.diff(times)).astype("timedelta64[ns]")


def weights_path(
    times: npt.ArrayLike, weights: FloatArray, ends: list[Any]
) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    """The symbols' ``|weight|`` as held between the account's times: ``[p]`` times and ``[S, p]`` weights.

    ``weights`` ``[S, m]`` is each symbol's weight after the decisions at the ``[m]`` ``times``. A symbol
    holds its weight until the next time, except after its last period ends (``ends``, one per symbol;
    ``None``: unknown), when it is flat, at a time that may fall between the account's times or after them.
    """
    t = np.asarray(times, dtype="datetime64[ns]")
    known = np.asarray([e for e in ends if e is not None], dtype="datetime64[ns]")
    x = np.unique(np.concatenate([t, known]))
    held = np.abs(weights)[:, np.clip(np.searchsorted(t, x, side="right") - 1, 0, t.size - 1)]
    for i, end in enumerate(ends):
        if end is not None:
            held[i, x >= np.asarray(end, dtype="datetime64[ns]")] = 0.0
    return x, held


def as_steps(times: npt.ArrayLike, values: FloatArray) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    """``[n]`` values held until the next time, as ``[2n - 1]`` points a plain line draws as steps."""
    t = np.asarray(times, dtype="datetime64[ns]")
    v = np.asarray(values, dtype=np.float64)
    return np.repeat(t, 2)[1:], np.repeat(v, 2)[:-1]
