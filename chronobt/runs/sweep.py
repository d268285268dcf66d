"""Choose the best pre-augmentation per symbol with nested (validation -> test) selection.

For each symbol the latest ``validation_windows + test_windows`` rolling windows are cut once. The earlier
``validation`` windows choose the augmentation; the later ``test`` windows only *report* the chosen one
next to ``none`` and the naive baseline, so the reported score was never used to pick the winner.
Validation windows whose futures reach past the first test origin (possible only with ``stride <
horizon``) are dropped, so the choice could have been made at the first test origin.

Every (symbol, augmentation) pair is a *cell* (:mod:`chronobt.runs.cells`). Cells are forecast a symbol at a
time, all of that symbol's augmentations in one batched engine call, and each cell is stored as soon as
its chunk is done: a rerun skips finished cells, an interrupted sweep loses at most the chunk in flight.
An augmentation that is affine per window (robust_scaling, percent_change) forecasts what ``none``
forecasts, since Chronos-2 standardises each series itself: it is not forecast but gets ``none``'s
scores, marked ``equivalent_to: none``, and a tie goes to ``none``.

Covariate sets (``covariate_sets``, :mod:`chronobt.pipeline.covariates`) are a second dimension: every
(augmentation, covariate set) pair is a cell named by its label (``differencing+volume``; no covariates:
the spec alone), all ranked together, so the nested selection picks the best pair. No covariates is
always swept (the reference ``none`` is the plain model).

With ``--finetune lora|full`` every candidate also gets a fine-tuned twin ``<label>+finetune-<mode>``
(:mod:`chronobt.runs.finetune_cells`): forecast on the same windows by a model fine-tuned on bars before the
first validation origin, ranked with the zero-shot cells, cached and resumed like them. They run in this
process after the zero-shot cells (with ``--executor ray`` too).

Outputs under ``<output-dir>/sweep/``: ``leaderboard.csv`` / ``leaderboard.parquet``
(:mod:`chronobt.runs.leaderboard`; a sweep over some symbols keeps the other symbols' rows),
``best/<SYMBOL>.json`` (:mod:`chronobt.runs.choice`, read by ``--preaug auto``)
and ``manifest.json``, published together (:mod:`chronobt.publish`): a reader sees all of them from one
sweep, even after a sweep killed while writing them. Only ``manifest.json`` holds wall-clock stamps; the
leaderboard and ``best/`` are byte-identical for identical inputs on a CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.atomic import write_json_atomic
from chronobt.augment import candidate_specs
from chronobt.config import SweepConfig
from chronobt.data import OHLC, list_symbols
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ChronobtError, ConfigError, DataError
from chronobt.evaluation.strategies import check_trading
from chronobt.finetune import FinetuneSettings, base_checksum_of, require_peft
from chronobt.pipeline.covariates import RunLabel, with_covariates
from chronobt.pipeline.jobs import (
    Progress,
    make_job,
    model_context,
    prepare_each,
    prepare_windows,
    resolve_symbols,
    symbol_loader,
)
from chronobt.pipeline.uncertainty import check_paths_memory
from chronobt.publish import publish
from chronobt.runs.cells import SymbolSweep, cell_key, cell_path, equivalent_cell, model_identity, read_cell
from chronobt.runs.choice import build_choice, write_choice
from chronobt.runs.chunks import SweepChunk, run_sweep_chunk
from chronobt.runs.executors import Executor, executor_for, runs_in_process
from chronobt.runs.finetune_cells import (
    TunedCandidate,
    models_record,
    plan_candidates,
    tuned_cells,
)
from chronobt.runs.leaderboard import (
    LEADERBOARD_COLUMNS,
    leaderboard_frame,
    merge_leaderboard,
    read_leaderboard,
    write_leaderboard,
)
from chronobt.runs.results import now_iso, run_record, sweep_folder
from chronobt.runs.selection import candidate_rows, choice_extra, deflated_sharpe, rank_candidates

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What :func:`run_sweep` returns.

    Attributes
    ----------
    best : symbol -> the payload written to ``best/<SYMBOL>.json``.
    leaderboard : the rows of ``leaderboard.parquet`` (this sweep's symbols and earlier sweeps' others).
    failures : symbol -> why it has no result.
    cells_cached, cells_computed : how many cells came from the cache / went through the model.
    cells_derived : how many cells took the scores of an equivalent augmentation's cell (``none``).
    finetune : with ``--finetune``: the settings and every fine-tuned model (``manifest.json``'s
        ``finetune``: cutoff, steps, loss summary, checksum, cache key, ``cached``, ``used``).
    models_trained, models_cached : fine-tuned models trained by this run / found in the cache.
    """

    folder: Path
    best: dict[str, dict[str, Any]] = field(default_factory=dict)
    leaderboard: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(LEADERBOARD_COLUMNS)))
    failures: dict[str, str] = field(default_factory=dict)
    cells_cached: int = 0
    cells_computed: int = 0
    cells_derived: int = 0
    engine_record: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] | None = None
    models_trained: int = 0
    models_cached: int = 0


def discover_symbols(data_dir: Path) -> tuple[str, ...]:
    """Every symbol with a parquet file in ``data_dir`` (unreadable files included, so they are reported)."""
    symbols = tuple(info.symbol for info in list_symbols(data_dir))
    if not symbols:
        raise ConfigError(
            f"{data_dir}: no <SYMBOL>.parquet files to sweep; pass --data-dir or import data with "
            "`chronobt data import`"
        )
    return symbols


def split_windows(
    origins: np.ndarray, *, validation: int, test: int, horizon: int, label: str
) -> dict[str, np.ndarray]:
    """Split ascending ``origins`` [windows] into validation (earlier) and test (later) window indices.

    The test split is the latest ``test`` windows; validation is up to ``validation`` windows before
    them whose futures end at or before the first test origin. When fewer windows exist than asked
    for, both shrink in proportion (at least one each).

    Raises
    ------
    DataError
        Fewer than two windows, or no validation window ends before the first test origin.
    """
    n = len(origins)
    if n < 2:
        raise DataError(
            f"{label}: only {n} window fits; a sweep needs at least 2 (one validation, one test); "
            "lower --horizon/--context or use a longer series"
        )
    if n < validation + test:
        n_test = min(max(1, round(n * test / (validation + test))), n - 1)
        logger.warning(
            "%s: %d windows fit, fewer than %d validation + %d test; using %d + %d",
            label, n, validation, test, n - n_test, n_test,
        )  # fmt: skip
    else:
        n_test = test
    test_idx = np.arange(n - n_test, n)
    first_test = origins[test_idx[0]]
    usable = np.flatnonzero(origins[: n - n_test] + horizon <= first_test)
    if not usable.size:
        raise DataError(
            f"{label}: no validation window ends before the first test origin; use --stride >= --horizon"
        )
    return {"validation": usable[-validation:], "test": test_idx}


def check_sweep(config: SweepConfig) -> None:
    """What :func:`run_sweep` checks before any work (the command line too, before the lock): every symbol
    and covariate symbol names a data file and the sample paths fit in memory; a ConfigError otherwise."""
    every_covariate = [c for chosen in config.candidate_covariates for c in chosen]
    resolve_symbols(config.symbols, config, covariates=every_covariate)
    check_trading(config)  # unknown strategies or parameters, levels outside --quantiles
    check_paths_memory(config, candidate_specs(config.preaugs), windows=config.windows)
    check_trading(config)


def run_sweep(
    config: SweepConfig,
    engine_config: EngineConfig | None = None,
    *,
    engine: Chronos2Engine | None = None,
    progress: Progress | None = None,
    command: Sequence[str] | None = None,
    executor: Executor | None = None,
) -> SweepReport:
    """Sweep every augmentation of ``config`` on every symbol and write ``<output-dir>/sweep/``.

    Progress stages: ``prepare`` (symbols), ``cached`` (cells served from the cache), ``forecast``
    (windows through the model), ``evaluate`` (cells scored and stored).

    A symbol (or covariate symbol) that names no data file is a ConfigError before the model loads, as
    are more sample paths than memory holds. A symbol whose data fails is recorded in
    ``report.failures`` and the others go on; an augmentation that cannot be applied to a symbol is left
    out of that symbol's candidates with a warning. The symbols' chunks run on ``executor`` if given
    (its owner closes it), else on ``config.executor``.
    """
    check_sweep(config)
    symbols = config.symbols or discover_symbols(config.data_dir)
    require_peft(config.finetune)
    settings = FinetuneSettings.from_config(config)
    covariate_sets = config.candidate_covariates
    runs = [RunLabel(s, c) for c in covariate_sets for s in candidate_specs(config.preaugs)]
    zero_shot = tuple(runs)
    tuned = tuple(r.tuned(settings.mode) for r in runs) if settings else ()
    specs = zero_shot + tuned  # tie-break order: none first, a zero-shot cell before its fine-tuned twin
    report = SweepReport(folder=sweep_folder(config.output_dir))
    if engine is None:
        engine = Chronos2Engine(engine_config or EngineConfig())
    model = model_identity(engine)
    context = model_context(config, engine)

    def prepare(ohlc: OHLC) -> SymbolSweep:
        sw = prepare_windows(ohlc, replace(config, covariates=()), windows=config.windows, context=context)
        by_covariates = {
            c: with_covariates(sw, c, load=symbol_loader(config), horizon=config.horizon)
            for c in covariate_sets
            if c
        }
        split = split_windows(
            sw.origins,
            validation=config.validation_windows,
            test=config.test_windows,
            horizon=config.horizon,
            label=sw.symbol,
        )
        keys = {r: cell_key(by_covariates.get(r.covariates, sw), r, config, model) for r in runs}
        return SymbolSweep(sw, split, keys, by_covariates=by_covariates)

    plans = prepare_each(symbols, config, prepare, failures=report.failures, progress=progress)
    candidates = plan_candidates(plans, tuned, config, engine, settings) if settings else {}

    if not config.force:
        for plan in plans:
            for spec in (s for s in specs if s in plan.keys):  # a fine-tuned one may have failed already
                key = plan.keys[spec]
                cell = read_cell(cell_path(config.output_dir, plan.symbol, spec, key), key)
                same = spec.equivalent()  # a derived cell names its source
                if cell is not None and cell.get("equivalent_to") == (same and str(same)):
                    plan.cells[spec] = cell
                    plan.cached.add(spec)
    report.cells_cached = sum(len(p.cached) for p in plans)
    if progress and report.cells_cached:
        progress("cached", report.cells_cached, len(plans) * len(specs))

    run = _SweepRun(config, engine, report, progress, executor, command)
    _forecast_pending(plans, zero_shot, run)
    report.engine_record = report.engine_record or engine.record()  # Ray: what the workers ran
    if settings:
        _forecast_finetuned(plans, tuned, candidates, settings, run)
    _publish(plans, specs, run)
    return report


@dataclass(frozen=True)
class _SweepRun:
    """What the stages of one sweep share: its config, engine, report, progress, executor and command."""

    config: SweepConfig
    engine: Chronos2Engine
    report: SweepReport
    progress: Progress | None
    executor: Executor | None
    command: Sequence[str] | None


def _forecast_pending(plans: Sequence[SymbolSweep], specs: Sequence[RunLabel], run: _SweepRun) -> None:
    """Forecast the uncached cells one symbol (chunk) at a time, storing each chunk's cells when done.

    The chunks run on ``executor`` (default: the one ``config.executor`` names); the driver writes the
    cells, so the cache is the same whatever ran them. Cells of augmentations equivalent to another
    candidate are not forecast: they take its scores.
    """
    config, engine, report, progress = run.config, run.engine, run.report, run.progress
    derived = [s for s in specs if s.equivalent() in specs]
    pending = {p.symbol: [s for s in specs if s not in p.cells and s not in derived] for p in plans}
    total_cells = sum(len(v) for v in pending.values())
    work = [p for p in plans if pending[p.symbol]]
    for plan in plans:
        if not pending[plan.symbol]:
            _derive_cells(plan, derived, config, report)
    chunks = [SweepChunk(p, tuple(pending[p.symbol]), config) for p in work]
    identity = model_identity(engine)
    with executor_for(
        run.executor, config.executor, engine=engine, ray_address=config.ray_address, expected_model=identity
    ) as ex:  # Ray starts only if a chunk is to run
        outcomes = ex.map(
            run_sweep_chunk,
            [c.shipped() for c in chunks],
            weights=[c.windows for c in chunks],
            progress=progress,
        )
        for i, outcome, lost in outcomes:
            plan = work[i]
            failed = {s: lost for s in chunks[i].specs} if lost is not None else outcome.failed
            for spec, message in failed.items():
                plan.failed[spec] = message
                logger.warning("%s: %s skipped: %s", plan.symbol, spec, message)
            for spec, cell in outcome.cells.items() if lost is None else ():
                write_json_atomic(
                    cell_path(config.output_dir, plan.symbol, spec, plan.keys[spec]),
                    cell,
                    root=config.output_dir,
                )
                plan.cells[spec] = cell
                report.cells_computed += 1
                if progress:
                    progress("evaluate", report.cells_computed, total_cells)
            _derive_cells(plan, derived, config, report)  # stored with its chunk: resumable alike
        report.engine_record = dict(getattr(ex, "engine_record", None) or {})


def _derive_cells(
    plan: SymbolSweep, specs: Sequence[RunLabel], config: SweepConfig, report: SweepReport
) -> None:
    """Give each of ``specs`` missing from ``plan`` its equivalent's cell, if it applies to the data."""
    for spec in specs:
        if spec in plan.cells:
            continue
        source = spec.equivalent()
        if source is None or source not in plan.cells:
            plan.failed[spec] = f"its forecast is {source}'s, which failed"
            continue
        try:
            make_job(plan.windows, spec.spec)  # it must apply (percent_change: prices > 0)
        except (ChronobtError, ValueError) as exc:
            plan.failed[spec] = str(exc)
            logger.warning("%s: %s skipped: %s", plan.symbol, spec, exc)
            continue
        cell = equivalent_cell(plan.cells[source], run=spec, key=plan.keys[spec])
        path = cell_path(config.output_dir, plan.symbol, spec, plan.keys[spec])
        write_json_atomic(path, cell, root=config.output_dir)
        plan.cells[spec] = cell
        report.cells_derived += 1


def _forecast_finetuned(
    plans: Sequence[SymbolSweep],
    labels: Sequence[RunLabel],
    candidates: dict[RunLabel, TunedCandidate],
    settings: FinetuneSettings,
    run: _SweepRun,
) -> None:
    """Train (or load) and forecast the uncached fine-tuned cells in this process, one label at a time,
    storing each cell when scored; then give the equivalent labels their source's cells."""
    config, engine, report, progress = run.config, run.engine, run.report, run.progress
    executor = run.executor
    pending = {
        label: [p.symbol for p in plans if label in p.keys and label not in p.cells] for label in candidates
    }
    elsewhere = config.executor != "local" if executor is None else not runs_in_process(executor)
    if any(pending.values()) and elsewhere:
        logger.warning(
            "fine-tuned cells run in this process, not on the Ray workers (their weights are not shipped)"
        )
    checksum = base_checksum_of(engine)
    for label, candidate in candidates.items():
        if not pending[label]:
            continue
        outcomes = tuned_cells(
            candidate,
            plans,
            pending[label],
            config,
            engine,
            settings,
            base_checksum=checksum,
            progress=progress,
        )
        for plan, cell, why in outcomes:
            if cell is None:
                plan.failed[label] = str(why)
                logger.warning("%s: %s skipped: %s", plan.symbol, label, why)
                continue
            path = cell_path(config.output_dir, plan.symbol, label, plan.keys[label])
            write_json_atomic(path, cell, root=config.output_dir)
            plan.cells[label] = cell
            report.cells_computed += 1
    for plan in plans:
        _derive_cells(plan, [s for s in labels if s.equivalent() in labels], config, report)
    models = models_record(list(candidates.values()), config.output_dir)
    report.finetune = {"settings": settings.record(), "models": models}
    report.models_trained = sum(1 for m in models if not m["cached"] and m["used"])
    report.models_cached = sum(1 for m in models if m["cached"])


def _publish(plans: Sequence[SymbolSweep], specs: Sequence[RunLabel], run: _SweepRun) -> None:
    """Rank the cells, then publish leaderboard.csv/.parquet, best/<SYMBOL>.json and manifest.json
    together (:func:`chronobt.publish.publish`: a reader sees all of them old or all new)."""
    config, engine, report = run.config, run.engine, run.report
    rows: list[dict[str, Any]] = []
    created = now_iso()
    for plan in plans:
        cells = {str(s): plan.cells[s] for s in specs if s in plan.cells}  # tie-break order: none first
        if not cells:
            report.failures[plan.symbol] = "every augmentation failed: " + "; ".join(
                f"{s}: {m}" for s, m in plan.failed.items()
            )
            continue
        pair, ranks = rank_candidates(cells, config)  # (label, strategy): --strategy is a dimension
        deflated = deflated_sharpe(cells, pair, config)
        rows.extend(candidate_rows(plan.symbol, cells, pair, ranks, config, deflated["dsr"]))
        report.best[plan.symbol] = {
            **build_choice(
                ohlc=plan.windows.ohlc,
                best=pair[0],
                cells=cells,
                failed={str(s): m for s, m in plan.failed.items()},
                config=config,
                model=engine.model_info,
            ),
            **choice_extra(cells, pair, config, deflated),
        }
    report.leaderboard = leaderboard_frame(rows)
    root = config.output_dir
    with publish(report.folder, root=root) as stage:  # first completes a publish killed half-way
        if rows:
            previous = read_leaderboard(report.folder)
            report.leaderboard = merge_leaderboard(previous, report.leaderboard, replaced=report.best)
            write_leaderboard(stage, report.leaderboard, root=root)
        for payload in report.best.values():
            write_choice(stage, payload, root=root)
        _write_manifest(stage, plans, specs, run, created)


def _write_manifest(
    folder: Path, plans: Sequence[SymbolSweep], specs: Sequence[RunLabel], run: _SweepRun, created: str
) -> None:
    """The sweep's ``manifest.json`` (the run record, with the wall-clock stamp) into ``folder``."""
    config, engine, report = run.config, run.engine, run.report
    extra: dict[str, Any] = {"finetune": report.finetune} if report.finetune is not None else {}
    write_json_atomic(
        folder / "manifest.json",
        run_record(
            config=config,
            model=engine.model_info,
            engine=report.engine_record,
            command=run.command,
            created_at=created,
            symbols=[p.symbol for p in plans],
            candidates=[str(s) for s in specs],
            cells={
                "cached": report.cells_cached,
                "computed": report.cells_computed,
                "derived": report.cells_derived,
            },
            failures=report.failures,
            **extra,
        ),
        root=config.output_dir,
    )
