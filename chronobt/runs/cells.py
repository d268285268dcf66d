"""A sweep's cells: one (symbol, augmentation) pair scored on the validation and test windows, cached.

Each finished cell is stored atomically as ``<output-dir>/sweep/cells/<SYMBOL>/<preaug>__<key>.json``.
The key hashes everything the scores depend on (data checksum, windows, model checksum, options), so a
rerun skips finished cells and new data or a new model recomputes.

A cell of an augmentation that forecasts what ``none`` forecasts (:func:`chronobt.augment.affine_equivalent`)
is not forecast: it is ``none``'s cell under its own name and key, marked ``"equivalent_to": "none"``
(:func:`equivalent_cell`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chronobt._version import __version__
from chronobt.config import SweepConfig
from chronobt.data.symbol_windows import SymbolWindows
from chronobt.engine.core import Chronos2Engine
from chronobt.evaluation.evaluate import Reference, evaluate, filled_record, score_reference
from chronobt.evaluation.significance import comparison, window_mae
from chronobt.pipeline.covariates import RunLabel
from chronobt.pipeline.jobs import Job
from chronobt.pipeline.uncertainty import calibrate_as_requested, invert_job
from chronobt.runs.results import preaug_slug

logger = logging.getLogger(__name__)

SPLITS = ("validation", "test")
#: Bumped when the stored cell format or the scoring changes, so old cells are recomputed.
CELL_FORMAT = 5


@dataclass
class SymbolSweep:
    """One symbol's windows, split, and cells (scores per label: spec[+covariates][+finetune-<mode>])."""

    windows: SymbolWindows
    split: dict[str, np.ndarray]  # split name -> window indices, ascending
    keys: dict[RunLabel, str]  # run -> cell hash
    cells: dict[RunLabel, dict[str, Any]] = field(default_factory=dict)
    cached: set[RunLabel] = field(default_factory=set)
    failed: dict[RunLabel, str] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)  # split -> baselines, scored once
    #: covariate set -> the windows with those covariate rows (``()``: ``windows``)
    by_covariates: dict[tuple[str, ...], SymbolWindows] = field(default_factory=dict)

    def windows_for(self, covariates: tuple[str, ...]) -> SymbolWindows:
        return self.by_covariates.get(covariates, self.windows)

    @property
    def symbol(self) -> str:
        return self.windows.symbol


def cell_key(
    sw: SymbolWindows,
    run: RunLabel,
    config: SweepConfig,
    model: dict[str, Any],
    *,
    finetune: dict[str, Any] | None = None,
) -> str:
    """A 16-hex hash of everything a cell's scores depend on (``finetune``: a fine-tuned cell's settings
    and the cache keys of the models that forecast it, :mod:`chronobt.runs.finetune_cells`)."""
    payload = {
        "format": CELL_FORMAT,
        "chronobt": __version__,
        "symbol": sw.symbol,
        "data_sha256": sw.ohlc.sha256,
        "preaug": str(run),
        "origins": [int(sw.origins[0]), int(sw.origins[-1]), len(sw.origins)],
        "horizon": config.horizon,
        "context": sw.context_length,
        "stride": config.stride,
        "validation_windows": config.validation_windows,
        "test_windows": config.test_windows,
        "targets": list(config.targets),
        "quantiles": list(config.quantiles),
        "fee_bps": config.fee_bps,
        "allow_short": config.allow_short,
        "trading": [list(config.strategies), config.entry, config.slippage_bps, config.borrow_rate],
        "seed": config.seed,
        "max_gap": config.max_gap,
        "dependence": config.dependence,
        "n_paths": config.n_paths,
        "model": model,
        **({"covariates": list(sw.covariates)} if sw.covariates else {}),
        **({"finetune": finetune} if finetune is not None else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cell_path(output_dir: Path, symbol: str, run: RunLabel, key: str) -> Path:
    return output_dir / "sweep" / "cells" / symbol / f"{preaug_slug(str(run))}__{key}.json"


def read_cell(path: Path, key: str) -> dict[str, Any] | None:
    """The stored cell at ``path`` if it is complete and carries ``key``, else ``None`` (recompute)."""
    try:
        cell = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        logger.debug("unreadable cell %s; recomputing", path, exc_info=True)
        return None
    if (
        not isinstance(cell, dict)
        or cell.get("key") != key
        or not all(s in cell.get("splits", {}) for s in SPLITS)
    ):
        return None
    return cell


def equivalent_cell(source: dict[str, Any], *, run: RunLabel, key: str) -> dict[str, Any]:
    """``source``'s scores stored for ``run``, an augmentation with the same forecast as ``source``'s."""
    return {**source, "key": key, "preaug": str(run), "equivalent_to": source["preaug"]}


def model_identity(engine: Chronos2Engine) -> dict[str, Any]:
    """What of the model a cell's scores depend on: id, weights checksum, dtype."""
    info = engine.model_info
    return {
        "id": info.get("id"),
        "checksum": info.get("checksum"),
        "dtype": str(engine.record().get("dtype")),
    }


def window_loss(
    sw: SymbolWindows, price_q: np.ndarray, config: SweepConfig, reference: Reference
) -> list[float | None]:
    """The selection target's per-window MASE of the median, ``[windows]`` (JSON: ``None`` for NaN), so
    two cells of a symbol can be compared by a Diebold-Mariano test (:mod:`chronobt.runs.leaderboard`)."""
    v = sw.targets.index(config.target)
    median = price_q[:, :, list(config.quantiles).index(0.5), :]
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = window_mae(actual=sw.futures, median=median)[:, v] / reference.scale[:, v]
    return [float(x) if np.isfinite(x) else None for x in loss]


def score_cell(
    plan: SymbolSweep, job: Job, config: SweepConfig, engine: Chronos2Engine, *, label: RunLabel | None = None
) -> dict[str, Any]:
    """Invert one forecast job and score it on each split; the JSON cell that is stored under ``label``
    (default: the job's run, ``spec[+covariates]``; a fine-tuned cell's ends with ``+finetune-<mode>``)."""
    label = label or job.run
    inversion = invert_job(job, engine.quantile_levels, config, device=engine.device)
    price_q = inversion.price_q
    calibrated = calibrate_as_requested(plan.windows, price_q, config, label=f"{plan.symbol} {label}").price_q
    splits: dict[str, Any] = {}
    for name, index in plan.split.items():
        sub = plan.windows.subset(index)
        if name not in plan.references:  # the same windows for every augmentation: score baselines once
            plan.references[name] = score_reference(sub, config.quantiles, horizon=config.horizon)
        ev = evaluate(
            sub,
            price_q[index],
            config,
            reference=plan.references[name],
            calibrated=None if calibrated is None else calibrated[index],
        )
        times = sub.origin_times
        splits[name] = {
            "windows": len(index),
            "first_origin": times[0].isoformat(),
            "last_origin": times[-1].isoformat(),
            "metrics": ev.metrics,
            "skill": ev.skill,
            "baselines": ev.baselines,
            "trading": ev.trading,
            "filled": filled_record(sub),
            "inversion": ev.inversion,
            "significance": ev.significance,
            "window_loss": window_loss(sub, price_q[index], config, plan.references[name]),
        }
    return {"key": plan.keys[label], "symbol": plan.symbol, "preaug": str(label), "splits": splits}


def against(
    cell: Mapping[str, Any], other: Mapping[str, Any], split: str, config: SweepConfig
) -> dict[str, Any]:
    """Diebold-Mariano test (and bootstrap skill) of ``cell`` against ``other`` on one split, on the
    selection target's per-window MASE (:func:`chronobt.evaluation.significance.comparison`)."""
    mine, theirs = (np.array(c["splits"][split]["window_loss"], dtype=np.float64) for c in (cell, other))
    return comparison(
        loss_model=mine,
        loss_baseline=theirs,
        horizon=config.horizon,
        stride=config.effective_stride,
        seed=config.seed,
    )
