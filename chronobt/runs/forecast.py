"""Forecast the bars after the latest one, with a pre-augmentation, inverse-transformed to prices.

The pipeline with one window per symbol whose origin is the last bar
(:func:`chronobt.pipeline.jobs.latest_window`); every symbol goes through the engine in one call.

Outputs per symbol under ``<output-dir>/forecast/<SYMBOL>/`` (each file written atomically):

- ``<label>/<last-bar>.parquet`` (e.g. ``differencing/2024-08-30T000000Z.parquet``; the label as in
  backtest folder names), kept as history, and ``latest.parquet``: one row per (step, target) with
  symbol, origin, step, timestamp, target, median, one column per quantile level (``"0.1"`` ..
  ``"0.9"``), preaug, model.
- ``index.jsonl``: one line appended per history file (:mod:`chronobt.runs.archive`), what
  ``chronobt track`` verifies and scores.
- ``latest.json``: the same rows plus the last observed bar and the run record (config, data, model,
  engine, versions, command, ``created_at``, ``inference_seconds``).

The history file is written first, then its index line is appended (fsynced); ``latest.parquet`` and
``latest.json`` are then published together (:mod:`chronobt.publish`), so a reader sees both old or
both new, even after a run killed while writing them. The parquet files are byte-identical for
identical inputs on a CPU; ``latest.json`` is the run record and holds wall-clock stamps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from chronobt.atomic import sha256_file, write_json_atomic, write_parquet_atomic
from chronobt.augment import candidate_specs, parse_augmentation
from chronobt.config import ForecastConfig
from chronobt.data import OHLC
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ChronobtError
from chronobt.evaluation.strategies import check_trading, orders_for_forecast
from chronobt.finetune import FinetuneSettings, finetune_engines, require_peft, symbol_record
from chronobt.pipeline.covariates import RunLabel, covariates_label
from chronobt.pipeline.jobs import (
    Job,
    Progress,
    SymbolWindows,
    forecast_jobs,
    latest_window,
    make_job,
    model_context,
    prepare_each,
    resolve_symbols,
    symbol_loader,
)
from chronobt.pipeline.uncertainty import (
    HISTORY_WINDOWS,
    calibrate_as_requested,
    check_paths_memory,
    history_windows,
    invert_job,
)
from chronobt.publish import publish
from chronobt.runs.archive import append_entry, prefix_hashes
from chronobt.runs.choice import resolve_preaug
from chronobt.runs.results import forecast_folder, forecast_table, preaug_slug, quantile_column, run_record

logger = logging.getLogger(__name__)

#: strftime pattern of the history file names (no ':' so the names work on every filesystem).
STAMP_FORMAT = "%Y-%m-%dT%H%M%SZ"


@dataclass
class SymbolForecast:
    """One symbol's forecast: the rows of ``latest.parquet`` and the ``latest.json`` payload."""

    symbol: str
    preaug: str
    folder: Path
    frame: pd.DataFrame
    payload: dict[str, Any]


@dataclass
class ForecastReport:
    """What :func:`run_forecast` returns: forecasts per symbol and failures by symbol."""

    results: list[SymbolForecast] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    engine_record: dict[str, Any] = field(default_factory=dict)


def check_forecast(config: ForecastConfig) -> None:
    """What :func:`run_forecast` checks before any work (the command line too, before the lock): every
    symbol names a data file and the sample paths fit in memory; a ConfigError otherwise."""
    resolve_symbols(config.symbols, config)
    check_trading(config)
    specs = candidate_specs(()) if config.preaug == "auto" else (config.preaug,)
    check_paths_memory(config, specs, windows=1 + HISTORY_WINDOWS)


def run_forecast(
    config: ForecastConfig,
    engine_config: EngineConfig | None = None,
    *,
    engine: Chronos2Engine | None = None,
    progress: Progress | None = None,
    command: Sequence[str] | None = None,
) -> ForecastReport:
    """Forecast ``config.horizon`` bars after the last bar of every symbol and write the files.

    Progress stages: ``prepare`` (symbols), ``forecast`` (symbols through the model), ``write``; with
    ``--finetune``: ``finetune`` (training steps) or ``finetune cached``, before ``forecast``.
    The fine-tuned model is trained on every bar up to the last one; the resolved history windows the
    step dependence and calibration learn from are forecast by it too, so they are in-sample for it.
    A symbol that names no data file is a ConfigError before the model loads, as are more sample paths
    than memory holds; a symbol that fails (data, augmentation) is recorded in ``report.failures``; the
    others are written.
    """
    report = ForecastReport()
    require_peft(config.finetune)
    check_forecast(config)
    if engine is None:
        engine = Chronos2Engine(engine_config or EngineConfig())
    context = model_context(config, engine)

    def prepare(ohlc: OHLC) -> Job:
        resolved = resolve_preaug(
            ohlc, config.preaug, config, model=engine.model_info, strict=config.strict_auto
        )
        options = replace(config, covariates=resolved.covariates)  # auto: the sweep's covariates
        history = history_windows(resolved.spec, options)
        return make_job(latest_window(ohlc, options, context=context, history=history), resolved.spec)

    jobs = prepare_each(config.symbols, config, prepare, failures=report.failures, progress=progress)
    if not jobs:
        return report
    t0 = time.perf_counter()
    on_batch = (lambda done, total: progress("forecast", done, total)) if progress else None
    settings = FinetuneSettings.from_config(config)
    engines: dict[int, Chronos2Engine] = {}
    finetune: dict[int, dict[str, Any]] = {}
    if settings is None:
        forecast_jobs(engine, jobs, config.horizon, progress=on_batch)
    else:
        engines, finetune = _finetuned(jobs, engine, settings, config, progress, on_batch)
    inference_s = time.perf_counter() - t0
    report.engine_record = engine.record()
    for k, job in enumerate(jobs):
        try:
            inversion = invert_job(job, engine.quantile_levels, config, device=engine.device)
            price_q = inversion.price_q
            uncertainty: dict[str, Any] = {
                "history_windows": len(job.windows.origins) - 1,
                "dependence": inversion.dependence,
            }
            raw_q = None
            label = f"{job.windows.symbol} {job.run}"
            calibration = calibrate_as_requested(job.windows, price_q, config, label=label)
            if calibration.price_q is not None:  # the issued quantiles; the raw ones kept beside them
                raw_q, price_q = price_q, calibration.price_q
                uncertainty["calibration"] = calibration.method
            uncertainty["interval_calibration"] = calibration.record
            live = np.array([len(job.windows.origins) - 1])  # the last window: its origin is the last bar
            if k in finetune:
                uncertainty["finetune"] = finetune[k]
            report.results.append(
                write_forecast(
                    job.windows.subset(live),
                    price_q[live],
                    config=config,
                    spec=job.spec,
                    engine=engines.get(k, engine),
                    inference_s=inference_s,
                    command=command,
                    uncertainty=uncertainty,
                    raw_q=None if raw_q is None else raw_q[live],
                )
            )
        except (ChronobtError, OSError) as exc:
            report.failures[job.windows.symbol] = str(exc)
            logger.debug("symbol %s failed", job.windows.symbol, exc_info=True)
        if progress:
            progress("write", k + 1, len(jobs))
    return report


def _finetuned(
    jobs: list[Job],
    engine: Chronos2Engine,
    settings: FinetuneSettings,
    config: ForecastConfig,
    progress: Progress | None,
    on_batch: Callable[[int, int], None] | None,
) -> tuple[dict[int, Chronos2Engine], dict[int, dict[str, Any]]]:
    """Fine-tune on every bar up to each symbol's last one and forecast every window of ``jobs`` (the
    resolved history windows too) with it; the engine and the ``finetune`` record per job position."""
    live = [
        Job(
            windows=j.windows.subset(np.array([len(j.windows.origins) - 1])),
            augmentation=j.augmentation,
            state=None,
            model_input=j.model_input[-1:],
        )
        for j in jobs
    ]
    refits = finetune_engines(
        live,
        engine,
        settings,
        horizon=config.horizon,
        output_dir=config.output_dir,
        load=symbol_loader(config),
        progress=progress,
    )
    engines: dict[int, Chronos2Engine] = {}
    records: dict[int, dict[str, Any]] = {}
    for refit in refits:
        forecast_jobs(refit.engine, [jobs[pos] for pos in refit.windows], config.horizon, progress=on_batch)
        for pos in refit.windows:
            engines[pos] = refit.engine
            records[pos] = symbol_record(refits, pos, settings)
    return engines, records


def _orders(price_q: np.ndarray, sw: SymbolWindows, config: ForecastConfig) -> dict[str, Any]:
    """``{"orders": [...]}`` with ``--strategy`` (see ``strategies.orders_for_forecast``)."""
    if not config.strategies:
        return {}
    last_close = float(sw.ohlc.frame["close"].iloc[-1])
    return {"orders": orders_for_forecast(price_q, last_close, config, sw.targets)}


def write_forecast(
    sw: SymbolWindows,
    price_q: np.ndarray,
    *,
    config: ForecastConfig,
    spec: str,
    engine: Chronos2Engine,
    inference_s: float = 0.0,
    command: Sequence[str] | None = None,
    uncertainty: dict[str, Any] | None = None,
    raw_q: np.ndarray | None = None,
) -> SymbolForecast:
    """Write ``<last-bar>.parquet``, then publish ``latest.parquet`` and ``latest.json`` together, for one
    symbol (no symbolic link below the output folder is written through).

    ``price_q`` is ``[1, variates, Q, horizon]`` at ``config.quantiles``; ``uncertainty`` records how the
    steps were coupled and calibrated (learned from the resolved windows before the last bar); ``raw_q``
    the uncalibrated quantiles when ``price_q`` are calibrated (written beside them as ``raw_<level>``).
    """
    model = dict(engine.model_info)
    origin = sw.origin_times[0]
    table = forecast_table(
        symbol=sw.symbol,
        origins=sw.origin_times,
        timestamps=sw.ohlc.future_timestamps(origin, config.horizon),
        targets=sw.targets,
        price_q=price_q,
        levels=config.quantiles,
        preaug=spec,
        extra={
            "model": str(model.get("id")),
            **({"covariates": covariates_label(sw.covariates)} if sw.covariates else {}),
        },
    )
    if raw_q is not None:
        at = table.column_names.index("preaug")
        for k, level in enumerate(config.quantiles):
            raw = np.ascontiguousarray(raw_q[:, :, k, :].transpose(0, 2, 1)).ravel()
            table = table.add_column(at + k, f"raw_{quantile_column(level)}", pa.array(raw))
    frame = table.to_pandas()
    folder = forecast_folder(config.output_dir, sw.symbol)
    run = RunLabel(spec, tuple(sw.covariates), None if config.finetune == "off" else config.finetune)
    history = folder / preaug_slug(str(run)) / f"{origin.strftime(STAMP_FORMAT)}.parquet"
    records = frame.assign(
        origin=frame["origin"].map(pd.Timestamp.isoformat),
        timestamp=frame["timestamp"].map(pd.Timestamp.isoformat),
    ).to_dict(orient="records")
    last_row = sw.ohlc.frame.iloc[-1]
    payload: dict[str, Any] = {
        "symbol": sw.symbol,
        "preaug": spec,
        "preaug_params": dict(parse_augmentation(spec).params),
        "requested_preaug": config.preaug,
        "covariates": covariates_label(sw.covariates),
        "covariate_rows": list(sw.covariate_names),
        "run": str(RunLabel(spec, tuple(sw.covariates))),
        "horizon": config.horizon,
        "context_length": int(np.count_nonzero(~np.isnan(sw.contexts[0, 0]))),
        "targets": list(sw.targets),
        "quantiles": list(config.quantiles),
        "last_bar": {"timestamp": origin.isoformat(), **{str(k): float(v) for k, v in last_row.items()}},
        "file": history.relative_to(folder).as_posix(),
        "forecast": records,
        "inference_seconds": round(inference_s, 4),
        **_orders(price_q, sw, config),
        **(uncertainty or {}),
        **run_record(config=config, model=model, engine=engine.record(), command=command, data=sw.ohlc),
    }
    root = config.output_dir
    write_parquet_atomic(history, table, root=root)
    append_entry(folder, index_entry(sw, payload, sha256=sha256_file(history)), root=root)
    with publish(folder, root=root) as stage:
        write_parquet_atomic(stage / "latest.parquet", table, root=root)
        write_json_atomic(stage / "latest.json", payload, root=root)
    return SymbolForecast(symbol=sw.symbol, preaug=spec, folder=folder, frame=frame, payload=payload)


def index_entry(sw: SymbolWindows, payload: dict[str, Any], *, sha256: str) -> dict[str, Any]:
    """The index line of an archived forecast: the file (relative to the symbol's folder) and its sha256,
    the origin, when it was issued, the model and checksum, what ``track`` needs to cut its window again
    (``context``: the bars the model saw), the config and the data file's hash up to the origin."""
    model = payload["model"]
    rows = int(sw.origins[0]) + 1
    entry: dict[str, Any] = {
        "file": payload["file"],
        "sha256": sha256,
        "symbol": sw.symbol,
        "label": payload["file"].split("/")[0],
        "run": payload["run"],
        "preaug": payload["preaug"],
        "origin": payload["last_bar"]["timestamp"],
        "issued_at": payload["created_at"],
        "model": model.get("id"),
        "model_checksum": model.get("checksum"),
        "horizon": payload["horizon"],
        "context": sw.context_length,
        "targets": payload["targets"],
        "quantiles": payload["quantiles"],
        "config": payload["config"],
        "data": {
            "sha256": sw.ohlc.sha256,
            "rows": rows,
            "prefix_sha256": prefix_hashes(sw.ohlc, sw.targets, [rows])[0],
        },
    }
    if payload.get("orders") is not None:  # strategy orders (forecast --strategy), scored by track
        entry["orders"] = payload["orders"]
    return entry
