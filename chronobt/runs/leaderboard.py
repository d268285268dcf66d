"""A sweep's ranking: cells ranked per symbol and split, the choice made on validation only.

``leaderboard.csv`` / ``leaderboard.parquet`` hold one row per (symbol, augmentation, split) with the
label's ``covariates`` (``none`` or ``volume+calendar``), the selection target's metrics (``mase_seasonal``
too), the skill against the naive baseline, the rank within the split, whether
the augmentation was selected (on validation) and ``equivalent_to``: ``"none"`` for an augmentation that
forecasts what ``none`` forecasts (:func:`chronobt.augment.affine_equivalent`; its scores are ``none``'s).
Scores within a relative :data:`TIE_RTOL` of each other tie, and a tie goes to the earlier candidate
(``none`` first). With ``--finetune`` a fine-tuned cell (``<label>+finetune-<mode>``) has ``finetune``
``lora``/``full`` (``off`` for zero-shot) and ``p_value_zero_shot``, its test against its zero-shot
twin. A sweep over some symbols replaces only those symbols' rows (:func:`merge_leaderboard`).

Both files are published together with ``best/`` and ``manifest.json`` (:mod:`chronobt.publish`): a
reader sees them all old or all new, even after a sweep killed while writing them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from chronobt.atomic import write_parquet_atomic, write_text_atomic
from chronobt.config import SweepConfig
from chronobt.evaluation.metrics import METRIC_NAMES
from chronobt.pipeline.covariates import RunLabel, covariates_label
from chronobt.publish import read_published
from chronobt.runs.cells import against
from chronobt.runs.choice import NONE, SPLITS, split_score

#: the metrics of a row: every pooled metric of metrics.json, ``mase_seasonal`` included
BOARD_METRICS = (*METRIC_NAMES, "mase_seasonal")
LEADERBOARD_COLUMNS = (
    "symbol",
    "preaug",
    "covariates",
    "finetune",
    "split",
    "target",
    "windows",
    *BOARD_METRICS,
    "skill",
    "rank",
    "selected",
    "equivalent_to",
    "p_value_naive",
    "p_value_none",
    "p_value_zero_shot",
    *("strategy", "sharpe", "sortino", "calmar", "total_return", "n_trades", "psr", "dsr"),
)
#: The trading columns (the row's strategy on its split; ``dsr``: the selected row's test split only).
TRADING_RESULT_COLUMNS = ("sharpe", "sortino", "calmar", "total_return", "n_trades", "psr", "dsr")
#: Scores within this relative difference of each other tie (float noise), broken by candidate order.
TIE_RTOL = 1e-9

logger = logging.getLogger(__name__)


def rank_specs(scores: Sequence[float], *, higher_is_better: bool, rtol: float = TIE_RTOL) -> list[int]:
    """1-based ranks of ``scores`` (best first); NaN ranks last.

    Scores are taken best first; each run of scores within ``rtol`` (relative) of the run's first score
    is one tie, ordered by position, so a tie goes to the earlier candidate whatever the float noise.
    """
    sign = -1.0 if higher_is_better else 1.0
    finite = sorted((sign * scores[i], i) for i in range(len(scores)) if not math.isnan(scores[i]))
    order: list[int] = []
    run: list[int] = []
    head = math.nan
    for value, i in finite:
        if run and math.isclose(value, head, rel_tol=rtol, abs_tol=0.0):
            run.append(i)
            continue
        order.extend(sorted(run))
        run, head = [i], value
    order.extend(sorted(run))
    order.extend(i for i in range(len(scores)) if math.isnan(scores[i]))
    ranks = [0] * len(scores)
    for rank, i in enumerate(order, start=1):
        ranks[i] = rank
    return ranks


def rank_cells(
    cells: Mapping[str, Mapping[str, Any]], config: SweepConfig
) -> tuple[str, dict[str, dict[str, int]]]:
    """The selected augmentation (rank 1 on validation) and the ranks ``{split: {spec: rank}}``.

    ``cells`` is in tie-break order (``none`` first), so a tie (within :data:`TIE_RTOL`) goes to the
    earlier one.
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
            label = RunLabel.parse(spec)
            mode, twin = label.finetune, str(label.zero_shot())
            rows.append(
                {
                    "symbol": symbol,
                    "preaug": spec,
                    "covariates": covariates_label(label.covariates),
                    "finetune": mode or "off",
                    "split": split,
                    "target": config.target,
                    "windows": part["windows"],
                    **{m: part["metrics"][config.target].get(m) for m in BOARD_METRICS},
                    "skill": part["skill"].get(config.target),
                    "rank": ranks[split][spec],
                    "selected": spec == best,
                    "equivalent_to": _str_or_none(label.equivalent()),
                    "p_value_naive": part["significance"][config.target]["naive"]["mae"]["p_value"],
                    "p_value_none": None
                    if spec == NONE or NONE not in cells
                    else against(cell, cells[NONE], split, config)["p_value"],
                    "p_value_zero_shot": against(cell, cells[twin], split, config)["p_value"]
                    if mode and twin in cells
                    else None,
                }
            )
    return rows


def leaderboard_frame(rows: Sequence[Mapping[Any, Any]]) -> pd.DataFrame:
    """Rows -> the leaderboard with its documented columns and dtypes."""
    board = pd.DataFrame(list(rows), columns=list(LEADERBOARD_COLUMNS))
    for name in (*BOARD_METRICS, "skill", "p_value_naive", "p_value_none", "p_value_zero_shot"):
        board[name] = pd.to_numeric(board[name], errors="coerce").astype("float64")
    for name in TRADING_RESULT_COLUMNS:
        board[name] = pd.to_numeric(board[name], errors="coerce").astype("float64")
    board["strategy"] = pd.Series(
        [v if isinstance(v, str) else None for v in board["strategy"]], index=board.index
    )  # a leaderboard written before strategies: none
    board["equivalent_to"] = pd.Series(
        [v if isinstance(v, str) else None for v in board["equivalent_to"]], index=board.index
    )  # dtype as pandas infers it, so the frame equals its parquet round trip
    board["finetune"] = pd.Series(
        [v if isinstance(v, str) else "off" for v in board["finetune"]], index=board.index
    )  # a leaderboard written before fine-tuning: zero-shot rows
    board["covariates"] = pd.Series(
        [
            v if isinstance(v, str) else covariates_label(RunLabel.parse(str(label)).covariates)
            for v, label in zip(board["covariates"], board["preaug"], strict=True)
        ],
        index=board.index,
    )  # a leaderboard written before the column: read off the label (dtype as pandas infers it)
    return board.astype({"windows": "int64", "rank": "int64", "selected": "bool"})


def read_leaderboard(folder: Path) -> pd.DataFrame | None:
    """The stored ``leaderboard.parquet`` in the documented columns, or ``None`` if absent or unreadable
    (read as published: :func:`chronobt.publish.read_published`)."""
    path = folder / "leaderboard.parquet"
    try:
        board = read_published(folder, path.name, pd.read_parquet)
    except FileNotFoundError:
        return None
    except Exception as exc:  # pyarrow raises many types; a damaged file must not stop the sweep
        logger.warning("%s: unreadable (%s); writing this sweep's rows only", path, exc)
        return None
    if not {"symbol", "preaug", "split"} <= set(board.columns):
        logger.warning("%s: not a leaderboard (no symbol/preaug/split); writing this sweep's rows only", path)
        return None
    return leaderboard_frame(board.reindex(columns=list(LEADERBOARD_COLUMNS)).to_dict(orient="records"))


def merge_leaderboard(
    previous: pd.DataFrame | None, new: pd.DataFrame, replaced: Collection[str]
) -> pd.DataFrame:
    """``previous`` without the ``replaced`` symbols' rows, plus ``new``; rows grouped by symbol (sorted),
    each symbol's rows in their own order."""
    kept = previous[~previous["symbol"].isin(set(replaced))] if previous is not None else new.iloc[:0]
    rows = [*kept.to_dict(orient="records"), *new.to_dict(orient="records")]
    return leaderboard_frame(rows).sort_values("symbol", kind="stable").reset_index(drop=True)


def write_leaderboard(folder: Path, board: pd.DataFrame, *, root: Path) -> None:
    """Write ``leaderboard.parquet`` and ``leaderboard.csv`` into ``folder`` (the staging folder of the
    sweep's publish; ``root``: the output folder)."""
    write_parquet_atomic(folder / "leaderboard.parquet", board, root=root)
    write_text_atomic(folder / "leaderboard.csv", board.to_csv(index=False), root=root)


def _str_or_none(label: RunLabel | None) -> str | None:
    return None if label is None else str(label)
