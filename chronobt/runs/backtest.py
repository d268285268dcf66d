"""Leakage-free rolling-origin backtests of Chronos-2 with a pre-augmentation.

:func:`run_backtest` orchestrates: every symbol is looked up (an unknown one is a usage error) and the
sample paths' memory checked, then the engine is loaded (its maximum context caps every window),
each symbol is loaded, its ``--preaug`` resolved under the loaded symbol's name, its windows cut and its
augmentation fitted (:mod:`chronobt.pipeline.jobs`); all windows of all symbols go through the engine in
one call (the in-process executor; with ``--executor ray`` each symbol is a chunk on a Ray actor,
:mod:`chronobt.runs.executors`); each symbol is then inverted, scored (:mod:`chronobt.evaluation.evaluate`)
and written atomically to ``<output-dir>/backtest/<SYMBOL>/<preaug>[+<covariate>...]/``
(:mod:`chronobt.runs.backtest_write`; covariates: :mod:`chronobt.pipeline.covariates`) by this process.
``metrics.json`` (:class:`~chronobt.runs.summary.BacktestSummary`) counts the forward-filled bars left
unscored (``filled``) and the inverted quantiles outside the price domain (``inversion``, also one warning
line per symbol). With ``--finetune`` the fine-tuned results are written beside the zero-shot ones, with
the test of one against the other (:mod:`chronobt.runs.finetune_compare`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from chronobt.augment import candidate_specs
from chronobt.config import BacktestConfig
from chronobt.data import OHLC
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.evaluation.strategies import check_trading
from chronobt.finetune import (
    FinetuneSettings,
    finetune_engines,
    forecast_refits,
    refit_of,
    require_peft,
    symbol_record,
)
from chronobt.pipeline.jobs import (
    Job,
    Progress,
    make_job,
    model_context,
    prepare_each,
    prepare_windows,
    resolve_symbols,
    symbol_loader,
)
from chronobt.pipeline.uncertainty import check_paths_memory
from chronobt.runs.backtest_write import RunContext, Tuned, write_backtest, write_outcome
from chronobt.runs.cells import model_identity
from chronobt.runs.choice import ResolvedPreaug, resolve_preaug
from chronobt.runs.chunks import (
    BacktestBatch,
    BacktestChunk,
    BacktestOutcome,
    run_backtest_batch,
    run_backtest_chunk,
    score_backtest_job,
)
from chronobt.runs.executors import Executor, executor_for, runs_in_process
from chronobt.runs.finetune_compare import versus_zero_shot
from chronobt.runs.portfolio import run_portfolio
from chronobt.runs.summary import BacktestReport, BacktestSummary, SymbolResult

__all__ = [
    "BacktestReport",
    "BacktestSummary",
    "SymbolResult",
    "check_backtest",
    "run_backtest",
    "versus_zero_shot",
    "write_backtest",
]


def run_backtest(
    config: BacktestConfig,
    engine_config: EngineConfig | None = None,
    *,
    engine: Chronos2Engine | None = None,
    progress: Progress | None = None,
    command: Sequence[str] | None = None,
    executor: Executor | None = None,
) -> BacktestReport:
    """Backtest every symbol of ``config``; all windows of all symbols go through the engine together.

    Every symbol is looked up first: one that names no data file is a ConfigError before the model
    loads, as are more sample paths than memory holds. A symbol whose data or augmentation fails is
    recorded in ``report.failures`` under its name; the others are still written. Raises only for errors
    that concern the whole run (bad config, unknown symbol, model).
    ``command`` is recorded in each manifest (``None``: called from Python). The forecasts run on
    ``executor`` (its owner closes it) or the one ``config.executor`` names: in process every symbol's
    windows in one engine call, with ``--executor ray`` each symbol a chunk on a Ray actor.
    """
    report = BacktestReport()
    require_peft(config.finetune)
    check_backtest(config)
    t0 = time.perf_counter()
    if engine is None:
        engine = Chronos2Engine(engine_config or EngineConfig())
    model_load = time.perf_counter() - t0
    context = model_context(config, engine)

    t1 = time.perf_counter()
    auto: dict[str, ResolvedPreaug] = {}  # symbol -> how --preaug resolved (the sweep's span for auto)

    def prepare(ohlc: OHLC) -> Job:
        resolved = resolve_preaug(
            ohlc, config.preaug, config, model=engine.model_info, strict=config.strict_auto
        )
        start: str | int | None = config.start
        bounds = "--start/--end"
        if start is None and (start := resolved.start_after_selection(ohlc)) is not None:
            bounds = "--preaug auto's span after the sweep's validation windows (--start overrides)"
            bounds += " and --end" if config.end is not None else ""
        options = replace(config, covariates=resolved.covariates)  # auto: the sweep's covariates
        sw = prepare_windows(
            ohlc, options, windows=config.windows, context=context, start=start, end=config.end, bounds=bounds
        )
        job = make_job(sw, resolved.spec)
        auto[ohlc.symbol] = resolved
        return job

    jobs = prepare_each(config.symbols, config, prepare, failures=report.failures, progress=progress)
    if not jobs:
        return report
    prepare_s = time.perf_counter() - t1

    run = RunContext(config=config, auto=auto, command=command, report=report, progress=progress)
    zero_shot: dict[int, np.ndarray] = {}  # job position -> price quantiles, for the fine-tuned comparison
    for k, outcome in enumerate(_score(jobs, config, engine, executor, progress)):
        timings = {"load": prepare_s / len(jobs), "model_load": model_load}
        price_q = write_outcome(outcome, engine, run, timings)
        if price_q is not None:
            zero_shot[k] = price_q
        if progress:
            progress("evaluate", k + 1, len(jobs))
    report.engine_record = getattr(executor, "engine_record", None) or engine.record()
    settings = FinetuneSettings.from_config(config)
    if settings is not None and zero_shot:
        _finetuned(jobs, zero_shot, engine, settings, run)
    if config.portfolio:  # one account over the symbols' written results
        report.portfolio = run_portfolio(config, report, model=engine.model_info, command=command)
    return report


def check_backtest(config: BacktestConfig) -> None:
    """What :func:`run_backtest` checks before any work (the command line too, before the lock): every
    symbol names a data file and the sample paths fit in memory; a ConfigError otherwise."""
    resolve_symbols(config.symbols, config)
    check_trading(config)
    specs = candidate_specs(()) if config.preaug == "auto" else (config.preaug,)
    check_paths_memory(config, specs, windows=config.windows)


def _finetuned(
    jobs: list[Job],
    zero_shot: dict[int, np.ndarray],
    engine: Chronos2Engine,
    settings: FinetuneSettings,
    run: RunContext,
) -> None:
    """Fine-tune per refit point (:mod:`chronobt.finetune`), forecast the same windows (locally), write
    them beside the zero-shot results with the Diebold-Mariano test of fine-tuned vs zero-shot."""
    config, progress = run.config, run.progress
    positions = sorted(zero_shot)
    scored = [jobs[k] for k in positions]
    t0 = time.perf_counter()
    refits = finetune_engines(
        scored,
        engine,
        settings,
        horizon=config.horizon,
        output_dir=config.output_dir,
        load=symbol_loader(config),
        progress=progress,
    )
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    tuned = forecast_refits(
        refits,
        scored,
        config.horizon,
        progress=(lambda done, total: progress("forecast finetuned", done, total)) if progress else None,
    )
    inference_s = time.perf_counter() - t1
    total_windows = sum(len(j.windows.origins) for j in scored)
    for pos, (k, job) in enumerate(zip(positions, tuned, strict=True)):
        share = len(job.windows.origins) / total_windows
        tuned_engine = refit_of(refits, pos)[0].engine
        outcome = score_backtest_job(job, config, tuned_engine, inference_s=inference_s * share)
        record = Tuned(record=symbol_record(refits, pos, settings), zero_shot=zero_shot[k])
        write_outcome(outcome, tuned_engine, run, {"finetune": train_s * share}, record)
        if progress:
            progress("evaluate finetuned", pos + 1, len(tuned))


def _score(
    jobs: Sequence[Job],
    config: BacktestConfig,
    engine: Chronos2Engine,
    executor: Executor | None,
    progress: Progress | None,
) -> Iterator[BacktestOutcome]:
    """Each job forecast, inverted and evaluated, as it finishes, on ``executor`` (``config.executor``'s if
    none is given; closed afterwards).

    In process: all windows of all symbols through the engine in one call (one :class:`BacktestBatch`).
    Elsewhere (Ray): each symbol is a chunk.
    """
    identity = model_identity(engine)
    with executor_for(
        executor, config.executor, engine=engine, ray_address=config.ray_address, expected_model=identity
    ) as ex:
        if runs_in_process(ex):
            batch = BacktestBatch(tuple(jobs), config)
            for _, outcomes, lost in ex.map(
                run_backtest_batch, [batch], weights=[batch.windows], progress=progress
            ):
                yield from (outcomes if lost is None else [BacktestOutcome(job=j, error=lost) for j in jobs])
            return
        chunks = [BacktestChunk(job, config) for job in jobs]
        for i, outcome, lost in ex.map(
            run_backtest_chunk, chunks, weights=[c.windows for c in chunks], progress=progress
        ):
            yield outcome if lost is None else BacktestOutcome(job=jobs[i], error=lost)
