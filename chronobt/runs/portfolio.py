"""``backtest A B C --portfolio``: one account over the symbols' strategies, from their written results.

After the symbols' backtests are written, each symbol's ``equity.parquet`` and ``trades.parquet`` give
every strategy's sleeve (:class:`chronobt.evaluation.portfolio.Sleeve`: the decision times, the size held
and the net return of each period, the last one ending ``step`` bars after its decision); buy-and-hold
over each period is the symbol's close from one decision time to the next (the last: ``step`` bars later,
or the last bar). Per strategy, the sleeves are combined into one account
(:func:`chronobt.evaluation.portfolio.combine`) and scored like a symbol
(:func:`chronobt.evaluation.trading_stats.strategy_statistics`, the periods per year measured from the
account's timeline). The account is written to ``<output-dir>/backtest/_portfolio/<label>/`` (the run
label when every symbol ran the same one, else ``mixed``) as one folder replaced atomically:

- ``equity.parquet``: per (strategy, time of the union timeline) ``return``, ``equity``,
  ``gross_exposure``, and ``weight_<SYMBOL>`` / ``contribution_<SYMBOL>`` (the attribution);
- ``trades.parquet``: every symbol's trades with ``symbol``, ``weight`` (the position the account took)
  and ``portfolio_return`` (the trade's net return times ``weight / size``);
- ``metrics.json``: ``symbols``, ``label``, ``max_gross``, ``max_weight`` and ``trading`` {strategy:
  {the statistics, ``periods_per_year``, ``costs`` {``total``}, ``attribution`` {symbol:
  {``contribution``, ``mean_weight``, ``max_weight``}}}};
- ``manifest.json``: the run record with the source folders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.atomic import replace_dir_atomic, write_json_atomic, write_parquet_atomic
from chronobt.config import BacktestConfig
from chronobt.errors import ChronobtError, DataError
from chronobt.evaluation.portfolio import (
    Sleeve,
    attribution,
    combine,
    equity_frame,
    periods_per_year,
)
from chronobt.evaluation.trading_stats import strategy_statistics
from chronobt.pipeline.jobs import load_symbol
from chronobt.runs.results import preaug_slug, run_record
from chronobt.runs.summary import BacktestReport, SymbolResult

PORTFOLIO_DIR = "_portfolio"


@dataclass
class PortfolioReport:
    """What ``--portfolio`` wrote: the folder and ``metrics.json``'s ``trading`` per strategy."""

    folder: Path
    symbols: tuple[str, ...]
    trading: dict[str, dict[str, Any]] = field(default_factory=dict)


def portfolio_folder(output_dir: Path, label: str) -> Path:
    return output_dir / "backtest" / PORTFOLIO_DIR / preaug_slug(label)


def _utc(values: Any) -> np.ndarray:
    """Timestamps (tz-aware or naive UTC) as naive ``datetime64[ns]`` UTC."""
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.to_numpy(dtype="datetime64[ns]"))


def _hold(close: pd.Series, times: np.ndarray, step: int) -> np.ndarray:
    """``[n]`` close-to-close return from each decision time to the next (the last: ``step`` bars on)."""
    index = _utc(close.index)
    at = np.searchsorted(index, times)
    ok = (at < index.size) & (index[np.minimum(at, index.size - 1)] == times)
    end = np.append(at[1:], min(at[-1] + step, index.size - 1)) if at.size else at
    price = close.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = price[np.minimum(end, index.size - 1)] / price[np.minimum(at, index.size - 1)] - 1.0
    return np.where(ok, out, np.nan)


def _end(close: pd.Series, last: np.datetime64, step: int) -> np.datetime64 | None:
    """The time of the bar ``step`` bars after the last decision (the last bar when the data ends first)."""
    index = _utc(close.index)
    at = int(np.searchsorted(index, last))
    return None if at >= index.size else index[min(at + step, index.size - 1)]


def _sleeve(result: SymbolResult, strategy: str, close: pd.Series | None) -> tuple[Sleeve, pd.DataFrame]:
    """One symbol's sleeve of ``strategy`` and its trade rows, from the symbol's written files."""
    equity = pd.read_parquet(result.folder / "equity.parquet")
    trades = pd.read_parquet(result.folder / "trades.parquet")
    rows = equity[equity["strategy"] == strategy]
    mine = trades[trades["strategy"] == strategy] if len(trades) else trades
    times = _utc(rows["timestamp"])
    size = np.zeros(times.size)
    if len(mine):
        at = np.searchsorted(times, _utc(mine["origin"]))
        size[at] = np.abs(mine["size"].to_numpy(dtype=np.float64))
    step = int(((result.summary.trading or {}).get(strategy) or {}).get("step") or 1)
    hold = _hold(close, times, step) if close is not None else np.full(times.size, np.nan)
    sleeve = Sleeve(
        symbol=result.symbol,
        times=times,
        returns=rows["return"].to_numpy(dtype=np.float64),
        size=size,
        hold=hold,
        end=None if close is None else _end(close, times[-1], step),
    )
    return sleeve, mine.assign(symbol=result.symbol)


def _close(symbol: str, config: BacktestConfig) -> pd.Series | None:
    try:
        return load_symbol(symbol, config).frame["close"]
    except (ChronobtError, KeyError):  # a path argument: buy-and-hold left undefined
        return None


def _account(
    results: Sequence[SymbolResult], strategy: str, config: BacktestConfig, closes: dict[str, Any]
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """One strategy's account: its ``trading`` entry, equity rows and trade rows."""
    parts = [_sleeve(r, strategy, closes[r.symbol]) for r in results]
    account = combine([p[0] for p in parts], max_gross=config.max_gross, max_weight=config.max_weight)
    trades, paid = [], 0.0
    for i, (_, rows) in enumerate(parts):
        k = np.searchsorted(account.times, _utc(rows["origin"])) if len(rows) else np.empty(0, dtype=int)
        factor = account.scale[i, k]
        paid += float(np.sum(factor * rows["costs"].to_numpy(dtype=np.float64))) if len(rows) else 0.0
        trades.append(
            rows.assign(
                weight=factor * rows["size"].to_numpy(dtype=np.float64),
                portfolio_return=factor * rows["net_return"].to_numpy(dtype=np.float64),
            )
        )
    table = pd.concat(trades, ignore_index=True)
    per_year = periods_per_year(account.times)
    stats = strategy_statistics(
        account.returns,
        account.equity,
        table.assign(net_return=table["portfolio_return"], size=table["weight"]),
        account.hold,
        1.0,
        per_year if math.isfinite(per_year) else 1.0,
        config.seed,
        gross_exposure=account.gross_exposure,
    )
    entry = {
        **stats,
        "periods_per_year": per_year,
        "costs": {"total": paid},  # the trades' costs times weight / size
        "attribution": attribution(account),
    }
    return entry, equity_frame(account, strategy), table


def run_portfolio(
    config: BacktestConfig,
    report: BacktestReport,
    *,
    model: dict[str, Any] | None = None,
    command: Sequence[str] | None = None,
) -> PortfolioReport:
    """Combine the written zero-shot results of ``report`` into one account per strategy and write it.

    Raises
    ------
    DataError
        No symbol has a trading view (none succeeded, or close is not forecast).
    """
    results = [r for r in report.results if r.finetune is None and (r.folder / "equity.parquet").exists()]
    if not results:
        raise DataError("--portfolio: no symbol has a trading view to combine (close must be forecast)")
    labels = {r.preaug for r in results}
    label = labels.pop() if len(labels) == 1 else "mixed"
    closes = {r.symbol: _close(r.symbol, config) for r in results}
    out = PortfolioReport(portfolio_folder(config.output_dir, label), tuple(r.symbol for r in results))
    equity, trades = [], []
    for strategy in dict.fromkeys(_strategies(results)):
        entry, e, t = _account(results, strategy, config, closes)
        out.trading[strategy] = _strict(entry)
        equity.append(e)
        trades.append(t)
    metrics = {
        "symbols": list(out.symbols),
        "label": label,
        "max_gross": config.max_gross,
        "max_weight": config.max_weight,
        "trading": out.trading,
    }
    manifest = run_record(
        config=config,
        model=model or {},
        engine=report.engine_record,
        command=command,
        symbols=list(out.symbols),
        sources={r.symbol: str(r.folder) for r in results},
    )
    root = config.output_dir
    with replace_dir_atomic(out.folder, root=root) as tmp:
        write_parquet_atomic(tmp / "equity.parquet", pd.concat(equity, ignore_index=True), root=root)
        write_parquet_atomic(tmp / "trades.parquet", pd.concat(trades, ignore_index=True), root=root)
        write_json_atomic(tmp / "metrics.json", metrics, root=root)
        write_json_atomic(tmp / "manifest.json", manifest, root=root)
    return out


def _strategies(results: Sequence[SymbolResult]) -> list[str]:
    names: list[str] = []
    for r in results:
        names.extend((r.summary.trading or {}).keys())
    return names


def _strict(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in entry.items()}
