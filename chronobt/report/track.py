"""The report of a track folder (``<output-dir>/track/<SYMBOL>/<label>/``): the live record over time.

Charts, per target drawn (close when tracked): the realised bars against the one-step-ahead forecasts'
10-90% band and median; the rolling 80% coverage of every resolved step; the cumulative skill against
the naive forecast (1 - cumulative |model error| / cumulative |naive error|, resolved steps in the
order their bars arrived); and the live and backtest per-window losses (mean absolute percentage
error of the median over the horizon) side by side. Then the scores, the drift test and the integrity counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.publish import published_path
from chronobt.report import charts as c
from chronobt.report.page import Page, esc, figure, key_values, num, table
from chronobt.report.sources import read_json, read_table

#: Resolved steps in the rolling coverage window.
ROLLING_STEPS = 48
LEDGER_COLUMNS = ("origin", "step", "timestamp", "target", "median", "actual", "resolved")


def _window_ape(frame: pd.DataFrame) -> np.ndarray:
    """Per forecast window: mean |median - actual| / |actual| (percent), complete windows only."""
    rows = frame.dropna(subset=["actual"])
    ape = (rows["median"] - rows["actual"]).abs() / rows["actual"].abs() * 100
    return rows.assign(ape=ape).groupby("origin")["ape"].mean().to_numpy(dtype=np.float64)


def _backtest_frame(metrics: dict[str, Any], target: str, output_dir: Path) -> pd.DataFrame | None:
    folder = (metrics.get("drift_backtest") or {}).get("folder")
    if not folder:
        return None
    try:  # relative to the output dir, three levels above the track folder
        frame = pd.read_parquet(
            output_dir / folder / "forecasts.parquet", columns=["origin", "target", "median", "actual"]
        )
    except Exception:  # a backtest replaced or removed since the track ran: the page goes without it
        return None
    return frame[frame["target"] == target]


def render_track(folder: Path) -> str:
    """The HTML report of one track folder."""
    rerun = f"rerun `chronobt track` to rewrite {folder}"
    metrics = read_json(published_path(folder, "metrics.json"), rerun=rerun)
    ledger = read_table(published_path(folder, "ledger.parquet"), rerun=rerun, columns=LEDGER_COLUMNS)
    targets = list(metrics.get("targets") or dict.fromkeys(ledger["target"]))
    target = "close" if "close" in targets else targets[0]
    rows = ledger[(ledger["target"] == target) & ledger["resolved"].astype(bool)].sort_values(
        ["origin", "step"]
    )
    page = Page(
        title=f"{metrics.get('symbol', '?')} · {metrics.get('label', '?')} · live track",
        subtitle=esc(
            f"{metrics.get('forecasts', 0)} archived forecasts, "
            f"{metrics.get('windows', 0)} complete and scored, "
            f"{metrics.get('pending', 0)} pending · model {metrics.get('model', '?')} · {target}"
        ),
    )
    if rows.empty:
        page.add("none", "No resolved step yet", "<p>No archived forecast has a bar that arrived yet.</p>")
        return page.html()
    with c.Chart("track", (11, 9.2)) as chart:
        ax_band, ax_cov, ax_skill, ax_loss = chart.grid(4, 1, margins=(0.07, 0.98, 0.05, 0.97), hspace=0.5)
        first = rows[rows["step"] == 1]
        t = c.utc(first["timestamp"])
        if {"0.1", "0.9"} <= set(first.columns):
            ax_band.fill_between(
                t, first["0.1"], first["0.9"], color=c.MODEL, alpha=0.2, lw=0, label="10-90%"
            )
        ax_band.plot(t, first["median"], color=c.MODEL, lw=1.2, label="median (step 1)")
        ax_band.plot(t, first["actual"], color=c.ACTUAL, lw=0, marker=".", label="realised")
        ax_band.set_title("realised bars against the one-step-ahead forecasts")
        ax_band.legend(loc="upper left", ncols=3)
        c.date_axis(ax_band)
        scored = rows.dropna(subset=["actual"]).sort_values(["timestamp", "origin"], kind="stable")
        if {"0.1", "0.9"} <= set(scored.columns):
            inside = ((scored["actual"] >= scored["0.1"]) & (scored["actual"] <= scored["0.9"])).astype(float)
            rolling = inside.rolling(ROLLING_STEPS, min_periods=1).mean()
            ax_cov.plot(c.utc(scored["timestamp"]), rolling, color=c.MODEL, lw=1.2)
        ax_cov.axhline(0.8, color=c.CONTEXT, lw=0.8, ls=":")
        ax_cov.set_ylim(0, 1)
        ax_cov.set_title(f"rolling 80% coverage (last {ROLLING_STEPS} resolved steps)")
        c.date_axis(ax_cov)
        model_err = (scored["median"] - scored["actual"]).abs().cumsum()
        naive_err = (
            (scored["origin_price"] - scored["actual"]).abs().cumsum() if "origin_price" in scored else None
        )
        if naive_err is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                ax_skill.plot(c.utc(scored["timestamp"]), 1 - model_err / naive_err, color=c.MODEL, lw=1.2)
        ax_skill.axhline(0.0, color=c.CONTEXT, lw=0.8, ls=":")
        ax_skill.set_title("cumulative skill against naive (1 - sum |model error| / sum |naive error|)")
        c.date_axis(ax_skill)
        live = _window_ape(ledger[ledger["target"] == target].dropna(subset=["actual"]))
        backtest = _backtest_frame(metrics, target, folder.parents[2])
        samples = [live] + ([_window_ape(backtest)] if backtest is not None else [])
        names = ["live"] + (["backtest"] if backtest is not None else [])
        ax_loss.boxplot([s[np.isfinite(s)] for s in samples])
        ax_loss.set_xticks(range(1, len(names) + 1), names)
        ax_loss.set_title("per-window loss: mean absolute % error of the median over the horizon")
    page.add(
        "charts",
        "Live record",
        figure("track", chart.text, "Resolved steps only; forward-filled bars never count."),
    )
    page.add("scores", "Scores", _scores(metrics, targets))
    page.add("integrity", "Integrity", _integrity(metrics))
    return page.html()


def _scores(metrics: dict[str, Any], targets: list[str]) -> str:
    scores, naive = metrics.get("metrics") or {}, ((metrics.get("baselines") or {}).get("naive") or {})
    drift = metrics.get("drift") or {}
    body = [
        [
            esc(t),
            num((scores.get(t) or {}).get("mase")),
            num((naive.get(t) or {}).get("mase")),
            num((scores.get(t) or {}).get("coverage_80")),
            num((drift.get(t) or {}).get("backtest_mase")),
            num((drift.get(t) or {}).get("backtest_coverage_80")),
            num((drift.get(t) or {}).get("p_value"), 3),
        ]
        for t in targets
    ]
    header = [
        "target",
        "live MASE",
        "naive MASE",
        "live cov 80%",
        "backtest MASE",
        "backtest cov 80%",
        "drift p",
    ]
    test = next((row.get("test") for row in drift.values()), None) if drift else None
    note = (
        f"<p>Drift test: {esc(test)}.</p>"
        if test
        else "<p>No backtest of this label and model to compare.</p>"
    )
    return table(header, body) + note


def _integrity(metrics: dict[str, Any]) -> str:
    revised = metrics.get("revised") or {}
    return key_values(
        {
            "refused (sha256 mismatch or missing)": len(metrics.get("refused") or []) or "0",
            "forecasts made before a data revision": revised.get("count", 0) or "0",
            "complete forecasts not scored": len(metrics.get("dropped") or []) or "0",
            "forward-filled bars left unscored": (metrics.get("filled") or {}).get("actual_bars"),
        }
    )
