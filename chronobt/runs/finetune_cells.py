"""A sweep's fine-tuned cells (``sweep --finetune lora|full``): a fine-tuned twin of every candidate.

With ``--finetune`` every candidate label of a sweep (``spec[+covariates]``) gets a second cell,
``<label>+finetune-<mode>`` (:meth:`chronobt.pipeline.covariates.RunLabel.tuned`), forecast on the same
windows by a model fine-tuned on bars before the first evaluated origin: the sweep's first validation
origin, so neither validation nor test outcomes are trained on. With ``--refit-every N`` the windows are split
into segments of N and each is forecast by a model trained on bars up to its own first origin (walk
forward, :mod:`chronobt.finetune.walkforward`). A model is trained with the candidate's augmentation
(fitted on each training series) and covariates, on every swept symbol's history by default or one
symbol's with ``--finetune-per-symbol``; the sweep ranks fine-tuned and zero-shot cells together.

:func:`plan_candidates` cuts the training series and computes each model's cache key before anything is
trained, so a fine-tuned cell's key can hash the keys of the models that forecast it: new bars before a
cutoff in any symbol trained together, another base model or other settings recompute the cell, and a
finished cell is skipped on rerun without loading a model.
:func:`tuned_cells` trains (or loads from ``<output-dir>/finetune/<key>/``, shared with backtest and
forecast) only the models that a cell still to compute needs, then forecasts, inverts and scores.

They run in this process, also with ``--executor ray``: the fine-tuned weights are not shipped to the
Ray workers (which run the zero-shot cells).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chronobt.config import SweepConfig
from chronobt.engine.core import Chronos2Engine
from chronobt.errors import ChronobtError
from chronobt.finetune.training import FinetuneSettings, read_record
from chronobt.finetune.walkforward import (
    Member,
    ModelPlan,
    Refit,
    base_checksum_of,
    fit_models,
    forecast_refits,
    plan_models,
    refit_of,
    symbol_record,
)
from chronobt.pipeline.covariates import RunLabel
from chronobt.pipeline.jobs import Progress, make_job, symbol_loader
from chronobt.runs.cells import SymbolSweep, cell_key, model_identity, score_cell

logger = logging.getLogger(__name__)

#: Fields of a model's record that the sweep manifest lists.
RECORD_FIELDS = ("key", "cutoff", "cutoffs", "symbols", "preaugs", "covariates", "steps", "loss", "checksum")


@dataclass
class TunedCandidate:
    """One fine-tuned candidate: its models (one per refit point, or per refit point and symbol) and the
    symbols it cannot forecast.

    Attributes
    ----------
    label : the fine-tuned label, ``<source>+finetune-<mode>``.
    source : the zero-shot label it is the twin of.
    symbols : the sweep's symbols in plan order (``ModelPlan.windows`` is keyed by these positions).
    models : the planned models, in refit order.
    failed : symbol -> why it has no fine-tuned cell (its training series could not be made).
    records : model key -> its record, for the models this run trained or loaded.
    """

    label: RunLabel
    source: RunLabel
    symbols: list[str]
    models: list[ModelPlan]
    failed: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def model_keys(self, symbol: str) -> list[str]:
        """The cache keys of the models that forecast ``symbol``'s windows, in refit order."""
        pos = self.symbols.index(symbol)
        return [m.key for m in self.models if pos in m.windows]


def plan_candidates(
    plans: Sequence[SymbolSweep],
    labels: Sequence[RunLabel],
    config: SweepConfig,
    base: Chronos2Engine,
    settings: FinetuneSettings,
) -> dict[RunLabel, TunedCandidate]:
    """Plan the models of the fine-tuned ``labels`` (training series and keys, nothing trained) and key
    every symbol's fine-tuned cells by them (``plan.keys``); by label, for the labels that are trained.

    A label whose forecast another's equals (``robust_scaling+finetune-lora`` is ``none+finetune-lora``'s:
    :meth:`~chronobt.pipeline.covariates.RunLabel.equivalent`) is not trained: its cells are keyed by its
    source's
    models. A symbol whose training series cannot be made gets no fine-tuned cell (``plan.failed``).
    """
    checksum = base_checksum_of(base)
    load = symbol_loader(config)
    out: dict[RunLabel, TunedCandidate] = {}
    for label in (s for s in labels if s.equivalent() not in labels):
        source = label.zero_shot()
        members = [Member(windows=p.windows_for(source.covariates), spec=source.spec) for p in plans]
        failed: dict[str, str] = {}

        def on_error(pos: int, message: str, failed: dict[str, str] = failed) -> None:
            failed.setdefault(plans[pos].symbol, message)

        models = plan_models(
            members, settings, base_checksum=checksum, horizon=config.horizon, load=load, on_error=on_error
        )
        out[label] = TunedCandidate(
            label=label, source=source, symbols=[p.symbol for p in plans], models=models, failed=failed
        )
    model = model_identity(base)
    for plan in plans:
        for label in labels:
            candidate = out[label.equivalent() or label]
            if plan.symbol in candidate.failed:
                plan.failed[label] = candidate.failed[plan.symbol]
                logger.warning("%s: %s skipped: %s", plan.symbol, label, plan.failed[label])
                continue
            sw = plan.windows_for(label.covariates)
            finetune = {**settings.record(), "models": candidate.model_keys(plan.symbol)}
            plan.keys[label] = cell_key(sw, label, config, model, finetune=finetune)
    return out


def tuned_cells(
    candidate: TunedCandidate,
    plans: Sequence[SymbolSweep],
    pending: Sequence[str],
    config: SweepConfig,
    base: Chronos2Engine,
    settings: FinetuneSettings,
    *,
    base_checksum: str,
    progress: Progress | None = None,
) -> Iterator[tuple[SymbolSweep, dict[str, Any] | None, str | None]]:
    """``(plan, cell, None)`` or ``(plan, None, why)`` for each ``pending`` symbol's fine-tuned cell.

    Trains or loads only the models that forecast a pending symbol; each symbol's windows are forecast
    by its refits' models, then inverted and scored like a zero-shot cell (:func:`score_cell`), with the
    refits recorded under ``"finetune"``.
    """
    positions = [i for i, p in enumerate(plans) if p.symbol in pending and p.symbol not in candidate.failed]
    needed = [m for m in candidate.models if any(pos in m.windows for pos in positions)]
    try:
        refits = fit_models(
            needed,
            base,
            settings,
            horizon=config.horizon,
            output_dir=config.output_dir,
            base_checksum=base_checksum,
            progress=progress,
        )
    except (ChronobtError, ValueError) as exc:
        for pos in positions:
            yield plans[pos], None, f"fine-tuning failed: {exc}"
        return
    candidate.records.update({r.record["key"]: r.record for r in refits})
    source = candidate.source
    for done, pos in enumerate(positions, start=1):
        plan = plans[pos]
        own = [
            Refit(engine=r.engine, record=r.record, windows={0: r.windows[pos]})
            for r in refit_of(refits, pos)
        ]
        try:
            job = make_job(plan.windows_for(source.covariates), source.spec)
            (tuned,) = forecast_refits(own, [job], config.horizon)
            cell = score_cell(plan, tuned, config, own[0].engine, label=candidate.label)
        except (ChronobtError, ValueError) as exc:
            yield plan, None, str(exc)
            continue
        cell["finetune"] = symbol_record(own, 0, settings)
        if progress:
            progress("forecast finetuned", done, len(positions))
        yield plan, cell, None


def models_record(candidates: Sequence[TunedCandidate], output_dir: Path) -> list[dict[str, Any]]:
    """The manifest's list of fine-tuned models: per model its label, cutoff, symbols, steps, loss summary,
    checksum and cache key; ``cached`` (its weights were in the cache before this run) and ``used``
    (it forecast a cell this run; not when every cell it forecasts was cached)."""
    rows = []
    for candidate in candidates:
        for plan in candidate.models:
            record = candidate.records.get(plan.key)
            used = record is not None
            if record is None:
                record = {**plan.info, "cached": plan.cached(output_dir)}
                if record["cached"]:
                    record = {**_read_record(plan.folder(output_dir)), **record}
            rows.append(
                {
                    "label": str(candidate.label),
                    **{k: record.get(k) for k in RECORD_FIELDS if k in record or k != "covariates"},
                    "train_seconds": record.get("train_seconds"),
                    "first_window": int(min(int(idx[0]) for idx in plan.windows.values())),
                    "cached": bool(record.get("cached")),
                    "used": used,
                }
            )
    return rows


def _read_record(folder: Path) -> dict[str, Any]:
    """The cached model's record, or ``{}`` when it cannot be read (the row then shows what is planned)."""
    try:
        return read_record(folder)
    except (OSError, ValueError):
        return {}
