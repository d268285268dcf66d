"""Leakage-free rolling-origin backtests of Chronos-2 with a pre-augmentation.

:func:`run_backtest` orchestrates: the engine is loaded first (its maximum context caps every window),
each symbol is loaded, its ``--preaug`` resolved under the loaded symbol's name, its windows cut and its
augmentation fitted (:mod:`chronobt.pipeline.jobs`); all windows of all symbols go through the engine in one
call (with ``--executor ray``: each symbol on a Ray actor, :mod:`chronobt.runs.executors`); each symbol is
then inverted, scored (:mod:`chronobt.evaluation.evaluate`) and written atomically to
``<output-dir>/backtest/<SYMBOL>/<preaug>[+<covariate>...]/`` (:func:`write_backtest`; covariates:
:mod:`chronobt.pipeline.covariates`) by this process. ``metrics.json`` counts the forward-filled bars left
unscored (``filled``) and the inverted quantiles outside the price domain (``inversion``, also one warning
line per symbol).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.atomic import replace_dir_atomic, write_json_atomic, write_parquet_atomic
from chronobt.augment import parse_augmentation
from chronobt.config import BacktestConfig
from chronobt.data import OHLC
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ChronobtError
from chronobt.evaluation.evaluate import Evaluation, filled_record
from chronobt.evaluation.significance import comparison, window_mae, window_quantile_loss
from chronobt.finetune import (
    FinetuneSettings,
    finetune_engines,
    forecast_refits,
    refit_of,
    require_peft,
    symbol_record,
)
from chronobt.pipeline.covariates import covariates_label, run_label
from chronobt.pipeline.jobs import (
    Job,
    Progress,
    SymbolWindows,
    forecast_jobs,
    make_job,
    model_context,
    prepare_each,
    prepare_windows,
    symbol_loader,
)
from chronobt.runs.cells import model_identity
from chronobt.runs.choice import ResolvedPreaug, auto_record, resolve_preaug
from chronobt.runs.chunks import BacktestChunk, BacktestOutcome, run_backtest_chunk, score_backtest_job
from chronobt.runs.executors import Executor, open_executor
from chronobt.runs.results import backtest_folder, forecast_table, run_record

logger = logging.getLogger(__name__)


@dataclass
class SymbolResult:
    """The outcome of one symbol in a backtest: its folder and the ``metrics.json`` payload."""

    symbol: str
    preaug: str
    folder: Path
    summary: dict[str, Any]
    finetune: str | None = None  # "lora"/"full": the fine-tuned results beside the zero-shot ones


@dataclass
class BacktestReport:
    """What :func:`run_backtest` returns: results per symbol and failures by symbol."""

    results: list[SymbolResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    engine_record: dict[str, Any] = field(default_factory=dict)


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

    A symbol whose data or augmentation fails is recorded in ``report.failures`` under its name; the
    others are still written. Raises only for errors that concern the whole run (bad config, model).
    ``command`` is recorded in each manifest (``None``: called from Python). With ``--executor ray`` (or
    an ``executor`` given, which its owner closes) each symbol is a chunk forecast on a Ray actor.
    """
    report = BacktestReport()
    require_peft(config.finetune)
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
        start = config.start if config.start is not None else resolved.start_after_selection(ohlc)
        options = replace(config, covariates=resolved.covariates)  # auto: the sweep's covariates
        sw = prepare_windows(
            ohlc, options, windows=config.windows, context=context, start=start, end=config.end
        )
        job = make_job(sw, resolved.spec)
        auto[ohlc.symbol] = resolved
        return job

    jobs = prepare_each(config.symbols, config, prepare, failures=report.failures, progress=progress)
    if not jobs:
        return report
    prepare_s = time.perf_counter() - t1

    scored = _score(jobs, config, engine, executor, progress)
    zero_shot: dict[int, np.ndarray] = {}  # job position -> price quantiles, for the fine-tuned comparison
    for k, outcome in enumerate(scored):
        timings = {"load": prepare_s / len(jobs), "model_load": model_load}
        price_q = _write_outcome(outcome, engine, config, auto, timings, command, report)
        if price_q is not None:
            zero_shot[k] = price_q
        if progress:
            progress("evaluate", k + 1, len(jobs))
    report.engine_record = getattr(executor, "engine_record", None) or engine.record()
    settings = FinetuneSettings.from_config(config)
    if settings is not None and zero_shot:
        _finetuned(jobs, zero_shot, engine, settings, config, auto, command, report, progress)
    return report


def _write_outcome(
    outcome: BacktestOutcome,
    engine: Chronos2Engine,
    config: BacktestConfig,
    auto: dict[str, ResolvedPreaug],
    timings: dict[str, float],
    command: Sequence[str] | None,
    report: BacktestReport,
    *,
    finetune: dict[str, Any] | None = None,
    zero_shot: np.ndarray | None = None,
) -> np.ndarray | None:
    """Write one scored job; its price quantiles, or ``None`` (the failure recorded in ``report``).

    ``finetune`` (fine-tuned forecasts: the refits) goes into metrics.json with ``versus_zero_shot``, the
    test against ``zero_shot`` (the zero-shot price quantiles of the same windows), and the folder is
    ``<preaug>+finetune-<mode>``.
    """
    job = outcome.job
    sw = job.windows
    name = sw.symbol if finetune is None else f"{sw.symbol} (finetune {config.finetune})"
    try:
        if outcome.error is not None or outcome.price_q is None or outcome.evaluation is None:
            raise ChronobtError(outcome.error or "internal: the job was not scored")
        if outcome.warning:
            logger.warning("%s", outcome.warning)
        mode = None if finetune is None else config.finetune
        folder = backtest_folder(config.output_dir, sw.symbol, run_label(job.spec, sw.covariates, mode))
        if finetune is not None and zero_shot is not None:
            versus = versus_zero_shot(sw, outcome.price_q, zero_shot, config)
            finetune = {**finetune, "versus_zero_shot": versus}
        summary = write_backtest(
            folder,
            job,
            outcome.price_q,
            outcome.evaluation,
            config=config,
            engine=engine,
            timings={**timings, **outcome.timings},
            command=command,
            uncertainty=outcome.uncertainty,
            auto=auto_record(auto[sw.symbol], sw.ohlc, sw.origins, horizon=config.horizon),
            finetune=finetune,
        )
        report.results.append(
            SymbolResult(
                symbol=sw.symbol,
                preaug=job.spec,
                folder=folder,
                summary=summary,
                finetune=None if finetune is None else config.finetune,
            )
        )
        return np.asarray(outcome.price_q)
    except (ChronobtError, OSError) as exc:
        report.failures[name] = str(exc)
        logger.debug("symbol %s failed", name, exc_info=True)
        return None


def _finetuned(
    jobs: list[Job],
    zero_shot: dict[int, np.ndarray],
    engine: Chronos2Engine,
    settings: FinetuneSettings,
    config: BacktestConfig,
    auto: dict[str, ResolvedPreaug],
    command: Sequence[str] | None,
    report: BacktestReport,
    progress: Progress | None,
) -> None:
    """Fine-tune per refit point (:mod:`chronobt.finetune`), forecast the same windows (locally), write
    them beside the zero-shot results with the Diebold-Mariano test of fine-tuned vs zero-shot."""
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
        _write_outcome(
            outcome,
            tuned_engine,
            config,
            auto,
            {"finetune": train_s * share},
            command,
            report,
            finetune=symbol_record(refits, pos, settings),
            zero_shot=zero_shot[k],
        )
        if progress:
            progress("evaluate finetuned", pos + 1, len(tuned))


def versus_zero_shot(
    sw: SymbolWindows, tuned_q: np.ndarray, zero_q: np.ndarray, config: BacktestConfig
) -> dict[str, Any]:
    """Diebold-Mariano test and bootstrap skill of fine-tuned vs zero-shot on the same windows, per target,
    on the per-window MAE of the median and the per-window quantile loss (:func:`significance.comparison`;
    negative ``mean_diff`` / positive ``skill``: fine-tuning helped)."""
    levels = list(config.quantiles)
    mid = levels.index(0.5)
    losses = {
        "mae": lambda q: window_mae(actual=sw.futures, median=q[:, :, mid, :]),
        "wql": lambda q: window_quantile_loss(actual=sw.futures, quantiles=q, levels=levels),
    }
    out: dict[str, Any] = {}
    for name, loss in losses.items():
        tuned, zero = loss(tuned_q), loss(zero_q)  # [windows, variates]
        for v, target in enumerate(sw.targets):
            out.setdefault(target, {})[name] = comparison(
                loss_model=tuned[:, v],
                loss_baseline=zero[:, v],
                horizon=config.horizon,
                stride=config.effective_stride,
                seed=config.seed,
            )
    return out


def _score(
    jobs: Sequence[Job],
    config: BacktestConfig,
    engine: Chronos2Engine,
    executor: Executor | None,
    progress: Progress | None,
) -> Iterator[BacktestOutcome]:
    """Each job forecast, inverted and evaluated, as it finishes.

    ``local`` (and no ``executor``): all windows of all symbols through ``engine`` in one call. Else each
    symbol is a chunk on the executor (``config.executor`` if none is given; closed afterwards).
    """
    if executor is None and config.executor == "local":
        t0 = time.perf_counter()
        forecast_jobs(
            engine,
            jobs,
            config.horizon,
            progress=(lambda done, total: progress("forecast", done, total)) if progress else None,
        )
        inference_s = time.perf_counter() - t0
        total_windows = sum(len(j.windows.origins) for j in jobs)
        for job in jobs:
            share = inference_s * len(job.windows.origins) / total_windows
            yield score_backtest_job(job, config, engine, inference_s=share)
        return
    chunks = [BacktestChunk(job, config) for job in jobs]
    ex = executor or open_executor(
        config.executor, engine=engine, ray_address=config.ray_address, expected_model=model_identity(engine)
    )
    try:
        for i, outcome, lost in ex.map(
            run_backtest_chunk, chunks, weights=[c.windows for c in chunks], progress=progress
        ):
            yield outcome if lost is None else BacktestOutcome(job=jobs[i], error=lost)
    finally:
        if executor is None:
            ex.close()


def metrics_payload(
    sw: SymbolWindows,
    spec: str,
    evaluation: Evaluation,
    *,
    config: BacktestConfig,
    engine: Chronos2Engine,
    uncertainty: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` payload of one symbol (timings are added by :func:`write_backtest`).

    ``uncertainty``: ``{"dependence": record, "calibration": record or None}`` of the inversion.
    """
    uncertainty = uncertainty or {}
    calibrated = None
    if evaluation.calibrated is not None:
        calibrated = {**evaluation.calibrated, "method": uncertainty.get("calibration")}
    model = engine.model_info
    origin_times = sw.origin_times
    return {
        "symbol": sw.symbol,
        "preaug": spec,
        "preaug_params": dict(parse_augmentation(spec).params),
        "covariates": covariates_label(sw.covariates),
        "covariate_rows": list(sw.covariate_names),
        "run": run_label(spec, sw.covariates),
        "model": model.get("id"),
        "model_checksum": model.get("checksum"),
        "horizon": config.horizon,
        "context_length": sw.context_length,
        "windows": len(sw.origins),
        "first_origin": origin_times[0].isoformat(),
        "last_origin": origin_times[-1].isoformat(),
        "targets": list(sw.targets),
        "quantiles": list(config.quantiles),
        "metrics": evaluation.metrics,
        "per_step": evaluation.per_step,
        "baselines": evaluation.baselines,
        "skill": evaluation.skill,
        "significance": evaluation.significance,
        "dependence": uncertainty.get("dependence"),
        "calibrated": calibrated,
        "trading": evaluation.trading,
        "filled": filled_record(sw),
        "inversion": evaluation.inversion,
        "compile": engine.record().get("compile"),
        "timings": {},
    }


def write_backtest(
    folder: Path,
    job: Job,
    price_q: Any,
    evaluation: Evaluation,
    *,
    config: BacktestConfig,
    engine: Chronos2Engine,
    timings: dict[str, float],
    command: Sequence[str] | None = None,
    uncertainty: dict[str, Any] | None = None,
    auto: dict[str, Any] | None = None,
    finetune: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write forecasts.parquet, metrics.json, trades.parquet, manifest.json; return metrics.json's dict.

    ``auto`` (``--preaug auto`` with a sweep choice: :func:`chronobt.runs.choice.auto_record`) goes into
    metrics.json under ``"auto"``.
    """
    t0 = time.perf_counter()
    sw, spec = job.windows, job.spec
    index = sw.ohlc.frame.index
    steps = (sw.origins[:, None] + np.arange(1, config.horizon + 1)).ravel()
    table = forecast_table(
        symbol=sw.symbol,
        origins=sw.origin_times,
        timestamps=pd.DatetimeIndex(index[steps]),
        targets=sw.targets,
        price_q=price_q,
        levels=config.quantiles,
        preaug=spec,
        actual=sw.futures,
        filled=sw.future_filled,
        extra={"covariates": covariates_label(sw.covariates)} if sw.covariates else None,
    )
    summary = metrics_payload(sw, spec, evaluation, config=config, engine=engine, uncertainty=uncertainty)
    if auto is not None:
        summary["auto"] = auto
    if finetune is not None:
        summary["finetune"] = finetune
        summary["run"] = run_label(spec, sw.covariates, finetune.get("mode"))
    extra: dict[str, Any] = {"finetune": finetune} if finetune is not None else {}
    manifest = run_record(
        config=config,
        model=engine.model_info,
        engine=engine.record(),
        command=command,
        data=sw.ohlc,
        preaug=spec,
        **extra,
    )
    with replace_dir_atomic(folder) as tmp:
        write_parquet_atomic(tmp / "forecasts.parquet", table)
        trades = evaluation.trades if evaluation.trades is not None else pd.DataFrame()
        write_parquet_atomic(tmp / "trades.parquet", trades)
        write_json_atomic(tmp / "manifest.json", manifest)
        summary["timings"] = {k: round(v, 4) for k, v in timings.items()}
        summary["timings"]["write"] = round(time.perf_counter() - t0, 4)
        write_json_atomic(tmp / "metrics.json", summary, indent=None)  # one line: C encoder, 5x faster
    return summary
