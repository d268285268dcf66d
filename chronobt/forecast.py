"""Forecast the bars after the latest one, with a pre-augmentation, inverse-transformed to prices.

Reuses the backtest pipeline with a single window per symbol whose origin is the last bar:
:func:`~chronobt.backtest.make_job` fits the augmentation on the latest ``context`` bars,
:func:`~chronobt.backtest.forecast_jobs` sends every symbol through the engine in one call and
:func:`~chronobt.backtest.invert_job` maps the quantiles back to prices.

Outputs per symbol under ``<output-dir>/forecast/<SYMBOL>/`` (each file written atomically):

- ``<last-bar>.parquet`` (e.g. ``2024-08-30T000000Z.parquet``), kept as history, and ``latest.parquet``:
  one row per (step, target) with symbol, origin, step, timestamp, target, median, one column per quantile
  level (``"0.1"`` .. ``"0.9"``), preaug, model.
- ``latest.json``: the same rows plus the last observed bar and the run record (model, engine, versions).
  It is written last, so a reader that sees a new ``latest.json`` also sees the parquet files it names.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.augment import parse_augmentation
from chronobt.backtest import (
    Job,
    Progress,
    RunOptions,
    SymbolWindows,
    check_symbols_and_preaug,
    forecast_jobs,
    invert_job,
    library_versions,
    make_job,
    quantile_column,
    resolve_preaug,
)
from chronobt.data import load_ohlc
from chronobt.engine import Chronos2Engine, EngineConfig
from chronobt.errors import ChronobtError, DataError
from chronobt.results import write_json_atomic, write_parquet_atomic
from chronobt.windows import MIN_CONTEXT, cut_windows

logger = logging.getLogger(__name__)

#: strftime pattern of the history file names (no ':' so the names work on every filesystem).
STAMP_FORMAT = "%Y-%m-%dT%H%M%SZ"


@dataclass(frozen=True, kw_only=True)
class ForecastConfig(RunOptions):
    """What to forecast (engine options live in :class:`~chronobt.engine.EngineConfig`).

    ``preaug`` is an augmentation spec or ``auto`` (the sweep's choice per symbol, ``none`` if there is none).
    """

    symbols: tuple[str, ...]
    preaug: str = "none"

    def __post_init__(self) -> None:
        check_symbols_and_preaug(self.symbols, self.preaug)
        super().__post_init__()


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


def latest_window(symbol: str, config: ForecastConfig) -> SymbolWindows:
    """One window whose origin is the last bar: contexts [1, variates, <= context], futures all NaN."""
    ohlc = load_ohlc(symbol, config.data_dir, max_gap=config.max_gap)
    values = ohlc.values(config.targets)
    if len(values) < MIN_CONTEXT:
        raise DataError(
            f"{ohlc.path}: has {len(values)} bars; a forecast needs at least {MIN_CONTEXT} bars of context"
        )
    origins = np.array([len(values) - 1], dtype=np.int64)
    contexts, _ = cut_windows(values, origins, context=config.context, horizon=0, with_future=False)
    futures = np.full((1, len(config.targets), config.horizon), np.nan)
    return SymbolWindows(
        ohlc=ohlc, targets=config.targets, contexts=contexts, futures=futures, origins=origins
    )


def run_forecast(
    config: ForecastConfig,
    engine_config: EngineConfig | None = None,
    *,
    engine: Chronos2Engine | None = None,
    progress: Progress | None = None,
    command: Sequence[str] | None = None,
) -> ForecastReport:
    """Forecast ``config.horizon`` bars after the last bar of every symbol and write the files.

    Progress stages: ``prepare`` (symbols), ``forecast`` (symbols through the model), ``write``.
    A symbol that fails (data, augmentation) is recorded in ``report.failures``; the others are written.
    """
    report = ForecastReport()
    jobs: list[tuple[str, Job]] = []
    for i, symbol in enumerate(config.symbols):
        try:
            sw = latest_window(symbol, config)
            spec = resolve_preaug(sw.symbol, config.preaug, config.output_dir)
            jobs.append((spec, make_job(sw, spec)))
        except (ChronobtError, OSError) as exc:
            report.failures[symbol.upper()] = str(exc)
            logger.debug("symbol %s failed", symbol, exc_info=True)
        if progress:
            progress("prepare", i + 1, len(config.symbols))
    if not jobs:
        return report
    if engine is None:
        engine = Chronos2Engine(engine_config or EngineConfig())
    t0 = time.perf_counter()
    forecast_jobs(
        engine,
        [job for _, job in jobs],
        config.horizon,
        progress=(lambda done, total: progress("forecast", done, total)) if progress else None,
    )
    inference_s = time.perf_counter() - t0
    report.engine_record = engine.record()
    for k, (spec, job) in enumerate(jobs):
        sw = job.windows
        try:
            price_q = invert_job(
                job,
                engine.quantile_levels,
                config.quantiles,
                dependence=config.dependence,
                n_paths=config.n_paths,
                seed=config.seed,
            )
            report.results.append(
                write_forecast(
                    sw,
                    price_q,
                    config=config,
                    spec=spec,
                    engine=engine,
                    inference_s=inference_s,
                    command=command,
                )
            )
        except (ChronobtError, OSError) as exc:
            report.failures[sw.symbol] = str(exc)
            logger.debug("symbol %s failed", sw.symbol, exc_info=True)
        if progress:
            progress("write", k + 1, len(jobs))
    return report


def forecast_rows(
    sw: SymbolWindows, price_q: np.ndarray, levels: Sequence[float], *, preaug: str, model: str
) -> pd.DataFrame:
    """Long table of one window's forecast: one row per (step, target), steps outermost.

    Parameters
    ----------
    sw : the window (origin = last bar).
    price_q : ndarray [1, variates, len(levels), horizon] price quantiles.
    """
    _, n_var, _, horizon = price_q.shape
    origin = sw.origin_times[0]
    stamps = sw.ohlc.future_timestamps(origin, horizon)
    step_i, var_i = np.meshgrid(np.arange(horizon), np.arange(n_var), indexing="ij")
    q = price_q[0].transpose(2, 0, 1)  # [horizon, variates, Q]
    frame = pd.DataFrame(
        {
            "symbol": sw.symbol,
            "origin": pd.DatetimeIndex([origin] * (horizon * n_var)),
            "step": (step_i + 1).ravel().astype(np.int32),
            "timestamp": stamps[step_i.ravel()],
            "target": np.asarray(sw.targets, dtype=object)[var_i.ravel()],
            "median": q[:, :, list(levels).index(0.5)].ravel(),
        }
    )
    for k, level in enumerate(levels):
        frame[quantile_column(level)] = q[:, :, k].ravel()
    frame["preaug"] = preaug
    frame["model"] = model
    return frame


def write_forecast(
    sw: SymbolWindows,
    price_q: np.ndarray,
    *,
    config: ForecastConfig,
    spec: str,
    engine: Chronos2Engine,
    inference_s: float = 0.0,
    command: Sequence[str] | None = None,
) -> SymbolForecast:
    """Write ``<last-bar>.parquet``, ``latest.parquet`` and (last) ``latest.json`` for one symbol."""
    model = dict(engine.model_info)
    frame = forecast_rows(sw, price_q, config.quantiles, preaug=spec, model=str(model.get("id")))
    origin = sw.origin_times[0]
    last_row = sw.ohlc.frame.iloc[-1]
    folder = config.output_dir / "forecast" / sw.symbol
    history = folder / f"{origin.strftime(STAMP_FORMAT)}.parquet"
    records = frame.assign(
        origin=frame["origin"].map(pd.Timestamp.isoformat),
        timestamp=frame["timestamp"].map(pd.Timestamp.isoformat),
    ).to_dict(orient="records")
    payload: dict[str, Any] = {
        "symbol": sw.symbol,
        "preaug": spec,
        "preaug_params": dict(parse_augmentation(spec).params),
        "requested_preaug": config.preaug,
        "horizon": config.horizon,
        "context_length": int(np.count_nonzero(~np.isnan(sw.contexts[0, 0]))),
        "targets": list(sw.targets),
        "quantiles": list(config.quantiles),
        "last_bar": {
            "timestamp": origin.isoformat(),
            **{str(k): float(v) for k, v in last_row.items()},
        },
        "file": history.name,
        "forecast": records,
        "model": model,
        "engine": engine.record(),
        "inference_seconds": round(inference_s, 4),
        "data": {
            "path": str(sw.ohlc.path),
            "sha256": sw.ohlc.sha256,
            "rows": len(sw.ohlc.frame),
            "freq": sw.ohlc.freq,
            "calendar": sw.ohlc.calendar,
        },
        "versions": library_versions(),
        "seed": config.seed,
        "command": list(command) if command is not None else ["chronobt", *sys.argv[1:]],
        "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }
    write_parquet_atomic(history, frame)
    write_parquet_atomic(folder / "latest.parquet", frame)
    write_json_atomic(folder / "latest.json", payload)
    return SymbolForecast(symbol=sw.symbol, preaug=spec, folder=folder, frame=frame, payload=payload)
