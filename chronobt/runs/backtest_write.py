"""A backtest's files: ``<output-dir>/backtest/<SYMBOL>/<run label>/``, one folder per symbol and run.

:func:`write_backtest` writes forecasts.parquet, trades.parquet, equity.parquet (with a close forecast),
manifest.json and metrics.json (the
:class:`~chronobt.runs.summary.BacktestSummary`) into a folder replaced atomically; :func:`write_outcome`
writes one scored job of a run (:class:`RunContext`) and records its result or its failure;
:func:`backtest_summary` builds the summary of a scored job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.atomic import replace_dir_atomic, write_json_atomic, write_parquet_atomic
from chronobt.augment import parse_augmentation
from chronobt.config import BacktestConfig
from chronobt.engine.core import Chronos2Engine
from chronobt.errors import ChronobtError
from chronobt.evaluation.evaluate import filled_record
from chronobt.pipeline.covariates import RunLabel, covariates_label
from chronobt.pipeline.jobs import Progress
from chronobt.runs.choice import ResolvedPreaug, auto_record
from chronobt.runs.chunks import BacktestOutcome
from chronobt.runs.finetune_compare import versus_zero_shot
from chronobt.runs.results import backtest_folder, forecast_table, run_record
from chronobt.runs.summary import BacktestReport, BacktestSummary, SymbolResult

logger = logging.getLogger("chronobt.runs.backtest")  # the backtest command's log, as before the split


@dataclass(frozen=True)
class RunContext:
    """What writing a backtest's results needs from its run.

    Attributes
    ----------
    config : the run's config.
    auto : symbol -> how its ``--preaug`` resolved (the sweep's choice with ``auto``).
    command : the command line recorded in each manifest (``None``: called from Python).
    report : where results and failures are recorded.
    progress : the run's progress callback.
    """

    config: BacktestConfig
    auto: Mapping[str, ResolvedPreaug]
    command: Sequence[str] | None
    report: BacktestReport
    progress: Progress | None = None


@dataclass(frozen=True)
class Tuned:
    """A fine-tuned job's extra record: its refits (``record``, metrics.json's ``finetune``) and the
    zero-shot price quantiles ``[windows, variates, Q, horizon]`` of the same windows, to test against."""

    record: Mapping[str, Any]
    zero_shot: np.ndarray


def write_outcome(
    outcome: BacktestOutcome,
    engine: Chronos2Engine,
    run: RunContext,
    timings: Mapping[str, float],
    tuned: Tuned | None = None,
) -> np.ndarray | None:
    """Write one scored job; its price quantiles, or ``None`` (the failure recorded in ``run.report``).

    ``tuned`` (fine-tuned forecasts) goes into metrics.json's ``finetune`` with ``versus_zero_shot``, the
    test against the zero-shot forecasts, and the folder is ``<preaug>+finetune-<mode>``.
    """
    config = run.config
    job = outcome.job
    sw = job.windows
    mode = None if tuned is None else config.finetune
    name = sw.symbol if tuned is None else f"{sw.symbol} (finetune {config.finetune})"
    try:
        if outcome.error is not None or outcome.price_q is None or outcome.evaluation is None:
            raise ChronobtError(outcome.error or "internal: the job was not scored")
        if outcome.warning:
            logger.warning("%s", outcome.warning)
        folder = backtest_folder(config.output_dir, sw.symbol, str(job.run.tuned(mode)))
        finetune = None
        if tuned is not None:
            versus = versus_zero_shot(sw, outcome.price_q, tuned.zero_shot, config)
            finetune = {**tuned.record, "versus_zero_shot": versus}
        timings = {**timings, **outcome.timings}
        summary = write_backtest(folder, outcome, engine, run, timings=timings, finetune=finetune)
        result = SymbolResult(
            symbol=sw.symbol, preaug=job.spec, folder=folder, summary=summary, finetune=mode
        )
        run.report.results.append(result)
        return np.asarray(outcome.price_q)
    except (ChronobtError, OSError) as exc:
        run.report.failures[name] = str(exc)
        logger.debug("symbol %s failed", name, exc_info=True)
        return None


def write_backtest(
    folder: Path,
    outcome: BacktestOutcome,
    engine: Chronos2Engine,
    run: RunContext,
    *,
    timings: Mapping[str, float],
    finetune: Mapping[str, Any] | None = None,
) -> BacktestSummary:
    """Write forecasts.parquet, metrics.json, trades.parquet, manifest.json of a scored ``outcome`` into
    ``folder`` (replaced atomically); return metrics.json's summary (with the run's ``timings``).

    metrics.json, forecasts.parquet and trades.parquet are byte-identical for identical inputs on a CPU:
    the wall-clock parts (``timings`` in seconds per stage, ``created_at``) go into manifest.json, the run
    record. No symbolic link below the output folder is written through.

    metrics.json gets ``"auto"`` when the symbol's ``--preaug auto`` came from a sweep choice
    (:func:`chronobt.runs.choice.auto_record`) and ``finetune`` (the fine-tuned models) under ``"finetune"``.
    """
    t0 = time.perf_counter()
    config = run.config
    job, price_q, evaluation = outcome.job, outcome.price_q, outcome.evaluation
    if price_q is None or evaluation is None:
        raise ChronobtError(outcome.error or "internal: the job was not scored")
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
    auto = auto_record(run.auto[sw.symbol], sw.ohlc, sw.origins, horizon=config.horizon)
    summary = replace(backtest_summary(outcome, config, engine), auto=auto)
    if finetune is not None:
        tuned_run = RunLabel(spec, tuple(sw.covariates), finetune.get("mode"))
        summary = replace(summary, finetune=finetune, run=str(tuned_run))
    extra: dict[str, Any] = {"finetune": finetune} if finetune is not None else {}
    manifest = run_record(
        config=config,
        model=engine.model_info,
        engine=engine.record(),
        command=run.command,
        data=sw.ohlc,
        preaug=spec,
        **extra,
    )
    root = config.output_dir
    with replace_dir_atomic(folder, root=root) as tmp:
        write_parquet_atomic(tmp / "forecasts.parquet", table, root=root)
        trades = evaluation.trades if evaluation.trades is not None else pd.DataFrame()
        write_parquet_atomic(tmp / "trades.parquet", trades, root=root)
        if evaluation.equity is not None:
            write_parquet_atomic(tmp / "equity.parquet", evaluation.equity, root=root)
        # one line: C encoder
        write_json_atomic(tmp / "metrics.json", summary.to_json(), indent=None, root=root)
        seconds = {k: round(v, 4) for k, v in timings.items()}
        seconds["write"] = round(time.perf_counter() - t0, 4)
        summary = replace(summary, timings=seconds)
        write_json_atomic(tmp / "manifest.json", {**manifest, "timings": seconds}, root=root)
    return summary


def backtest_summary(
    outcome: BacktestOutcome, config: BacktestConfig, engine: Chronos2Engine
) -> BacktestSummary:
    """The summary of one scored job, without timings, ``auto`` or ``finetune`` (the writer adds them);
    ``outcome`` holds the inversion's dependence and calibration records."""
    sw, spec, evaluation = outcome.job.windows, outcome.job.spec, outcome.evaluation
    if evaluation is None:
        raise ChronobtError(outcome.error or "internal: the job was not scored")
    calibrated = None
    if evaluation.calibrated is not None:
        calibrated = {**evaluation.calibrated, "method": outcome.calibration}
    model = engine.model_info
    origin_times = sw.origin_times
    return BacktestSummary(
        symbol=sw.symbol,
        preaug=spec,
        preaug_params=dict(parse_augmentation(spec).params),
        covariates=covariates_label(sw.covariates),
        covariate_rows=tuple(sw.covariate_names),
        run=str(RunLabel(spec, tuple(sw.covariates))),
        model=model.get("id"),
        model_checksum=model.get("checksum"),
        horizon=config.horizon,
        context_length=sw.context_length,
        windows=len(sw.origins),
        first_origin=origin_times[0].isoformat(),
        last_origin=origin_times[-1].isoformat(),
        targets=tuple(sw.targets),
        quantiles=tuple(config.quantiles),
        metrics=evaluation.metrics,
        per_step=evaluation.per_step,
        baselines=evaluation.baselines,
        skill=evaluation.skill,
        significance=evaluation.significance,
        dependence=outcome.dependence,
        calibrated=calibrated,
        trading=evaluation.trading,
        filled=filled_record(sw),
        inversion=evaluation.inversion,
        compile=engine.record().get("compile"),
    )
