"""The output schema every command shares: the forecast table, the run record (manifest), folder names.

Writing bytes safely is :mod:`chronobt.atomic`'s job (the bottom of the package); this module knows
windows and runs, so it sits above :mod:`chronobt.pipeline.jobs`. The command line that produced a run is
passed in by the caller: nothing here reads ``sys.argv``.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from chronobt._version import __version__
from chronobt.config import RunOptions, config_record
from chronobt.data import OHLC

#: What the run record says when the library was called from Python rather than the command line.
API_COMMAND = ("<python api>",)


def quantile_column(level: float) -> str:
    """Column name of a quantile level, as chronos-forecasting names them ("0.1", "0.25", ...)."""
    return str(float(level))


def preaug_slug(spec: str) -> str:
    """Folder-safe name of a spec: ``rolling_norm:window=48`` -> ``rolling_norm_window=48``."""
    return spec.replace(":", "_").replace(",", "_")


def backtest_folder(output_dir: Path, symbol: str, spec: str) -> Path:
    return output_dir / "backtest" / symbol / preaug_slug(spec)


def forecast_folder(output_dir: Path, symbol: str) -> Path:
    return output_dir / "forecast" / symbol


def sweep_folder(output_dir: Path) -> Path:
    return output_dir / "sweep"


def forecast_table(
    *,
    symbol: str,
    origins: pd.DatetimeIndex,
    timestamps: pd.DatetimeIndex,
    targets: Sequence[str],
    price_q: np.ndarray,
    levels: Sequence[float],
    preaug: str,
    actual: np.ndarray | None = None,
    filled: np.ndarray | None = None,
    extra: Mapping[str, str] | None = None,
) -> pa.Table:
    """Long table: one row per (origin, step, target), steps inside origins, targets inside steps.

    Parameters
    ----------
    origins : [windows] timestamp of each window's last observed bar.
    timestamps : [windows * horizon] timestamp of each forecast step, windows outermost.
    price_q : [windows, variates, Q, horizon] price quantiles at ``levels`` (0.5 among them).
    actual : [windows, variates, horizon] realised values, or ``None`` (a forecast: no column); NaN is
        written as null.
    filled : [windows, horizon] bool, bars forward-filled at load (their ``actual`` is null); written as
        the ``filled`` column with ``actual`` (all False when ``None``).
    extra : constant string columns appended at the end (e.g. ``{"model": ...}``).

    Columns: ``symbol, origin, step, timestamp, target[, actual, filled], median, <one per level>, preaug[,
    extra]``.
    Built as an Arrow table straight from the arrays (no DataFrame in between).
    """
    n_win, n_var, _, horizon = price_q.shape
    n_rows = n_win * horizon * n_var

    def repeated(value: str) -> pa.Array:
        return pa.DictionaryArray.from_arrays(np.zeros(n_rows, dtype=np.int32), [value]).dictionary_decode()

    def long(values: np.ndarray) -> np.ndarray:  # [w, v, h] -> rows in (origin, step, target) order
        return np.ascontiguousarray(values.transpose(0, 2, 1)).ravel()

    columns: dict[str, Any] = {
        "symbol": repeated(symbol),
        "origin": pa.array(origins[np.repeat(np.arange(n_win), horizon * n_var)]),
        "step": pa.array(np.tile(np.repeat(np.arange(1, horizon + 1, dtype=np.int32), n_var), n_win)),
        "timestamp": pa.array(timestamps[np.repeat(np.arange(n_win * horizon), n_var)]),
        "target": pa.DictionaryArray.from_arrays(
            np.tile(np.arange(n_var, dtype=np.int32), n_win * horizon), list(targets)
        ).dictionary_decode(),
    }
    if actual is not None:
        values = long(actual)
        columns["actual"] = pa.array(values, mask=np.isnan(values))
        marks = np.zeros((n_win, horizon), dtype=bool) if filled is None else np.asarray(filled, dtype=bool)
        columns["filled"] = pa.array(np.repeat(marks.ravel(), n_var))
    columns["median"] = pa.array(long(price_q[:, :, list(levels).index(0.5), :]))
    for k, level in enumerate(levels):
        columns[quantile_column(level)] = pa.array(long(price_q[:, :, k, :]))
    columns["preaug"] = repeated(preaug)
    for name, value in (extra or {}).items():
        columns[name] = repeated(value)
    return pa.table(columns)


def data_record(ohlc: OHLC, *, calendar: bool = True) -> dict[str, Any]:
    """The data file a run read: path, sha256, rows, span, then (``calendar``) frequency and calendar."""
    record: dict[str, Any] = {
        "path": str(ohlc.path),
        "sha256": ohlc.sha256,
        "rows": len(ohlc.frame),
        "first": ohlc.frame.index[0].isoformat(),
        "last": ohlc.frame.index[-1].isoformat(),
    }
    if calendar:
        record.update(freq=ohlc.freq, calendar=ohlc.calendar, trading_calendar=ohlc.trading_calendar)
    return record


def run_record(
    *,
    config: RunOptions,
    model: Mapping[str, Any],
    engine: Mapping[str, Any],
    command: Sequence[str] | None,
    data: OHLC | None = None,
    created_at: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The one manifest every command writes: config, data file, model, engine record, versions, command.

    ``command`` is the command line as the caller saw it (``None``: called from Python). ``extra`` keys
    (e.g. ``preaug``, ``symbols``) are added after the data record.
    """
    record: dict[str, Any] = {"config": config_record(config)}
    if data is not None:
        record["data"] = data_record(data)
    record.update(extra)
    record.update(
        {
            "model": dict(model),
            "engine": dict(engine),
            "versions": library_versions(),
            "device": engine.get("device"),
            "dtype": engine.get("dtype"),
            "seed": config.seed,
            "command": list(command) if command is not None else list(API_COMMAND),
            "created_at": created_at or now_iso(),
        }
    )
    return record


def now_iso() -> str:
    return pd.Timestamp.now(tz="UTC").isoformat()


def library_versions() -> dict[str, str]:
    """Versions of chronobt and the libraries that shape its numbers (recorded in every manifest)."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> tuple[tuple[str, str], ...]:  # package metadata lookups are slow: once
    import torch

    chronos_version = _dist_version("chronos-forecasting")  # its metadata: importing it costs seconds
    return (
        ("chronobt", __version__),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("pandas", pd.__version__),
        ("torch", torch.__version__),
        ("chronos-forecasting", chronos_version),
    )


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
