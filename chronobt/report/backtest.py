"""The report of one backtest folder: fan charts, per-step skill, calibration, equity, trades, run record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.data.frequency import as_utc
from chronobt.report import charts as c
from chronobt.report.axes import YWindow, closed_hours
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
    calibrated = (s.calibrated or {}).get("metrics") or {}
    rows = []
    for t in run.targets:
        mt = model.get(t, {})
        ct = calibrated.get(t, {})
        intervals = [num(mt.get("coverage_80"), 3), num(mt.get("width_80"))]
        if calibrated:
            intervals = [num(ct.get("coverage_80"), 3), intervals[0], num(ct.get("width_80")), intervals[1]]
        rows.append(
            [
                esc(t),
                num(mt.get("mase")),
                *(num(base.get(b, {}).get(t, {}).get("mase")) for b in BASELINES),
                signed(num(skill.get(t), 3), skill.get(t)),
                num(mt.get("wql")),
                num(base.get("naive", {}).get(t, {}).get("wql")),
                *intervals,
                num(mt.get("directional_accuracy"), 3),
            ]
        )
    header = ["target", "MASE", "naive", "seasonal naive", "drift", "skill", "WQL", "naive WQL"]
    interval_header = ["cov80", "width80"]
    if calibrated:
        interval_header = ["cov80 calibrated", "cov80 raw", "width80 calibrated", "width80 raw"]
    out = table([*header, *interval_header, "dir. acc"], rows)
    note = f"skill = 1 - MASE / naive MASE; cov80 = share of actuals inside 0.1-0.9. {intervals_note(run)}"
    out += f'<p class="note">{note.strip()}</p>'
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
    compressed = False
    calibrated = run.calibrated is not None
    for label, i in pick_windows(losses):
        ctx = context_before(run, i, target, bars)
        inside = _coverage(run, i, v, run.issued)
        title = (
            f"{run.metrics.symbol} {target} · origin {run.origins[i]:%Y-%m-%d %H:%M} UTC · "
            f"window {i + 1} of {len(run.origins)} · wQL {num(losses[i])} · cov80 {num(inside, 3)}"
        )
        if calibrated:
            title += f" (raw {num(_coverage(run, i, v, run.quantiles), 3)})"
        with c.Chart(f"fan{i}", (11, 3.6)) as chart:
            (ax,) = chart.grid(margins=(0.07, 0.89, 0.14, 0.9))
            window, axis = c.fan(
                ax,
                history_t=c.utc(ctx.index),
                history_y=ctx.to_numpy(dtype=np.float64),
                future_t=c.utc(run.times(i)),
                quantiles={lv: run.issued[i, v, k] for k, lv in enumerate(run.levels)},
                actual=run.actual[i, v],
                closed_hours=closed_hours(run.manifest.get("data")),
                outline=raw_band(run, i, v) if calibrated else None,
            )
            ax.set_title(title)
        compressed |= axis is not None
        items.append((f"{label} · {run.origins[i]:%Y-%m-%d}", figure("fan", chart.text, cut_note(window))))
    note = (
        f"{target}: shaded central intervals (widest: 10-90%), median, actuals and the {bars} bars before "
        f"the origin. Best / worst / median: by the window's weighted quantile loss over all targets. "
        f"{esc(run.history_note)}."
    )
    if calibrated:
        note += (
            " The bands, the median line, wQL and cov80 are the issued intervals: calibrated (the "
            "calibrated_&lt;level&gt; columns of forecasts.parquet); the dashed lines are the raw model's "
            "10-90% band, and its cov80 is in brackets."
        )
    if compressed:
        note += (
            " The series has closed hours (nights, weekends, holidays): bars are drawn side by side, "
            "labelled at each day's or session's first bar, with a dotted line where time was left out."
        )
    return tabs("window", items) + f'<p class="note">{note}</p>'


def cut_note(window: YWindow) -> str:
    """The caption of a fan chart whose band was cut to keep the bars readable (else empty)."""
    if not window.clipped:
        return ""
    steps = int((window.above | window.below).sum())
    return (
        f"The widest band leaves the axis at {steps} of {len(window.above)} steps (red triangles); the "
        "axis is cut so that the bars and the median stay readable."
    )


def raw_band(run: BacktestRun, window: int, v: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The raw model's widest central band ``(lower [h], upper [h])`` of one window and target."""
    bands = c.bands_of(run.levels)
    if not bands:
        return None
    levels = [round(q, 6) for q in run.levels]
    lo, hi = (levels.index(q) for q in bands[0])
    return run.quantiles[window, v, lo], run.quantiles[window, v, hi]


def intervals_note(run: BacktestRun) -> str:
    """One sentence: which intervals the run issued, calibrated or raw, and why raw when calibration was
    asked for and not applied (``interval_calibration``); empty for older outputs that do not say."""
    record = run.metrics.interval_calibration or {}
    if run.calibrated is not None or run.metrics.calibrated:
        method = ((run.metrics.calibrated or {}).get("method") or {}).get("method", "conformal")
        method = {"aci": "adaptive conformal inference"}.get(str(method), str(method))
        return (
            f"The intervals are calibrated ({esc(method)}, from the windows resolved by each origin): "
            "calibrated columns are what the run issued, raw the model's own."
        )
    if record:
        reason = record.get("reason")
        return f"The intervals are the raw model's{f': {esc(reason)}' if reason else ''}."
    return ""


def _coverage(run: BacktestRun, window: int, v: int, quantiles: np.ndarray) -> float:
    levels = [round(q, 6) for q in run.levels]
    if 0.1 not in levels or 0.9 not in levels:
        return float("nan")
    lo, hi = quantiles[window, v, levels.index(0.1)], quantiles[window, v, levels.index(0.9)]
    a = run.actual[window, v]
    return float(np.mean((a >= lo) & (a <= hi)))


def _per_step(run: BacktestRun) -> str:
    target = run.primary
    per_step = run.metrics.per_step.get(target, {})
    coverage = coverage_steps(run, target)
    with c.Chart("steps", (11, 3.2)) as chart:
        ax_mase, ax_cov = chart.grid(1, 2, margins=(0.06, 0.99, 0.15, 0.88))
        c.steps_against_baselines(
            ax_mase,
            model=_floats(per_step.get("mase"), run.horizon),
            baselines=baseline_steps(run, target, "mase"),
            title=f"{target} MASE per step (lower is better)",
        )
        (label, issued), *raw = coverage.items()
        c.steps_against_baselines(
            ax_cov,
            model=issued,
            baselines=baseline_steps(run, target, "coverage_80"),
            title=f"{target} coverage of the 10-90% interval" + (" (calibrated and raw)" if raw else ""),
            model_label=label,
            others=dict(raw),
        )
        ax_cov.axhline(0.8, color=c.ACTUAL, ls=":", lw=1, label="nominal 0.8")
        ax_cov.set_ylim(0, 1.02)
        ax_mase.legend(loc="best")
        ax_cov.legend(loc="lower left", ncols=2)
    pooled = not run.metrics.baselines_per_step
    caption = "Model and baselines per horizon step, from metrics.json."
    if pooled:
        caption = (
            "Model per horizon step; this metrics.json predates the baselines' per-step scores, so each "
            "baseline is its value pooled over the steps (dotted). Rerun the backtest for per-step lines."
        )
    if raw:
        caption += (
            " Coverage: the calibrated intervals the run issued (solid, metrics.json calibrated.per_step) "
            "beside the raw model's (dashed, per_step); MASE scores the raw median."
        )
    return figure("per-step", chart.text, caption)


def coverage_steps(run: BacktestRun, target: str) -> dict[str, np.ndarray]:
    """The model's 80% coverage per step ``[h]`` to draw: ``{"model": raw}`` for a raw run, else
    ``{"model, calibrated": ..., "model, raw": ...}`` (issued first), from metrics.json."""
    raw = _floats(run.metrics.per_step.get(target, {}).get("coverage_80"), run.horizon)
    calibrated = ((run.metrics.calibrated or {}).get("per_step") or {}).get(target, {}).get("coverage_80")
    if not calibrated:
        return {"model": raw}
    return {"model, calibrated": _floats(calibrated, run.horizon), "model, raw": raw}


def baseline_steps(run: BacktestRun, target: str, key: str) -> dict[str, np.ndarray | float]:
    """Each baseline's ``key`` per step ``[h]`` (``baselines_per_step``), else its pooled value (older files).

    A baseline missing from both is left out.
    """
    out: dict[str, np.ndarray | float] = {}
    for name in BASELINES:
        steps = run.metrics.baselines_per_step.get(name, {}).get(target, {}).get(key)
        pooled = run.metrics.baselines.get(name, {}).get(target, {}).get(key)
        if steps:
            out[name] = _floats(steps, run.horizon)
        elif pooled is not None:
            out[name] = float(pooled)
    return out


def _floats(values: Any, n: int) -> np.ndarray:
    if not values:
        return np.full(n, np.nan)
    return np.array([np.nan if x is None else float(x) for x in values], dtype=np.float64)


def _calibration(run: BacktestRun) -> str:
    target = run.primary
    calibrated = run.calibrated is not None
    edges, density = pit_histogram(run, target)
    with c.Chart("calib", (11, 3.4)) as chart:
        ax_rel, ax_pit = chart.grid(1, 2, margins=(0.06, 0.99, 0.15, 0.88))
        ax_rel.plot([0, 1], [0, 1], color=c.CONTEXT, ls=":", lw=1, label="ideal")
        for kind, observed in reliability_curves(run).items():
            faint = kind == "raw" and calibrated
            for k, t in enumerate(run.targets):
                colour = c.TARGET_COLOURS[k % len(c.TARGET_COLOURS)]
                style: dict[str, Any] = {"ls": "--", "alpha": 0.55, "mfc": "none"} if faint else {"label": t}
                ax_rel.plot(run.levels, observed[k], marker="o", ms=3, color=colour, **style)
        if calibrated:
            ax_rel.plot([], [], color=c.CONTEXT, marker="o", ms=3, label="calibrated (solid)")
            ax_rel.plot([], [], color=c.CONTEXT, ls="--", marker="o", ms=3, mfc="none", label="raw (dashed)")
        ax_rel.set(xlim=(0, 1), ylim=(0, 1), xlabel="quantile level", ylabel="share of actuals below")
        ax_rel.set_title("Reliability: each quantile level vs its observed frequency")
        ax_rel.legend(loc="upper left")
        ax_pit.bar(
            edges[:-1],
            density,
            width=np.diff(edges),
            align="edge",
            color=c.MODEL,
            alpha=0.7,
            ec="white",
            label="calibrated" if calibrated else None,
        )
        if calibrated:
            _, raw = pit_histogram(run, target, run.quantiles)
            ax_pit.stairs(raw, edges, color=c.ACTUAL, lw=1.1, ls="--", label="raw")
            ax_pit.set_ylim(0, 1.3 * float(np.nanmax([*density, *raw, 1.0])))
            ax_pit.legend(loc="upper left", ncols=2)
        ax_pit.axhline(1.0, color=c.ACTUAL, ls=":", lw=1)
        ax_pit.set(xlim=(0, 1), xlabel="PIT (position of the actual among the quantiles)", ylabel="density")
        ax_pit.set_title(f"{target} PIT histogram (flat = calibrated)")
    caption = (
        "From forecasts.parquet: a curve below the diagonal means the quantiles sit too low; a U-shaped "
        "PIT histogram means the intervals are too narrow, a hump too wide."
    )
    if calibrated:
        caption += (
            " Solid lines and bars: the calibrated quantiles the run issued (calibrated_&lt;level&gt;); "
            "dashed: the raw model's (the plain level columns)."
        )
    return figure("calibration", chart.text, caption)


def reliability_curves(run: BacktestRun) -> dict[str, np.ndarray]:
    """``{kind: [v, Q]}`` reliability of the quantiles drawn: ``{"raw": ...}`` for a raw run, else
    ``{"raw": ..., "calibrated": ...}`` (the issued ones drawn last, on top)."""
    out = {"raw": reliability(run, run.quantiles)}
    if run.calibrated is not None:
        out["calibrated"] = reliability(run, run.calibrated)
    return out


def _equity(run: BacktestRun, eq: Equity) -> str:
    trading = run.metrics.trading or {}
    with c.Chart("equity", (11, 4.6)) as chart:
        c.equity_drawdown(
            chart,
            times=eq.times,
            equity=eq.equity,
            benchmark=(eq.hold_times, eq.hold) if eq.hold.size else None,
            title=(
                f"Equity (from 1): strategy {pct(trading.get('total_return'), 1)} vs buy and hold "
                f"{pct(trading.get('buy_and_hold'), 1)} · Sharpe {num(trading.get('sharpe'), 3)}"
            ),
            closed_hours=closed_hours(run.manifest.get("data")),
        )
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
        **flatten("interval calibration", s.interval_calibration or {}),
        **flatten("calibration", ((s.calibrated or {}).get("method") or {})),
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
