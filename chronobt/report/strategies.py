"""The strategies page of a backtest report: every ``--strategy`` side by side.

From ``metrics.json`` ``trading`` (``{strategy: {...}}``), ``equity.parquet`` and ``trades.parquet``:
a table of every strategy's numbers, each strategy's equity and drawdown against buy-and-hold on the
close, and the latest window's fan chart with each strategy's entry and exit marked (limit fills as
hollow markers). :func:`primary_strategy` narrows a run's trading block and trades to the first strategy
for the report's single-strategy views (files written before strategies existed pass unchanged).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from chronobt.report import charts as c
from chronobt.report.axes import bar_positions, closed_hours
from chronobt.report.page import esc, figure, num, pct, signed, table
from chronobt.report.sources import as_utc, read_json, read_table
from chronobt.runs.summary import BacktestSummary

if TYPE_CHECKING:
    from chronobt.report.backtest_data import BacktestRun

#: Below this many trades a strategy's Sharpe is marked as too few to judge.
FEW_TRADES = 10
_MARKERS = {"target": "^", "stop": "v", "horizon": "s"}


def strategy_blocks(trading: Any) -> dict[str, dict[str, Any]]:
    """``{strategy: summary}`` of a ``metrics.json`` ``trading`` block; ``{}`` for an older flat one."""
    if not isinstance(trading, dict) or not trading:
        return {}
    if all(isinstance(v, dict) and "total_return" in v for v in trading.values()):
        return trading
    return {}


def primary_strategy(summary: BacktestSummary, trades: pd.DataFrame) -> tuple[BacktestSummary, pd.DataFrame]:
    """``summary`` with ``trading`` the first strategy's block and that strategy's ``trades``."""
    blocks = strategy_blocks(summary.trading)
    if not blocks:
        return summary, trades
    first = next(iter(blocks))
    if "strategy" in trades.columns:
        trades = trades[trades["strategy"] == first].reset_index(drop=True)
    return replace(summary, trading={**blocks[first], "label": first}), trades


def strategies_section(run: BacktestRun) -> str | None:
    """The strategies page's HTML, or ``None`` when the run wrote no ``equity.parquet``."""
    path = run.folder / "equity.parquet"
    if not path.exists():
        return None
    rerun = f"rerun `chronobt backtest` to rewrite {run.folder}"
    equity = read_table(path, rerun=rerun)
    trades_path = run.folder / "trades.parquet"
    trades = read_table(trades_path, rerun=rerun) if trades_path.exists() else pd.DataFrame()
    blocks = strategy_blocks(read_json(run.folder / "metrics.json", rerun=rerun).get("trading"))
    if not blocks or equity.empty:
        return None
    out = _table(blocks)
    out += _curves(run, equity, blocks)
    fan = _latest_fan(run, trades)
    if fan:
        out += fan
    return out


def _table(blocks: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, t in blocks.items():
        n = int(t.get("n_trades") or 0)
        few = f" (fewer than {FEW_TRADES})" if n < FEW_TRADES else ""
        rows.append(
            [
                esc(name),
                signed(pct(t.get("total_return")), t.get("total_return")),
                signed(pct(t.get("buy_and_hold")), t.get("buy_and_hold")),
                pct(t.get("annualized_return")),
                num(t.get("sharpe"), 3),
                esc(f"{n}{few}"),
                pct(-(t.get("max_drawdown") or 0.0)),
                num(t.get("win_rate"), 3),
                pct(t.get("exposure")),
                pct((t.get("costs") or {}).get("total")),
            ]
        )
    header = ["strategy", "total", "buy and hold", "annualized", "Sharpe", "trades", "max drawdown"]
    costs = next(iter(blocks.values())).get("costs") or {}
    note = (
        f"Entries {esc(costs.get('entry', '?'))}, fee {num(costs.get('fee_bps'), 2)} bps and slippage "
        f"{num(costs.get('slippage_bps'), 2)} bps per side, borrow {pct(costs.get('borrow_rate'))} a year; "
        "costs = what the trades paid, summed as fractions of equity."
    )
    return table([*header, "win rate", "exposure", "costs"], rows, left=1) + f'<p class="note">{note}</p>'


def _curves(run: BacktestRun, equity: pd.DataFrame, blocks: dict[str, dict[str, Any]]) -> str:
    hold = _hold_curve(run, equity)
    every = [as_utc(equity["timestamp"]), *([] if hold is None else [hold.index])]
    axis, x = c.shared_x(every, closed_hours=closed_hours(run.manifest.get("data")))
    bottom = 0.08 if axis is None else 0.11  # room for the bar axis's label
    with c.Chart("strategies", (11, 4.8)) as chart:
        ax, ax_dd = chart.grid(2, 1, sharex=True, height_ratios=(3, 1.3), margins=(0.07, 0.84, bottom, 0.93))
        for k, name in enumerate(blocks):
            rows = equity[equity["strategy"] == name]
            if rows.empty:
                continue
            t = x(as_utc(rows["timestamp"]))
            values = rows["equity"].to_numpy(dtype=np.float64)
            colour = c.TARGET_COLOURS[k % len(c.TARGET_COLOURS)]
            ax.step(t, values, where="post", color=colour, lw=1.4, label=name)
            peak = np.maximum.accumulate(np.concatenate([[1.0], values]))[1:]
            ax_dd.step(t, (values / peak - 1.0) * 100, where="post", color=colour, lw=1.0, label=name)
        if hold is not None:
            ht, hv = x(hold.index), hold.to_numpy(dtype=np.float64)
            ax.plot(ht, hv, color=c.ACTUAL, lw=1.0, alpha=0.8, label="buy and hold")
            ax_dd.plot(ht, (hv / np.maximum.accumulate(hv) - 1.0) * 100, color=c.ACTUAL, lw=0.9)
        ax.axhline(1.0, color=c.CONTEXT, lw=0.8, ls=":")
        ax.set_title("Equity (from 1) of every strategy against buy and hold")
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
        ax_dd.set_ylabel("drawdown %")
        c.label_x(ax_dd, axis)
    return figure(
        "strategies",
        chart.text,
        "From equity.parquet: each strategy's equity after each decision point (flat periods hold cash); "
        "buy and hold is the close relative to the first decision point's, before fees.",
    )


def _hold_curve(run: BacktestRun, equity: pd.DataFrame) -> pd.Series | None:
    if run.history is None:
        return None
    closes = run.history.between("close", as_utc(equity["timestamp"]).min(), run.timestamps[-1])
    if closes.empty:
        return None
    return closes / float(closes.iloc[0])


def _latest_fan(run: BacktestRun, trades: pd.DataFrame) -> str | None:
    """The latest window's close fan (the issued quantiles, which the strategies trade) with each strategy's
    entry (circle; hollow: a limit fill) and exit (by reason: target up, stop down, horizon square)."""
    if "close" not in run.targets or trades.empty or "entry_time" not in trades.columns:
        return None
    from chronobt.report.backtest_data import context_before

    i, v = len(run.origins) - 1, run.targets.index("close")
    origin = run.origins[i]
    mine = trades[as_utc(trades["origin"]) == origin]
    with c.Chart("latest-fan", (11, 3.8)) as chart:
        (ax,) = chart.grid(margins=(0.07, 0.84, 0.1, 0.9))
        ctx = context_before(run, i, "close", 2 * run.horizon)
        _, axis = c.fan(
            ax,
            history_t=c.utc(ctx.index),
            history_y=ctx.to_numpy(dtype=np.float64),
            future_t=c.utc(run.times(i)),
            quantiles={lv: run.issued[i, v, k] for k, lv in enumerate(run.levels)},
            actual=run.actual[i, v],
            closed_hours=closed_hours(run.manifest.get("data")),
        )

        def x(when: Any) -> Any:  # a fill's time where the fan drew it (a bar-index axis: its bar)
            times = c.utc(pd.DatetimeIndex([when]))
            return times if axis is None else bar_positions(axis, times)

        for k, r in enumerate(mine.itertuples(index=False)):
            colour = c.TARGET_COLOURS[k % len(c.TARGET_COLOURS)]
            limit = str(r.strategy).startswith("range")
            ax.scatter(
                x(r.entry_time),
                [r.entry],
                marker="o",
                facecolors="none" if limit else colour,
                edgecolors=colour,
                s=40,
                zorder=5,
                label=f"{r.strategy} {r.side} entry",
            )
            ax.scatter(
                x(r.exit_time),
                [r.exit],
                marker=_MARKERS.get(str(r.exit_reason), "x"),
                color=colour,
                s=40,
                zorder=5,
                label=f"{r.strategy} exit ({r.exit_reason})",
            )
        ax.set_title(f"Latest window, origin {origin:%Y-%m-%d %H:%M} UTC: close fan, fills")
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7)
    note = "" if len(mine) else " No strategy traded this window."
    return figure("latest-fan", chart.text, f"Entries: filled circle market, hollow limit.{note}")
