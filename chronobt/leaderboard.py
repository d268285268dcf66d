"""A sweep's ranking: cells ranked per symbol and split, the choice made on validation only.

``leaderboard.csv`` / ``leaderboard.parquet`` hold one row per (symbol, augmentation, split) with the
selection target's metrics, the skill against the naive baseline, the rank within the split and whether
the augmentation was selected (on validation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from chronobt.atomic import write_parquet_atomic, write_text_atomic
from chronobt.choice import SPLITS, split_score
from chronobt.config import SweepConfig
from chronobt.metrics import METRIC_NAMES

LEADERBOARD_COLUMNS = (
    "symbol",
    "preaug",
    "split",
    "target",
    "windows",
    *METRIC_NAMES,
    "skill",
    "rank",
    "selected",
)


def rank_specs(scores: Sequence[float], *, higher_is_better: bool) -> list[int]:
    """1-based ranks of ``scores`` (best first); NaN ranks last; ties keep the given order."""
    order = sorted(
        range(len(scores)),
        key=lambda i: (math.isnan(scores[i]), -scores[i] if higher_is_better else scores[i], i),
    )
    ranks = [0] * len(scores)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def rank_cells(
    cells: Mapping[str, Mapping[str, Any]], config: SweepConfig
) -> tuple[str, dict[str, dict[str, int]]]:
    """The selected augmentation (rank 1 on validation) and the ranks ``{split: {spec: rank}}``.

    ``cells`` is in tie-break order (``none`` first), so an exact tie goes to the earlier one.
    """
    specs = list(cells)
    ranks = {
        split: dict(
            zip(
                specs,
                rank_specs(
                    [split_score(cells[s], split, config) for s in specs],
                    higher_is_better=config.higher_is_better,
                ),
                strict=True,
            )
        )
        for split in SPLITS
    }
    best = next(s for s in specs if ranks["validation"][s] == 1)
    return best, ranks


def symbol_rows(
    symbol: str,
    cells: Mapping[str, Mapping[str, Any]],
    best: str,
    ranks: Mapping[str, Mapping[str, int]],
    config: SweepConfig,
) -> list[dict[str, Any]]:
    """The leaderboard rows of one symbol: every split, every augmentation."""
    rows = []
    for split in SPLITS:
        for spec, cell in cells.items():
            part = cell["splits"][split]
            rows.append(
                {
                    "symbol": symbol,
                    "preaug": spec,
                    "split": split,
                    "target": config.target,
                    "windows": part["windows"],
                    **{m: part["metrics"][config.target].get(m) for m in METRIC_NAMES},
                    "skill": part["skill"].get(config.target),
                    "rank": ranks[split][spec],
                    "selected": spec == best,
                }
            )
    return rows


def leaderboard_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows -> the leaderboard with its documented columns and dtypes."""
    board = pd.DataFrame(list(rows), columns=list(LEADERBOARD_COLUMNS))
    for name in (*METRIC_NAMES, "skill"):
        board[name] = pd.to_numeric(board[name], errors="coerce").astype("float64")
    return board.astype({"windows": "int64", "rank": "int64", "selected": "bool"})


def write_leaderboard(folder: Path, board: pd.DataFrame) -> None:
    write_parquet_atomic(folder / "leaderboard.parquet", board)
    write_text_atomic(folder / "leaderboard.csv", board.to_csv(index=False))
