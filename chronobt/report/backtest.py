"""The report of one backtest folder: fan charts, per-step skill, calibration, equity, trades, run record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.data.frequency import as_utc
from chronobt.report import charts as c
from chronobt.report.backtest_data import (
    BacktestRun,
    Equity,
    context_before,
    equity_curves,
    load_backtest,
    pick_windows,
    pit_histogram,
    reliability,
    window_losses,
)
from chronobt.report.page import Page, esc, figure, key_values, num, pct, signed, table, tabs
from chronobt.report.record import flatten
from chronobt.report.strategies import strategies_section

BASELINES = ("naive", "seasonal_naive", "drift")


def render_backtest(folder: Path) -> str:
    """The HTML report of a backtest result folder (``<output-dir>/backtest/<SYMBOL>/<preaug>/``)."""
    run = load_backtest(folder)
    s = run.metrics
    page = Page(
        title=f"{s.symbol or '?'} · {s.preaug or '?'} · backtest",
        subtitle=esc(
            f"{len(run.origins)} windows · horizon {run.horizon} · origins "
            f"{run.origins[0]:%Y-%m-%d %H:%M} .. {run.origins[-1]:%Y-%m-%d %H:%M} UTC · "
            f"model {s.model}"
        ),
    )
    page.add("summary", "Summary", _summary(run))
    page.add("windows", "Forecast windows", _fans(run))
    page.add("steps", "Per-step MASE and coverage", _per_step(run))
    page.add("calibration", "Calibration", _calibration(run))
    equity = equity_curves(run)
    if equity is not None:
        page.add("equity", "Equity", _equity(run, equity))
        page.add("trades", "Trades", _trades(run))
    if (strategies := strategies_section(run)) is not None:
        page.add("strategies", "Strategies", strategies)
    page.add("record", "Run record", _record(run))
    return page.html()


def _summary(run: BacktestRun) -> str:
    s = run.metrics
    model, base, skill = s.metrics, s.baselines, s.skill
    rows = []
    for t in run.targets:
        mt = model.get(t, {})
        rows.append(
            [
                esc(t),
                num(mt.get("mase")),
                *(num(base.get(b, {}).get(t, {}).get("mase")) for b in BASELINES),
                signed(num(skill.get(t), 3), skill.get(t)),
                num(mt.get("wql")),
                num(base.get("naive", {}).get(t, {}).get("wql")),
                num(mt.get("coverage_80"), 3),
                num(mt.get("width_80")),
                num(mt.get("directional_accuracy"), 3),
            ]
        )
    header = ["target", "MASE", "naive", "seasonal naive", "drift", "skill", "WQL", "naive WQL"]
    out = table([*header, "cov80", "width80", "dir. acc"], rows)
    out += '<p class="note">skill = 1 - MASE / naive MASE; cov80 = share of actuals inside 0.1-0.9.</p>'
    trading = s.trading
    if trading:
        out += "<h3>Trading rule</h3>" + table(
            ["total return", "buy and hold", "annualized", "Sharpe", "max drawdown", "win rate", "trades"],
            [
                [
                    signed(pct(trading.get("total_return")), trading.get("total_return")),
                    signed(pct(trading.get("buy_and_hold")), trading.get("buy_and_hold")),
                    pct(trading.get("annualized_return")),
                    num(trading.get("sharpe"), 3),
                    pct(-(trading.get("max_drawdown") or 0.0)),
                    num(trading.get("win_rate"), 3),
                    num(trading.get("n_trades")),
                ]
            ],
            left=0,
        )
    return out


def _fans(run: BacktestRun) -> str:
    losses = window_losses(run)
    target = run.primary
    v = run.targets.index(target)
    bars = 3 * run.horizon
    items = []
    for label, i in pick_windows(losses):
        ctx = context_before(run, i, target, bars)
        inside = _coverage(run, i, v)
        title = (
            f"{run.metrics.symbol} {target} · origin {run.origins[i]:%Y-%m-%d %H:%M} UTC · "
            f"window {i + 1} of {len(run.origins)} · wQL {num(losses[i])} · cov80 {num(inside, 3)}"
        )
        with c.Chart(f"fan{i}", (11, 3.6)) as chart:
            (ax,) = chart.grid(margins=(0.07, 0.89, 0.1, 0.9))
            c.fan(
                ax,
                history_t=c.utc(ctx.index),
                history_y=ctx.to_numpy(dtype=np.float64),
                future_t=c.utc(run.times(i)),
                quantiles={lv: run.quantiles[i, v, k] for k, lv in enumerate(run.levels)},
                actual=run.actual[i, v],
            )
            ax.set_title(title)
        items.append((f"{label} · {run.origins[i]:%Y-%m-%d}", figure("fan", chart.text)))
    note = (
        f"{target}: shaded central intervals (widest: 10-90%), median, actuals and the {bars} bars before "
        f"the origin. Best / worst / median: by the window's weighted quantile loss over all targets. "
        f"{esc(run.history_note)}."
    )
    return tabs("window", items) + f'<p class="note">{note}</p>'


def _coverage(run: BacktestRun, window: int, v: int) -> float:
    levels = [round(q, 6) for q in run.levels]
    if 0.1 not in levels or 0.9 not in levels:
        return float("nan")
    lo, hi = run.quantiles[window, v, levels.index(0.1)], run.quantiles[window, v, levels.index(0.9)]
    a = run.actual[window, v]
    return float(np.mean((a >= lo) & (a <= hi)))


def _per_step(run: BacktestRun) -> str:
    target = run.primary
    per_step = run.metrics.per_step.get(target, {})
    base = run.metrics.baselines
    steps = np.arange(1, run.horizon + 1)
    with c.Chart("steps", (11, 3.2)) as chart:
        ax_mase, ax_cov = chart.grid(1, 2, margins=(0.06, 0.99, 0.15, 0.88))
        for ax, key, title in (
            (ax_mase, "mase", f"{target} MASE per step (lower is better)"),
            (ax_cov, "coverage_80", f"{target} coverage of the 10-90% interval"),
        ):
            ax.plot(
                steps, _floats(per_step.get(key), run.horizon), color=c.MODEL, marker="o", ms=3, label="model"
            )
            for name in BASELINES:
                value = base.get(name, {}).get(target, {}).get(key)
                if value is not None:
                    ax.axhline(float(value), color=c.BASELINE_COLOURS[name], ls="--", lw=1.1, label=name)
            ax.set_title(title)
            ax.set_xlabel("step")
        ax_cov.axhline(0.8, color=c.ACTUAL, ls=":", lw=1, label="nominal 0.8")
        ax_cov.set_ylim(0, 1.02)
        ax_mase.legend(loc="best")
        ax_cov.legend(loc="lower left", ncols=2)
    return figure(
        "per-step",
        chart.text,
        "Model per horizon step; the baselines' values (dashed) are pooled over the steps, "
        "as metrics.json records them.",
    )


def _floats(values: Any, n: int) -> np.ndarray:
    if not values:
        return np.full(n, np.nan)
    return np.array([np.nan if x is None else float(x) for x in values], dtype=np.float64)


def _calibration(run: BacktestRun) -> str:
    observed = reliability(run)
    target = run.primary
    edges, density = pit_histogram(run, target)
    with c.Chart("calib", (11, 3.4)) as chart:
        ax_rel, ax_pit = chart.grid(1, 2, margins=(0.06, 0.99, 0.15, 0.88))
        ax_rel.plot([0, 1], [0, 1], color=c.CONTEXT, ls=":", lw=1, label="ideal")
        for k, t in enumerate(run.targets):
            colour = c.TARGET_COLOURS[k % len(c.TARGET_COLOURS)]
            ax_rel.plot(run.levels, observed[k], marker="o", ms=3, color=colour, label=t)
        ax_rel.set(xlim=(0, 1), ylim=(0, 1), xlabel="quantile level", ylabel="share of actuals below")
        ax_rel.set_title("Reliability: each quantile level vs its observed frequency")
        ax_rel.legend(loc="upper left")
        ax_pit.bar(
            edges[:-1], density, width=np.diff(edges), align="edge", color=c.MODEL, alpha=0.7, ec="white"
        )
        ax_pit.axhline(1.0, color=c.ACTUAL, ls=":", lw=1)
        ax_pit.set(xlim=(0, 1), xlabel="PIT (position of the actual among the quantiles)", ylabel="density")
        ax_pit.set_title(f"{target} PIT histogram (flat = calibrated)")
    return figure(
        "calibration",
        chart.text,
        "From forecasts.parquet: a curve below the diagonal means the quantiles sit too low; a U-shaped "
        "PIT histogram means the intervals are too narrow, a hump too wide.",
    )


def _equity(run: BacktestRun, eq: Equity) -> str:
    trading = run.metrics.trading or {}
    with c.Chart("equity", (11, 4.6)) as chart:
        ax, ax_dd = chart.grid(2, 1, sharex=True, height_ratios=(3, 1.3), margins=(0.07, 0.87, 0.08, 0.93))
        t_eq = c.utc(eq.times)
        ax.step(t_eq, eq.equity, where="post", color=c.MODEL, lw=1.6, label="strategy")
        if eq.hold.size:
            ax.plot(c.utc(eq.hold_times), eq.hold, color=c.ACTUAL, lw=1.0, alpha=0.8, label="buy and hold")
        values = np.concatenate([eq.equity, eq.hold])
        if values.size and np.nanmin(values) > 0 and np.nanmax(values) / np.nanmin(values) > 20:
            c.plain_log_y(ax)
        ax.axhline(1.0, color=c.CONTEXT, lw=0.8, ls=":")
        ax.set_title(
            f"Equity (from 1): strategy {pct(trading.get('total_return'), 1)} vs buy and hold "
            f"{pct(trading.get('buy_and_hold'), 1)} · Sharpe {num(trading.get('sharpe'), 3)}"
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
        dd = Equity.drawdown(eq.equity) * 100
        ax_dd.fill_between(t_eq, dd, 0, step="post", color=c.MODEL, alpha=0.35, lw=0, label="strategy")
        if eq.hold.size:
            ax_dd.plot(
                c.utc(eq.hold_times),
                Equity.drawdown(eq.hold) * 100,
                color=c.ACTUAL,
                lw=0.9,
                label="buy and hold",
            )
        ax_dd.set_ylabel("drawdown %")
        ax_dd.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
        c.date_axis(ax_dd)
    return figure(
        "equity",
        chart.text,
        "From trades.parquet: the equity compounds each used window's net return at its exit (flat "
        "windows hold cash); buy and hold is the close relative to the first entry, before fees.",
    )


def _trades(run: BacktestRun) -> str:
    if not len(run.trades):
        return '<p class="note">No trades: the median forecast never beat the round-trip fee.</p>'
    exits = {run.origins[i]: run.times(i)[-1] for i in range(len(run.origins))}
    rows = []
    for r in run.trades.sort_values("origin").itertuples(index=False):
        origin = as_utc(pd.Timestamp(r.origin))
        rows.append(
            [
                esc(f"{origin:%Y-%m-%d %H:%M}"),
                esc(f"{exits[origin]:%Y-%m-%d %H:%M}") if origin in exits else "—",
                esc(r.side),
                num(r.entry, 6),
                num(r.exit, 6),
                signed(pct(r.gross_return), r.gross_return),
                signed(pct(r.net_return), r.net_return),
            ]
        )
    header = ["entry (origin)", "exit", "side", "entry price", "exit price", "gross", "net"]
    return table(header, rows, left=3, scroll=True) + f'<p class="note">{len(rows)} trades, UTC.</p>'


def _record(run: BacktestRun) -> str:
    s, mf = run.metrics, run.manifest
    model = mf.get("model") or {}
    pairs: dict[str, Any] = {
        "model": s.model,
        "model checksum": s.model_checksum,
        "model source": model.get("source"),
        "model revision": model.get("revision"),
        "preaug": s.preaug,
        "preaug params": s.preaug_params,
        "horizon": s.horizon or None,
        "context length": s.context_length or None,
        "windows": s.windows or None,
        "origins": f"{s.first_origin or None} .. {s.last_origin or None}",
        "targets": ", ".join(run.targets),
        "quantiles": ", ".join(f"{q:g}" for q in run.levels),
        **flatten("compile", s.compile or {}),
        **flatten("data", mf.get("data") or {}),
        "device": mf.get("device"),
        "dtype": mf.get("dtype"),
        "seed": mf.get("seed"),
        **flatten("timings", mf.get("timings") or s.timings),  # manifest.json; older runs: metrics.json
        **flatten("versions", mf.get("versions") or {}),
        "command": " ".join(map(str, mf.get("command") or [])),
        "created at": mf.get("created_at"),
        "folder": str(run.folder),
    }
    return key_values(pairs)
