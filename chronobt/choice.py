"""The sweep's choice per symbol, ``<output-dir>/sweep/best/<SYMBOL>.json``: written and read here.

A sweep writes it (:func:`build_choice`, :func:`write_choice`); ``--preaug auto`` in backtest and forecast
reads it (:func:`resolve_preaug`) under the loaded symbol's name.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chronobt.atomic import write_json_atomic
from chronobt.augment import parse_augmentation
from chronobt.config import SweepConfig
from chronobt.data import OHLC
from chronobt.errors import ConfigError

logger = logging.getLogger(__name__)

SPLITS = ("validation", "test")
NONE = "none"


def choice_path(output_dir: Path, symbol: str) -> Path:
    return output_dir / "sweep" / "best" / f"{symbol}.json"


def split_score(cell: Mapping[str, Any], split: str, config: SweepConfig) -> float:
    """The selection metric of one cell on one split (NaN when undefined)."""
    value = cell["splits"][split]["metrics"][config.target].get(config.metric)
    return math.nan if value is None else float(value)


def build_choice(
    *,
    ohlc: OHLC,
    best: str,
    cells: Mapping[str, Mapping[str, Any]],
    failed: Mapping[str, str],
    config: SweepConfig,
    model: Mapping[str, Any],
    created_at: str,
) -> dict[str, Any]:
    """The ``best/<SYMBOL>.json`` payload: the choice, its validation scores and its test report.

    ``cells`` maps every augmentation that ran to its stored cell (``{"splits": {split: {...}}}``).
    """

    def test_scores(spec: str) -> dict[str, Any] | None:
        if spec not in cells:
            return None
        part = cells[spec]["splits"]["test"]
        return {**part["metrics"][config.target], "skill": part["skill"].get(config.target)}

    test_part = cells[best]["splits"]["test"]
    return {
        "symbol": ohlc.symbol,
        "best_preaug": best,
        "best_params": dict(parse_augmentation(best).params),
        "selection_metric": config.metric,
        "selection_target": config.target,
        "higher_is_better": config.higher_is_better,
        "validation": {s: _json_float(split_score(c, "validation", config)) for s, c in cells.items()},
        "test": {
            "best": test_scores(best),
            "none": test_scores(NONE),
            "naive": {**test_part["baselines"]["naive"][config.target], "skill": 0.0},
        },
        "splits": {
            name: {k: cells[best]["splits"][name][k] for k in ("windows", "first_origin", "last_origin")}
            for name in SPLITS
        },
        "failed": dict(failed),
        "config": {
            "horizon": config.horizon,
            "context": config.context,
            "stride": config.stride,
            "validation_windows": config.validation_windows,
            "test_windows": config.test_windows,
            "targets": list(config.targets),
            "quantiles": list(config.quantiles),
            "seed": config.seed,
            "candidates": list(cells),
        },
        "model": {"id": model.get("id"), "checksum": model.get("checksum")},
        "data": {
            "path": str(ohlc.path),
            "sha256": ohlc.sha256,
            "rows": len(ohlc.frame),
            "first": ohlc.frame.index[0].isoformat(),
            "last": ohlc.frame.index[-1].isoformat(),
        },
        "created_at": created_at,
    }


def write_choice(output_dir: Path, payload: Mapping[str, Any]) -> Path:
    return write_json_atomic(choice_path(output_dir, str(payload["symbol"])), payload)


def read_choice(output_dir: Path, symbol: str) -> dict[str, Any] | None:
    """The stored choice for ``symbol``, or ``None`` when no sweep chose for it.

    Raises :class:`ConfigError` for a file that exists but cannot be read.
    """
    path = choice_path(output_dir, symbol)
    try:
        payload = json.loads(path.read_text())
        str(payload["best_preaug"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: unreadable sweep result ({exc}); rerun `chronobt sweep {symbol}`"
        ) from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: unreadable sweep result (not an object); rerun `chronobt sweep {symbol}`")
    return payload


def resolve_preaug(symbol: str, preaug: str, output_dir: Path) -> str:
    """``auto`` -> the sweep's choice for ``symbol`` (or ``none`` with a warning); otherwise ``preaug``.

    ``symbol`` is the loaded series' name (``OHLC.symbol``), so a path argument finds its choice too.
    """
    if preaug != "auto":
        return str(parse_augmentation(preaug))
    payload = read_choice(output_dir, symbol)
    if payload is None:
        logger.warning(
            "%s: no sweep result at %s; using --preaug none (run `chronobt sweep %s` first)",
            symbol,
            choice_path(output_dir, symbol),
            symbol,
        )
        return NONE
    return str(parse_augmentation(str(payload["best_preaug"])))


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None
