"""The unit of work an executor runs: one symbol's forecasts and scores, with no file access.

A chunk carries everything its work needs (the symbol's prepared windows, the run's config), so the same
function runs in the driver's process (the local executor) or on a Ray actor holding its own engine
(:mod:`chronobt.runs.executors`); its outcome is plain data the driver stores. Two kinds:

- :class:`SweepChunk`: a symbol's pending sweep cells, all augmentations in one batched engine call,
  then each cell inverted and scored (:func:`chronobt.runs.cells.score_cell`);
- :class:`BacktestChunk`: a symbol's backtest job, forecast, inverted and evaluated;
  :class:`BacktestBatch`: every symbol's job in one engine call (the in-process executor).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from chronobt.config import BacktestConfig, SweepConfig
from chronobt.engine.core import Chronos2Engine
from chronobt.errors import ChronobtError
from chronobt.evaluation.evaluate import Evaluation, evaluate, inversion_warning
from chronobt.pipeline.covariates import RunLabel
from chronobt.pipeline.jobs import Job, forecast_jobs, make_job
from chronobt.pipeline.uncertainty import Calibration, calibrate_as_requested, invert_job
from chronobt.runs.cells import SymbolSweep, model_identity, score_cell

logger = logging.getLogger(__name__)

#: on_batch(done, total): the engine's progress within one chunk (windows).
OnBatch = Callable[[int, int], None]


@dataclass
class SweepChunk:
    """One symbol's sweep cells still to compute: its plan (windows, split, keys) and their runs."""

    plan: SymbolSweep
    specs: tuple[RunLabel, ...]
    config: SweepConfig

    @property
    def label(self) -> str:
        return self.plan.symbol

    @property
    def windows(self) -> int:
        """Windows through the model: the symbol's windows times the pending specs."""
        return len(self.plan.windows.origins) * len(self.specs)

    def shipped(self) -> SweepChunk:
        """This chunk without the plan's cached cells (they stay with the driver)."""
        return replace(self, plan=replace(self.plan, cells={}, cached=set(), failed={}, references={}))


@dataclass
class SweepOutcome:
    """The stored cells of a :class:`SweepChunk` (run -> JSON cell) and why the others failed."""

    cells: dict[RunLabel, dict[str, Any]] = field(default_factory=dict)
    failed: dict[RunLabel, str] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # identity of the engine that ran it
    engine_record: dict[str, Any] = field(default_factory=dict)


def run_sweep_chunk(
    chunk: SweepChunk, engine: Chronos2Engine, on_batch: OnBatch | None = None
) -> SweepOutcome:
    """make_job -> forecast_jobs (one call) -> score_cell for each pending spec of one symbol."""
    plan, config = chunk.plan, chunk.config
    outcome = SweepOutcome(model=model_identity(engine))
    jobs: list[Job] = []
    for run in chunk.specs:  # spec[+covariates]
        try:
            jobs.append(make_job(plan.windows_for(run.covariates), run.spec))
        except (ChronobtError, ValueError) as exc:
            outcome.failed[run] = str(exc)
    if jobs:
        forecast_jobs(engine, jobs, config.horizon, progress=on_batch)
    for job in jobs:
        try:
            outcome.cells[job.run] = score_cell(plan, job, config, engine)
        except (ChronobtError, ValueError) as exc:
            outcome.failed[job.run] = str(exc)
    outcome.engine_record = engine.record()
    return outcome


@dataclass
class BacktestChunk:
    """One symbol's backtest: its job (windows, fitted augmentation, model input) and the run's config."""

    job: Job
    config: BacktestConfig

    @property
    def label(self) -> str:
        return self.job.windows.symbol

    @property
    def windows(self) -> int:
        return len(self.job.windows.origins)


@dataclass
class BacktestOutcome:
    """A forecast, inverted and evaluated :class:`BacktestChunk`; ``error`` says why it has no result."""

    job: Job
    price_q: np.ndarray | None = None  # [windows, variates, Q_out, horizon]
    evaluation: Evaluation | None = None
    error: str | None = None
    warning: str | None = None  # inverted quantiles outside the price domain: logged by the driver
    dependence: dict[str, Any] | None = None  # the inversion's step-dependence record
    calibration: Calibration | None = None  # what --calibrate did (the calibrated quantiles, the records)
    timings: dict[str, float] = field(default_factory=dict)  # inference, invert, metrics (seconds)
    model: dict[str, Any] = field(default_factory=dict)
    engine_record: dict[str, Any] = field(default_factory=dict)


def run_backtest_chunk(
    chunk: BacktestChunk, engine: Chronos2Engine, on_batch: OnBatch | None = None
) -> BacktestOutcome:
    """forecast_jobs -> :func:`score_backtest_job` for one symbol's backtest job."""
    t0 = time.perf_counter()
    forecast_jobs(engine, [chunk.job], chunk.config.horizon, progress=on_batch)
    return score_backtest_job(chunk.job, chunk.config, engine, inference_s=time.perf_counter() - t0)


@dataclass
class BacktestBatch:
    """Every symbol's backtest job at once: one engine call for all their windows (an in-process run)."""

    jobs: tuple[Job, ...]
    config: BacktestConfig

    @property
    def label(self) -> str:
        return ",".join(job.windows.symbol for job in self.jobs)

    @property
    def windows(self) -> int:
        return sum(len(job.windows.origins) for job in self.jobs)


def run_backtest_batch(
    chunk: BacktestBatch, engine: Chronos2Engine, on_batch: OnBatch | None = None
) -> list[BacktestOutcome]:
    """forecast_jobs (all jobs in one call) -> :func:`score_backtest_job` for each; the inference time is
    shared out by windows."""
    t0 = time.perf_counter()
    forecast_jobs(engine, chunk.jobs, chunk.config.horizon, progress=on_batch)
    inference_s = time.perf_counter() - t0
    total = chunk.windows
    return [
        score_backtest_job(
            job, chunk.config, engine, inference_s=inference_s * len(job.windows.origins) / total
        )
        for job in chunk.jobs
    ]


def score_backtest_job(
    job: Job, config: BacktestConfig, engine: Chronos2Engine, *, inference_s: float
) -> BacktestOutcome:
    """invert_job -> calibrate (``--calibrate``, :func:`calibrate_as_requested`) -> evaluate for one job.

    An error of this symbol goes to ``outcome.error``, an inversion warning to ``outcome.warning``.
    """
    outcome = BacktestOutcome(job=job, model=model_identity(engine))
    sw = job.windows
    t1 = time.perf_counter()
    try:
        inversion = invert_job(job, engine.quantile_levels, config, device=engine.device)
        outcome.price_q = price_q = inversion.price_q
        calibration = calibrate_as_requested(sw, price_q, config, label=f"{sw.symbol} {job.run}")
        t2 = time.perf_counter()
        outcome.evaluation = evaluate(sw, price_q, config, calibrated=calibration.price_q)
        outcome.warning = inversion_warning(
            sw.symbol, job.spec, outcome.evaluation.inversion, path_dependent=job.augmentation.path_dependent
        )
        outcome.dependence, outcome.calibration = inversion.dependence, calibration
        outcome.timings = {"inference": inference_s, "invert": t2 - t1, "metrics": time.perf_counter() - t2}
    except (ChronobtError, OSError) as exc:
        outcome.error = str(exc)
    outcome.engine_record = engine.record()
    return outcome
