"""The report of a forecast folder: the latest fan chart per target with recent history, and the numbers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.errors import DataError
from chronobt.publish import published_path
from chronobt.report import charts as c
from chronobt.report.axes import closed_hours
from chronobt.report.backtest_data import level_of
from chronobt.report.page import Page, esc, figure, key_values, num, table
from chronobt.report.record import flatten
from chronobt.report.sources import as_utc, load_history, read_json, read_table

ROW_COLUMNS = ("step", "timestamp", "target", "median")
#: Prefix of latest.parquet's raw quantile columns (``raw_0.1``), beside the issued (calibrated) ones.
RAW_PREFIX = "raw_"
#: History before the forecast: this many horizons of bars.
HISTORY_HORIZONS = 3


def load_latest(folder: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """``latest.json`` and the forecast rows (``latest.parquet``, else the rows inside ``latest.json``)."""
    rerun = f"rerun `chronobt forecast` to rewrite {folder}"
    payload = read_json(published_path(folder, "latest.json"), rerun=rerun)  # as published: both agree
    if (latest := published_path(folder, "latest.parquet")).exists():
        frame = read_table(latest, rerun=rerun, columns=ROW_COLUMNS)
    else:
        frame = pd.DataFrame(payload.get("forecast") or [])
        missing = [col for col in ROW_COLUMNS if col not in frame.columns]
        if missing:
            raise DataError(f"{folder / 'latest.json'}: forecast rows lack {', '.join(missing)}; {rerun}")
    frame = frame.assign(timestamp=as_utc(frame["timestamp"]), target=frame["target"].astype(str))
    return payload, frame.sort_values(["target", "step"], kind="stable")


def render_forecast(folder: Path) -> str:
    """The HTML report of a forecast folder (``<output-dir>/forecast/<SYMBOL>/``)."""
    payload, frame = load_latest(folder)
    found = list(dict.fromkeys(frame["target"]))
    targets = [t for t in payload.get("targets") or found if t in found] or found
    levels = sorted((lv, col) for col in frame.columns if (lv := level_of(col)) is not None)
    raw = raw_columns(frame, levels)
    horizon = int(frame["step"].max())
    history, note = load_history(payload.get("data"), folder)
    last = payload.get("last_bar") or {}
    last_t = as_utc([last["timestamp"]])[0] if last.get("timestamp") else None
    model = payload.get("model") or {}
    page = Page(
        title=f"{payload.get('symbol', folder.name)} · {payload.get('preaug', '?')} · forecast",
        subtitle=esc(
            f"next {horizon} bars after {last.get('timestamp', '?')} · model {model.get('id', '?')}"
            + (f" · created {payload['created_at']}" if payload.get("created_at") else "")
        ),
    )
    ncols = 2 if len(targets) > 1 else 1
    nrows = math.ceil(len(targets) / ncols)
    bars = HISTORY_HORIZONS * horizon
    height = 0.6 + 3.0 * nrows
    with c.Chart("forecast", (11, height)) as chart:
        top = 1 - 0.35 / height
        axes = chart.grid(nrows, ncols, margins=(0.07, 0.98, 0.6 / height, top), hspace=0.6)
        for k, (ax, t) in enumerate(zip(axes, targets, strict=False)):
            rows = frame[frame["target"] == t]
            if history is not None and t in history.frame.columns and last_t is not None:
                past = history.before(t, last_t, bars)
                hist_t, hist_y = c.utc(past.index), past.to_numpy(dtype=np.float64)
            elif last_t is not None and t in last:
                hist_t, hist_y = c.utc([last_t]), np.array([float(last[t])])
            else:
                hist_t, hist_y = c.utc([]), np.empty(0)
            c.fan(
                ax,
                history_t=hist_t,
                history_y=hist_y,
                future_t=c.utc(rows["timestamp"]),
                quantiles={lv: rows[col].to_numpy(dtype=np.float64) for lv, col in levels},
                legend="inside" if k == 0 else "none",
                closed_hours=closed_hours(payload.get("data")),
                outline=None
                if raw is None
                else (rows[raw[0]].to_numpy(np.float64), rows[raw[1]].to_numpy(np.float64)),
            )
            ax.set_title(t)
        for ax in axes[len(targets) :]:
            ax.set_visible(False)
    body = figure(
        "forecast",
        chart.text,
        f"Shaded central intervals (widest: 10-90%), median, and the last {bars} bars. {esc(note)}. "
        + intervals_note(payload, raw is not None),
    )
    page.add("forecast", "Latest forecast", body)
    page.add("numbers", "Forecast", _numbers(frame, targets, levels, raw))
    page.add("record", "Run record", _record(payload, folder))
    return page.html()


def raw_columns(frame: pd.DataFrame, levels: list[tuple[float, str]]) -> tuple[str, str] | None:
    """The ``raw_<level>`` columns of the widest central band (the raw model's, beside calibrated
    quantiles), or ``None`` when the forecast was not calibrated."""
    bands = c.bands_of([lv for lv, _ in levels])
    if not bands:
        return None
    named = {round(lv, 6): col for lv, col in levels}
    lo, hi = (f"{RAW_PREFIX}{named[q]}" for q in bands[0])
    return (lo, hi) if lo in frame.columns and hi in frame.columns else None


def intervals_note(payload: dict[str, Any], calibrated: bool) -> str:
    """Which band the page shows: the issued calibrated one (the raw one dashed), or the raw model's."""
    record = payload.get("interval_calibration") or {}
    if calibrated:
        return (
            "The bands and the median are the issued quantiles, calibrated on the resolved history windows; "
            "the dashed lines are the raw model's 10-90% band (the raw_&lt;level&gt; columns)."
        )
    if record:
        reason = record.get("reason")
        return f"The bands are the raw model's{f': {esc(reason)}' if reason else ''}."
    return ""


def _numbers(
    frame: pd.DataFrame, targets: list[str], levels: list[tuple[float, str]], raw: tuple[str, str] | None
) -> str:
    target = "close" if "close" in targets else targets[0]
    rows = frame[frame["target"] == target]
    cols = [col for lv, col in levels if round(lv, 6) in (0.1, 0.9)] or [levels[0][1], levels[-1][1]]
    extra = list(raw or ())
    body = [
        [
            str(r["step"]),
            esc(f"{r['timestamp']:%Y-%m-%d %H:%M}"),
            *(num(r[col], 6) for col in cols[:1]),
            num(r["median"], 6),
            *(num(r[col], 6) for col in [*cols[1:], *extra]),
        ]
        for _, r in rows.iterrows()
    ]
    header = ["step", "timestamp (UTC)", f"q{cols[0]}", "median", *(f"q{col}" for col in cols[1:])]
    header += [f"raw q{col.removeprefix(RAW_PREFIX)}" for col in extra]
    note = (
        '<p class="note">q columns: the issued (calibrated) quantiles; raw: the model\'s own.</p>'
        if raw
        else ""
    )
    return f"<h3>{esc(target)}</h3>" + table(header, body, left=2, scroll=True) + note


def _record(payload: dict[str, Any], folder: Path) -> str:
    model = payload.get("model") or {}
    pairs: dict[str, Any] = {
        "model": model.get("id"),
        "model checksum": model.get("checksum"),
        "model source": model.get("source"),
        "preaug": payload.get("preaug"),
        "requested preaug": payload.get("requested_preaug"),
        "horizon": payload.get("horizon"),
        "context length": payload.get("context_length"),
        **flatten("last bar", payload.get("last_bar") or {}),
        **flatten("compile", (payload.get("engine") or {}).get("compile") or {}),
        **flatten("data", payload.get("data") or {}),
        "seed": payload.get("seed"),
        "inference seconds": payload.get("inference_seconds"),
        **flatten("versions", payload.get("versions") or {}),
        "command": " ".join(map(str, payload.get("command") or [])),
        "created at": payload.get("created_at"),
        "file": payload.get("file"),
        "folder": str(folder),
    }
    return key_values(pairs)
