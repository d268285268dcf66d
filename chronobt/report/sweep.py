"""The report of a sweep folder: test-skill heatmap (symbol x augmentation), validation vs test, choices.

Significance: each heatmap cell and table row shows the leaderboard's Diebold-Mariano p-value against
the naive baseline (``p_value_naive``; any ``p_value``-like column in leaderboards of other versions);
without one the report shows none.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.config import SweepConfig
from chronobt.errors import DataError
from chronobt.publish import published_names, published_path
from chronobt.report import charts as c
from chronobt.report.page import Page, esc, figure, key_values, num, signed, table
from chronobt.report.record import flatten
from chronobt.report.sources import read_json, read_table

BOARD_COLUMNS = ("symbol", "preaug", "split", "skill", "selected")
_P_VALUE = re.compile(r"^p$|(^|_)p[_-]?val(ue)?$", re.IGNORECASE)


def p_value_column(board: pd.DataFrame) -> str | None:
    """The leaderboard's significance column (``p_value_naive``), if it has one."""
    if "p_value_naive" in board.columns:
        return "p_value_naive"
    return next((str(col) for col in board.columns if _P_VALUE.match(str(col))), None)


def load_board(folder: Path) -> pd.DataFrame:
    rerun = f"rerun `chronobt sweep` to rewrite {folder}"
    path = published_path(folder, "leaderboard.parquet")  # as published: agrees with best/ and the csv
    if not path.exists() and (folder / "leaderboard.csv").exists():
        path = published_path(folder, "leaderboard.csv")
    board = read_table(path, rerun=rerun, columns=BOARD_COLUMNS)
    board["selected"] = board["selected"].astype(str).str.lower().isin(("true", "1"))
    return board


def skill_grid(
    board: pd.DataFrame, split: str, order: list[str]
) -> tuple[list[str], list[str], pd.DataFrame]:
    """Rows (symbols), columns (augmentations in ``order``, then any others) and the split's rows indexed."""
    part = board[board["split"] == split]
    symbols = list(dict.fromkeys(part["symbol"].astype(str)))
    found = list(dict.fromkeys(part["preaug"].astype(str)))
    cols = [p for p in order if p in found] + [p for p in found if p not in order]
    indexed = part.assign(symbol=part["symbol"].astype(str), preaug=part["preaug"].astype(str))
    return symbols, cols, indexed.drop_duplicates(["symbol", "preaug"]).set_index(["symbol", "preaug"])


def render_sweep(folder: Path) -> str:
    """The HTML report of a sweep folder (``<output-dir>/sweep/``)."""
    rerun = f"rerun `chronobt sweep` to rewrite {folder}"
    manifest_path = published_path(folder, "manifest.json")
    manifest = read_json(manifest_path, rerun=rerun) if manifest_path.exists() else {}
    board = load_board(folder)
    if board.empty:
        raise DataError(f"{folder / 'leaderboard.parquet'}: no rows (every cell failed?); {rerun}")
    best = {
        Path(rel).stem: read_json(published_path(folder, rel), rerun=rerun)
        for rel in published_names(folder, "best", "*.json")
    }
    config = manifest.get("config") or {}
    chosen_by = next((b.get("selection_metric") for b in best.values()), SweepConfig.metric)
    metric = str(config.get("metric") or chosen_by)
    target = str(board["target"].iloc[0]) if "target" in board.columns else SweepConfig.target
    order = [str(x) for x in manifest.get("candidates") or []]
    page = Page(
        title="Sweep of pre-augmentations",
        subtitle=esc(
            f"{board['symbol'].nunique()} symbols · {board['preaug'].nunique()} augmentations · chosen on "
            f"validation by {metric} of {target} · model {(manifest.get('model') or {}).get('id', '?')}"
        ),
    )
    pcol = p_value_column(board)
    page.add("heatmap", "Test skill by symbol and augmentation", _heatmap(board, order, pcol, target))
    page.add("scatter", "Validation vs test", _scatter(board, order, target))
    page.add("choices", "Choices", _choices(best, metric, pcol, board))
    page.add("record", "Run record", _record(manifest, folder))
    return page.html()


def _heatmap(board: pd.DataFrame, order: list[str], pcol: str | None, target: str) -> str:
    symbols, cols, rows = skill_grid(board, "test", order)
    values = np.full((len(symbols), len(cols)), np.nan)
    marked = np.zeros_like(values, dtype=bool)
    labels = [["" for _ in cols] for _ in symbols]
    cells: dict[Any, dict[Any, Any]] = rows.to_dict(orient="index")
    for i, s in enumerate(symbols):
        for j, p in enumerate(cols):
            row = cells.get((s, p))
            if row is None:
                continue
            values[i, j] = _float(row["skill"])
            marked[i, j] = bool(row["selected"])
            text = num(row["skill"], 2) if math.isfinite(values[i, j]) else "—"
            if pcol is not None and math.isfinite(_float(row[pcol])):
                text += f"\np={num(row[pcol], 2)}"
            labels[i][j] = text
    width = min(12.0, max(6.0, 2.4 + 1.1 * len(cols)))
    height = 1.7 + 0.5 * len(symbols)
    with c.Chart("heatmap", (width, height)) as chart:
        (ax,) = chart.grid(margins=(1.0 / width, 1 - 1.1 / width, 1.1 / height, 1 - 0.35 / height))
        c.heatmap(
            ax, values, rows=symbols, cols=cols, labels=labels, marked=marked, colorbar_label="test skill"
        )
        ax.set_title(f"{target} test skill; framed: chosen")
    caption = (
        "Skill on the test windows, 1 - MASE / naive MASE (blue: better than the naive forecast, red: "
        "worse); the framed cell of each symbol is the one chosen on the validation windows."
    )
    caption += f" p-values from the leaderboard's '{esc(pcol)}' column." if pcol else ""
    return figure("heatmap", chart.text, caption)


def _scatter(board: pd.DataFrame, order: list[str], target: str) -> str:
    symbols, _, _ = skill_grid(board, "test", order)
    pairs = board.pivot_table(index=["symbol", "preaug"], columns="split", values="skill", aggfunc="first")
    chosen = (
        board[board["selected"]].drop_duplicates(["symbol", "preaug"]).set_index(["symbol", "preaug"]).index
    )
    with c.Chart("scatter", (7.5, 4.6)) as chart:
        (ax,) = chart.grid(margins=(0.11, 0.72, 0.12, 0.92))
        finite = pairs.to_numpy(dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot(
            [lo - pad, hi + pad],
            [lo - pad, hi + pad],
            color=c.CONTEXT,
            ls=":",
            lw=1,
            label="test = validation",
        )
        ax.axhline(0, color=c.CONTEXT, lw=0.6)
        ax.axvline(0, color=c.CONTEXT, lw=0.6)
        for k, s in enumerate(symbols):
            colour = c.TARGET_COLOURS[k % len(c.TARGET_COLOURS)]
            if s not in pairs.index.get_level_values(0):
                continue
            part = pairs.loc[s]
            x = part.get("validation", pd.Series(np.nan, index=part.index)).to_numpy(dtype=np.float64)
            y = part.get("test", pd.Series(np.nan, index=part.index)).to_numpy(dtype=np.float64)
            ax.scatter(x, y, s=22, color=colour, alpha=0.75, label=s)
            for p, xv, yv in zip(part.index, x, y, strict=True):
                if (s, p) in chosen:
                    ax.scatter([xv], [yv], s=120, facecolors="none", edgecolors="black", lw=1.6)
                    below = k % 2  # alternate above / below, so that two symbols' labels rarely collide
                    ax.annotate(
                        p,
                        (xv, yv),
                        xytext=(6, -11 if below else 4),
                        textcoords="offset points",
                        fontsize=8,
                        color=colour,
                    )
        ax.set(xlabel="validation skill", ylabel="test skill")
        ax.set_title(f"{target} skill per (symbol, augmentation); circled: chosen")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return figure(
        "validation-test",
        chart.text,
        "Points far below the diagonal did better on validation than on the later test windows.",
    )


def _choices(best: dict[str, dict[str, Any]], metric: str, pcol: str | None, board: pd.DataFrame) -> str:
    rows = []
    for symbol, b in best.items():
        test = b.get("test") or {}
        chosen, none, naive = (test.get(k) or {} for k in ("best", "none", "naive"))
        score = (b.get("validation") or {}).get(b.get("best_preaug"))
        row = [
            esc(symbol),
            esc(b.get("best_preaug")),
            num(score),
            num(chosen.get(metric)),
            num(none.get(metric)),
            num(naive.get(metric)),
            signed(num(chosen.get("skill"), 3), chosen.get("skill")),
            signed(num(none.get("skill"), 3), none.get("skill")),
        ]
        if pcol is not None:
            sel = board[
                (board["symbol"].astype(str) == symbol) & board["selected"] & (board["split"] == "test")
            ]
            row.append(num(sel[pcol].iloc[0], 3) if len(sel) else "—")
        rows.append(row)
    header = ["symbol", "chosen", f"validation {metric}", f"test {metric}", "test none", "test naive"]
    header += ["test skill", "skill none"] + (["p-value"] if pcol else [])
    if not rows:
        return '<p class="note">No best/*.json choices in this folder.</p>'
    return table(header, rows, left=2)


def _record(manifest: dict[str, Any], folder: Path) -> str:
    model = manifest.get("model") or {}
    pairs: dict[str, Any] = {
        "model": model.get("id"),
        "model checksum": model.get("checksum"),
        "symbols": ", ".join(map(str, manifest.get("symbols") or [])),
        "candidates": ", ".join(map(str, manifest.get("candidates") or [])),
        **flatten("cells", manifest.get("cells") or {}),
        **flatten("config", manifest.get("config") or {}),
        **flatten("compile", (manifest.get("engine") or {}).get("compile") or {}),
        "failures": "; ".join(f"{k}: {v}" for k, v in (manifest.get("failures") or {}).items()),
        **flatten("versions", manifest.get("versions") or {}),
        "command": " ".join(map(str, manifest.get("command") or [])),
        "created at": manifest.get("created_at"),
        "folder": str(folder),
    }
    return key_values(pairs)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
