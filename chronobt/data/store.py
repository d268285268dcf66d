"""The public entry points: load, check, list, import and save OHLC files."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from chronobt.atomic import write_parquet_atomic
from chronobt.data.files import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    SYMBOL_RULE,
    available_symbols,
    check_parquet_path,
    check_symbol,
    find_symbol,
    is_symbol,
    parquet_files,
    read_csv,
    read_parquet,
    symbol_of_file,
)
from chronobt.data.frequency import fmt_time, freq_step
from chronobt.data.ohlc import OHLC, DataReport, SymbolInfo
from chronobt.data.sessions import NO_CALENDAR, check_calendar_name, infer_trading_calendar
from chronobt.data.validate import check_max_gap, validate_frame
from chronobt.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def load_ohlc(
    symbol_or_path: str | Path,
    data_dir: str | Path = Path("data"),
    *,
    max_gap: int | None = None,
    calendar: str | None = None,
) -> OHLC:
    """Load, validate and repair one OHLC series; each repair is logged as a one-line warning.

    Parameters
    ----------
    symbol_or_path
        ``"ETHUSD"`` (case-insensitive, resolves to ``<data_dir>/ETHUSD.parquet``) or a path to a
        parquet file.
    data_dir
        Folder of ``<SYMBOL>.parquet`` files.
    max_gap
        Longest run of missing bars a 24/7 series may have filled; a longer gap is a DataError.
        ``None`` fills any gap.
    calendar
        Exchange calendar (``exchange_calendars`` name, e.g. ``"XNYS"``) the bars follow: future
        timestamps skip its holidays and follow its sessions. ``None`` infers one (XNYS or none, see
        :mod:`chronobt.data.sessions`); ``"none"`` uses no holiday calendar. Stored as
        ``OHLC.trading_calendar``.

    Raises
    ------
    DataError
        The file is missing, unreadable or invalid (the message says which rows and how to fix it).
    """
    ohlc = check_ohlc(symbol_or_path, data_dir, max_gap=max_gap, calendar=calendar)
    for line in ohlc.report.warnings():
        logger.warning("%s: %s", ohlc.path, line)
    return ohlc


def check_ohlc(
    symbol_or_path: str | Path,
    data_dir: str | Path = Path("data"),
    *,
    max_gap: int | None = None,
    calendar: str | None = None,
) -> OHLC:
    """Like :func:`load_ohlc` but without logging: the findings are in ``result.report``."""
    check_max_gap(max_gap)
    path, symbol = resolve_path(symbol_or_path, data_dir)
    raw, sha256 = read_parquet(path)  # the hash of the bytes parsed, not of a second read
    frame, report = validate_frame(raw, source=str(path), max_gap=max_gap, fill=True)
    index = pd.DatetimeIndex(frame.index)
    trading = _trading_calendar(calendar, index, report.freq, report.calendar, str(path))
    return OHLC(
        symbol=symbol,
        path=path,
        frame=frame,
        freq=report.freq,
        calendar=report.calendar,  # type: ignore[arg-type]
        report=report,
        sha256=sha256,
        trading_calendar=trading,
    )


def _trading_calendar(
    requested: str | None, index: pd.DatetimeIndex, freq: str, calendar: str, source: str
) -> str | None:
    """The named calendar (checked), None for "none", or the inferred one for ``requested=None``."""
    if requested is not None and requested.strip().lower() in NO_CALENDAR:
        return None
    if requested is not None:
        name = check_calendar_name(requested.strip())
        if calendar != "exchange":
            raise DataError(
                f"{source}: is a 24/7 {freq} series (bars on weekends), so --calendar {name} does not "
                "apply; drop --calendar"
            )
        return name
    if calendar != "exchange":
        return None
    return infer_trading_calendar(index, freq_step(freq), freq)


def adjust_stored_splits(
    symbol_or_path: str | Path, data_dir: str | Path = Path("data")
) -> tuple[Path, DataReport]:
    """Back-adjust the unadjusted splits found in a stored parquet file and rewrite it (atomically).

    Prices before each split are divided by its factor and volume multiplied (see
    :mod:`chronobt.data.splits`). Returns ``(path, report)``; ``report.splits_adjusted`` lists what was
    adjusted, and the file is rewritten only when that is not empty.
    """
    path, _ = resolve_path(symbol_or_path, data_dir)
    raw, _ = read_parquet(path)
    frame, report = validate_frame(raw, source=str(path), max_gap=None, fill=False, adjust=True)
    if report.splits_adjusted:
        write_parquet_atomic(path, frame.reset_index())
        for jump in report.splits_adjusted:
            logger.info("%s: back-adjusted the %s split at %s", path, jump.label, jump.timestamp)
    return path, report


def require_bars(ohlc: OHLC, n: int, *, purpose: str) -> None:
    """Raise a DataError unless ``ohlc`` has at least ``n`` bars (``purpose`` says what needs them)."""
    if len(ohlc) < n:
        raise DataError(
            f"{ohlc.path}: has {len(ohlc)} bars ({fmt_time(ohlc.index[0])} .. {fmt_time(ohlc.index[-1])}), "
            f"but {purpose} needs at least {n}; use a shorter context/horizon, fewer windows, or more data"
        )


def resolve_path(symbol_or_path: str | Path, data_dir: str | Path = Path("data")) -> tuple[Path, str]:
    """Resolve a symbol (case-insensitive, in ``data_dir``) or a path to ``(parquet path, SYMBOL)``.

    The symbol names the results' folders, so it is checked (see :func:`~chronobt.data.files.is_symbol`):
    an empty one is a ConfigError, a malformed one or a file stem like ``..`` a DataError.
    """
    text = str(symbol_or_path)
    if not text.strip():
        raise ConfigError("an empty symbol was given; pass a symbol like ETHUSD or a path to a .parquet file")
    data_dir = Path(data_dir)
    as_path = Path(text)
    looks_like_path = (
        isinstance(symbol_or_path, Path)
        or "/" in text
        or "\\" in text
        or as_path.suffix.lower() in (*PARQUET_SUFFIXES, *CSV_SUFFIXES, ".json", ".xlsx", ".gz", ".feather")
    )
    if not looks_like_path:
        if not is_symbol(text):
            raise DataError(
                f"symbol {text!r}: not a usable symbol (use {SYMBOL_RULE}); pass a path to a .parquet file, "
                f"or import the data with `chronobt data import FILE.csv --symbol ETHUSD`"
            )
        found = find_symbol(text, data_dir)
        if found is not None:
            return check_parquet_path(found), symbol_of_file(found)
        if not as_path.exists():
            raise DataError(
                f"no data for symbol {text!r} in {data_dir}/ ({available_symbols(data_dir)}); "
                f"import one with `chronobt data import FILE.csv --symbol {text.upper()}` or check --data-dir"
            )
    return check_parquet_path(as_path), symbol_of_file(as_path)


def list_symbols(data_dir: str | Path = Path("data")) -> list[SymbolInfo]:
    """Every ``*.parquet`` in ``data_dir``: symbol, rows, first/last timestamp, frequency (no logging).

    A file that fails validation is listed with ``error`` set instead of stopping the listing.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"data dir {data_dir} does not exist; pass --data-dir or set CHRONOBT_DATA_DIR "
            "(or import a CSV with `chronobt data import`)"
        )
    infos: list[SymbolInfo] = []
    for path in parquet_files(data_dir):
        try:
            ohlc = check_ohlc(path)
        except DataError as exc:
            infos.append(SymbolInfo(symbol=path.stem.upper(), path=path, error=str(exc)))
            continue
        except Exception as exc:  # a file no check foresaw still must not hide the others
            logger.debug("listing %s failed", path, exc_info=True)
            reason = " ".join(str(exc).split())[:200]
            error = f"{path}: cannot be validated ({type(exc).__name__}: {reason}); run `chronobt data check`"
            infos.append(SymbolInfo(symbol=path.stem.upper(), path=path, error=error))
            continue
        infos.append(
            SymbolInfo(
                symbol=ohlc.symbol,
                path=path,
                rows=len(ohlc),
                first=ohlc.index[0],
                last=ohlc.index[-1],
                freq=ohlc.freq,
                calendar=ohlc.calendar,
                warnings=len(ohlc.report.warnings()),
                trading_calendar=ohlc.trading_calendar,
            )
        )
    return infos


def import_csv(
    csv_path: str | Path,
    *,
    symbol: str,
    data_dir: str | Path = Path("data"),
    max_gap: int | None = None,
    overwrite: bool = False,
    tz: str | None = None,
    columns: str | None = None,
    adjust_splits: bool = False,
) -> Path:
    """Convert an exchange CSV export to ``<data_dir>/<SYMBOL>.parquet`` (atomically) and return its path.

    Handles banner lines before the header, newest-first rows, unix seconds/milliseconds (even switching
    mid-file, cross-checked with a date column beside them) or date strings, capitalised or prefixed
    column names, case-twin columns that fill each other's rows, and several volume columns (the
    base-asset one is kept). ``tz``: the zone of local timestamps written without one (default UTC).
    ``columns`` (``"lower"``/``"capitalized"``) picks the case-twin column set that wins a conflicting
    row; ``adjust_splits`` back-adjusts one-bar moves that look like unadjusted splits (see
    :mod:`chronobt.data.splits`; without it they are only reported).
    The written file holds the sorted, de-duplicated bars (gaps are filled at load time, loudly).
    Nothing is written when validation fails. :func:`import_csv_report` also returns what was repaired.
    """
    return import_csv_report(
        csv_path,
        symbol=symbol,
        data_dir=data_dir,
        max_gap=max_gap,
        overwrite=overwrite,
        tz=tz,
        columns=columns,
        adjust_splits=adjust_splits,
    )[0]


def import_csv_report(
    csv_path: str | Path,
    *,
    symbol: str,
    data_dir: str | Path = Path("data"),
    max_gap: int | None = None,
    overwrite: bool = False,
    tz: str | None = None,
    columns: str | None = None,
    adjust_splits: bool = False,
) -> tuple[Path, DataReport]:
    """Like :func:`import_csv`, returning ``(written path, report of the repairs made while importing)``."""
    symbol = check_symbol(symbol)
    path = Path(csv_path)
    raw = read_csv(path)
    return save_ohlc_report(
        raw,
        symbol=symbol,
        data_dir=data_dir,
        source=str(path),
        max_gap=max_gap,
        overwrite=overwrite,
        tz=tz,
        columns=columns,
        adjust_splits=adjust_splits,
    )


def save_ohlc(
    raw: pd.DataFrame,
    *,
    symbol: str,
    data_dir: str | Path = Path("data"),
    source: str = "<frame>",
    max_gap: int | None = None,
    overwrite: bool = False,
    tz: str | None = None,
    columns: str | None = None,
    adjust_splits: bool = False,
) -> Path:
    """Validate a raw OHLC frame (any column spelling) and write ``<data_dir>/<SYMBOL>.parquet`` atomically.

    Repairs are logged as warnings with counts; the file gets a ``timestamp`` column (UTC) and float64
    open, high, low, close[, volume].
    """
    return save_ohlc_report(
        raw,
        symbol=symbol,
        data_dir=data_dir,
        source=source,
        max_gap=max_gap,
        overwrite=overwrite,
        tz=tz,
        columns=columns,
        adjust_splits=adjust_splits,
    )[0]


def save_ohlc_report(
    raw: pd.DataFrame,
    *,
    symbol: str,
    data_dir: str | Path = Path("data"),
    source: str = "<frame>",
    max_gap: int | None = None,
    overwrite: bool = False,
    tz: str | None = None,
    columns: str | None = None,
    adjust_splits: bool = False,
) -> tuple[Path, DataReport]:
    """Like :func:`save_ohlc`, returning ``(written path, report of the repairs made while saving)``."""
    symbol = check_symbol(symbol)
    data_dir = Path(data_dir)
    existing = find_symbol(symbol, data_dir) if data_dir.is_dir() else None
    if existing is not None and not overwrite:
        raise DataError(f"{existing} already exists; pass --force to replace it")
    frame, report = validate_frame(
        raw,
        source=source,
        max_gap=max_gap,
        fill=False,
        symbol=symbol,
        tz=tz,
        columns=columns,
        adjust=adjust_splits,
    )
    for line in report.warnings():
        logger.warning("%s: %s", source, line)
    target = existing if existing is not None else data_dir / f"{symbol}.parquet"
    out = frame.reset_index()
    write_parquet_atomic(target, out)
    logger.info(
        "wrote %s (%d rows, %s .. %s)", target, len(out), fmt_time(frame.index[0]), fmt_time(frame.index[-1])
    )
    return target, report
