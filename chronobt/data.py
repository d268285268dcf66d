"""OHLC data: load, validate, repair (loudly), infer the calendar, import CSV exports.

A file becomes an :class:`OHLC`: a UTC-indexed float64 frame of open/high/low/close[/volume] on a known
bar frequency and calendar, with a :class:`DataReport` of everything that was repaired. Anything that
cannot be repaired safely is a :class:`~chronobt.errors.DataError` naming the file, the column, how many
rows and the first offending timestamp, and how to fix it.

Calendars
---------
``continuous``
    24/7 series (crypto). Bars sit on a regular grid; missing bars are forward-filled (flat bars at the
    previous close, volume 0) and reported, or refused beyond ``max_gap`` bars.
``exchange``
    Trading-calendar series (daily stocks without weekends, FX without weekend hours). Bars are taken as
    consecutive; nothing is filled. Future timestamps skip the closed hours/days.
"""

from __future__ import annotations

import csv
import gzip
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format
from pandas.tseries.frequencies import to_offset

from chronobt.errors import ConfigError, DataError
from chronobt.results import sha256_file, write_parquet_atomic

__all__ = [
    "MAX_ABS_PRICE",
    "OHLC",
    "TARGETS",
    "DataReport",
    "SymbolInfo",
    "check_ohlc",
    "import_csv",
    "list_symbols",
    "load_ohlc",
    "require_bars",
    "resolve_path",
    "save_ohlc",
]

logger = logging.getLogger(__name__)

TARGETS: tuple[str, ...] = ("open", "high", "low", "close")
MAX_ABS_PRICE = 1e15  # larger magnitudes are corrupt values (1e308, overflowed ints), not prices
MIN_ROWS = 2  # fewer bars cannot define a frequency
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
Calendar = Literal["continuous", "exchange"]

_DAY = pd.Timedelta(days=1)
_TIME_NAMES = (
    "timestamp", "datetime", "date_time", "open_time", "opentime", "unix", "unix_timestamp",
    "unix_time", "time", "date", "ts", "time_utc", "date_utc", "gmt_time", "local_time",
)  # fmt: skip
_PRICE_ALIASES = {t: {t, f"{t}_price", f"price_{t}", t[0]} for t in TARGETS}
_NOT_PRICE_TOKENS = {"adj", "adjusted", "time", "date", "timestamp"}
_QUOTE_TOKENS = {"usd", "usdt", "usdc", "busd", "eur", "gbp", "jpy", "quote", "to"}
_NOT_VOLUME_TOKENS = {"taker", "buy", "sell", "quote_asset"}
_EXTRA_TIME_FORMATS = ("%Y-%m-%d %I-%p", "%Y-%m-%d %I %p", "%Y-%m-%d %I:%M %p", "%d.%m.%Y %H:%M:%S.%f")
_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2}|\s?UTC|\s?GMT)$", re.IGNORECASE)
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._^=-]*$")


# --------------------------------------------------------------------------------------------------
# Report and result types


@dataclass(frozen=True)
class DataReport:
    """What loading found and repaired. Counts are rows; ``*_first`` is the first offending timestamp."""

    source: str
    rows_read: int
    rows: int
    newest_first: bool = False
    unsorted_rows: int = 0
    duplicate_exact: int = 0
    duplicate_exact_first: pd.Timestamp | None = None
    duplicate_conflicting: int = 0
    duplicate_conflicting_first: pd.Timestamp | None = None
    ohlc_inconsistent: int = 0
    ohlc_inconsistent_first: pd.Timestamp | None = None
    non_positive: int = 0
    non_positive_first: pd.Timestamp | None = None
    volume_missing: int = 0
    gaps: int = 0
    missing_bars: int = 0
    filled_bars: int = 0
    longest_gap: int = 0
    longest_gap_after: pd.Timestamp | None = None
    freq: str = ""
    calendar: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # target -> source column name

    def warnings(self) -> list[str]:
        """One line per repair or finding worth a user's attention (empty when the file is clean)."""
        out: list[str] = []
        if self.newest_first:
            out.append("rows were newest-first; reversed to ascending time order")
        elif self.unsorted_rows:
            out.append(f"{self.unsorted_rows} rows were out of time order; sorted ascending")
        if self.duplicate_exact:
            out.append(
                f"{self.duplicate_exact} exact duplicate rows dropped "
                f"(first at {_fmt(self.duplicate_exact_first)})"
            )
        if self.duplicate_conflicting:
            out.append(
                f"{self.duplicate_conflicting} rows repeat a timestamp with different values; kept the "
                f"last in file order (first at {_fmt(self.duplicate_conflicting_first)})"
            )
        if self.ohlc_inconsistent:
            out.append(
                f"{self.ohlc_inconsistent} rows have inconsistent OHLC (high below max(open, close) or "
                f"low above min(open, close); first at {_fmt(self.ohlc_inconsistent_first)}); kept as is"
            )
        if self.non_positive:
            out.append(
                f"{self.non_positive} rows have zero or negative prices (first at "
                f"{_fmt(self.non_positive_first)}); augmentations that need positive prices will refuse it"
            )
        if self.volume_missing:
            out.append(f"{self.volume_missing} missing volume values set to 0")
        if self.filled_bars:
            out.append(
                f"{self.filled_bars} missing {self.freq} bars forward-filled ({self.gaps} gap(s), longest "
                f"{self.longest_gap} bars after {_fmt(self.longest_gap_after)}); --max-gap N refuses longer"
            )
        elif self.missing_bars:
            out.append(
                f"{self.missing_bars} {self.freq} bars missing ({self.gaps} gap(s), "
                f"longest {self.longest_gap} bars after {_fmt(self.longest_gap_after)}); "
                "they are forward-filled when loaded"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (timestamps as ISO strings) including ``warnings``."""
        out = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in asdict(self).items()}
        out["warnings"] = self.warnings()
        return out


@dataclass(frozen=True, eq=False)
class OHLC:
    """One validated OHLC series.

    Attributes
    ----------
    symbol : str
        Upper-case symbol (the file stem for a path).
    path : Path
        The parquet file it was read from.
    frame : pd.DataFrame
        DatetimeIndex (tz UTC, named ``timestamp``, ascending, unique); float64 columns open, high, low,
        close and volume when the file has one.
    freq : str
        Pandas offset alias of one bar: ``"h"``, ``"D"``, ``"B"``, ``"min"``, ``"15min"``, ...
    calendar : {"continuous", "exchange"}
        24/7 with gaps filled, or a trading calendar whose bars are consecutive.
    report : DataReport
        Repairs and findings.
    sha256 : str
        Hex SHA-256 of the file.
    """

    symbol: str
    path: Path
    frame: pd.DataFrame
    freq: str
    calendar: Calendar
    report: DataReport
    sha256: str

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def index(self) -> pd.DatetimeIndex:
        """The bar timestamps, ``[time]``."""
        return pd.DatetimeIndex(self.frame.index)

    def values(self, targets: Sequence[str] = TARGETS) -> np.ndarray:
        """Prices as a float64 array ``[time, variates]`` in ``targets`` order (a fresh copy)."""
        missing = [t for t in targets if t not in self.frame.columns]
        if missing:
            raise DataError(
                f"{self.path}: no column {', '.join(map(repr, missing))} "
                f"(has {', '.join(self.frame.columns)}); choose targets from those"
            )
        return self.frame.loc[:, list(targets)].to_numpy(dtype=np.float64, copy=True)

    @cached_property
    def _step(self) -> pd.Timedelta | None:
        return _freq_step(self.freq)

    @cached_property
    def _bars_per_day(self) -> int:
        """Bars per trading day (median over calendar dates) for intraday exchange series."""
        counts = pd.Series(1, index=self.index.normalize()).groupby(level=0).size()
        return max(1, round(float(counts.median())))

    @property
    def season_length(self) -> int:
        """Bars in one natural season: 24 hourly 24/7, 7 daily 24/7, 5 business days, 52 weekly, ..."""
        if self.freq == "B":
            return 5
        step = self._step
        if step is None:
            return {"M": 12, "Q": 4}.get(self.freq[:1], 1)
        if step < _DAY:
            if self.calendar == "exchange":
                return self._bars_per_day
            per_day = int(_DAY / step)
            return per_day if per_day <= 96 else max(1, int(pd.Timedelta(hours=1) / step))
        if step == _DAY:
            return 7
        if step == 7 * _DAY:
            return 52
        return 1

    @property
    def bars_per_year(self) -> float:
        """Bars per year for annualising: 8760 hourly 24/7, 365 daily 24/7, 252 business days, ..."""
        if self.freq == "B":
            return 252.0
        step = self._step
        if step is None:
            return {"M": 12.0, "Q": 4.0, "Y": 1.0}.get(self.freq[:1], 1.0)
        if self.calendar == "exchange" and step < _DAY:
            return len(self._session_slots) * 365.0 / 7.0  # trading bars per week, 52.14 weeks
        return float(pd.Timedelta(days=365) / step)

    def future_timestamps(self, after: pd.Timestamp | str, n: int) -> pd.DatetimeIndex:
        """The ``n`` bar timestamps after ``after``, following the series' own frequency and calendar.

        Hourly 24/7 continues hourly; daily stocks continue on business days; intraday exchange series
        (FX) skip the weekly hours that never trade in the file.
        """
        start = _as_utc(pd.Timestamp(after))
        if n <= 0:
            return pd.DatetimeIndex([], tz="UTC", name="timestamp")
        step = self._step
        if self.calendar == "exchange" and step is not None and step < _DAY:
            return self._future_in_session(start, n, step)
        rng = pd.date_range(start=start, periods=n + 2, freq=self.freq)
        return pd.DatetimeIndex(rng[rng > start][:n], name="timestamp")

    @cached_property
    def _session_slots(self) -> np.ndarray:
        """Positions within the week (ns since Thursday 1970-01-01 00:00) at which the series trades.

        A slot counts when it holds at least a fifth of the busiest slot's bars, so a stray weekend bar
        does not open the weekend.
        """
        slots, counts = np.unique(self.index.asi8 % (7 * _DAY.value), return_counts=True)
        return slots[counts >= 0.2 * counts.max()]

    def _future_in_session(self, start: pd.Timestamp, n: int, step: pd.Timedelta) -> pd.DatetimeIndex:
        week_ns = 7 * _DAY.value
        allowed = self._session_slots
        chunk = max(2 * n, int(7 * _DAY / step) + 1)
        found: list[np.ndarray] = []
        total = 0
        cursor = start.value
        while total < n:
            cand = cursor + step.value * np.arange(1, chunk + 1, dtype=np.int64)
            keep = cand[np.isin(cand % week_ns, allowed)]
            found.append(keep)
            total += len(keep)
            cursor = int(cand[-1])
        ns = np.concatenate(found)[:n]
        return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True), name="timestamp")

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: symbol, path, rows, span, freq, calendar, checksum and the report."""
        return {
            "symbol": self.symbol,
            "path": str(self.path),
            "rows": len(self),
            "first": self.index[0].isoformat(),
            "last": self.index[-1].isoformat(),
            "freq": self.freq,
            "calendar": self.calendar,
            "season_length": self.season_length,
            "bars_per_year": self.bars_per_year,
            "columns": list(self.frame.columns),
            "sha256": self.sha256,
            "report": self.report.to_dict(),
        }


@dataclass(frozen=True)
class SymbolInfo:
    """One row of ``chronobt data list``; ``error`` is set (and the rest empty) for an unreadable file."""

    symbol: str
    path: Path
    rows: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    freq: str = ""
    calendar: str = ""
    warnings: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        out["first"] = self.first.isoformat() if self.first is not None else None
        out["last"] = self.last.isoformat() if self.last is not None else None
        return out


# --------------------------------------------------------------------------------------------------
# Public entry points


def load_ohlc(
    symbol_or_path: str | Path, data_dir: str | Path = Path("data"), *, max_gap: int | None = None
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

    Raises
    ------
    DataError
        The file is missing, unreadable or invalid (the message says which rows and how to fix it).
    """
    ohlc = check_ohlc(symbol_or_path, data_dir, max_gap=max_gap)
    for line in ohlc.report.warnings():
        logger.warning("%s: %s", ohlc.path, line)
    return ohlc


def check_ohlc(
    symbol_or_path: str | Path, data_dir: str | Path = Path("data"), *, max_gap: int | None = None
) -> OHLC:
    """Like :func:`load_ohlc` but without logging: the findings are in ``result.report``."""
    if max_gap is not None and max_gap < 0:
        raise ConfigError(f"--max-gap {max_gap}: expected 0 or a positive number of bars")
    path, symbol = resolve_path(symbol_or_path, data_dir)
    raw = _read_parquet(path)
    frame, report = _validate(raw, source=str(path), max_gap=max_gap, fill=True)
    return OHLC(
        symbol=symbol,
        path=path,
        frame=frame,
        freq=report.freq,
        calendar=report.calendar,  # type: ignore[arg-type]
        report=report,
        sha256=sha256_file(path),
    )


def require_bars(ohlc: OHLC, n: int, *, purpose: str) -> None:
    """Raise a DataError unless ``ohlc`` has at least ``n`` bars (``purpose`` says what needs them)."""
    if len(ohlc) < n:
        raise DataError(
            f"{ohlc.path}: has {len(ohlc)} bars ({_fmt(ohlc.index[0])} .. {_fmt(ohlc.index[-1])}), "
            f"but {purpose} needs at least {n}; use a shorter context/horizon, fewer windows, or more data"
        )


def resolve_path(symbol_or_path: str | Path, data_dir: str | Path = Path("data")) -> tuple[Path, str]:
    """Resolve a symbol (case-insensitive, in ``data_dir``) or a path to ``(parquet path, SYMBOL)``."""
    text = str(symbol_or_path)
    data_dir = Path(data_dir)
    as_path = Path(text)
    looks_like_path = (
        isinstance(symbol_or_path, Path)
        or "/" in text
        or "\\" in text
        or as_path.suffix.lower() in (*PARQUET_SUFFIXES, *CSV_SUFFIXES, ".json", ".xlsx", ".gz", ".feather")
    )
    if not looks_like_path:
        found = _find_symbol(text, data_dir)
        if found is not None:
            return found, found.stem.upper()
        if not as_path.exists():
            raise DataError(
                f"no data for symbol {text!r} in {data_dir}/ ({_available(data_dir)}); "
                f"import one with `chronobt data import FILE.csv --symbol {text.upper()}` or check --data-dir"
            )
    return _check_parquet_path(as_path), as_path.stem.upper()


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
    for path in _parquet_files(data_dir):
        try:
            ohlc = check_ohlc(path)
        except DataError as exc:
            infos.append(SymbolInfo(symbol=path.stem.upper(), path=path, error=str(exc)))
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
) -> Path:
    """Convert an exchange CSV export to ``<data_dir>/<SYMBOL>.parquet`` (atomically) and return its path.

    Handles banner lines before the header, newest-first rows, unix seconds/milliseconds or date
    strings, capitalised or prefixed column names and several volume columns (the base-asset one is
    kept). The written file holds the sorted, de-duplicated bars (gaps are filled at load time, loudly).
    Nothing is written when validation fails.
    """
    symbol = _check_symbol(symbol)
    path = Path(csv_path)
    raw = _read_csv(path)
    return save_ohlc(
        raw, symbol=symbol, data_dir=data_dir, source=str(path), max_gap=max_gap, overwrite=overwrite
    )


def save_ohlc(
    raw: pd.DataFrame,
    *,
    symbol: str,
    data_dir: str | Path = Path("data"),
    source: str = "<frame>",
    max_gap: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Validate a raw OHLC frame (any column spelling) and write ``<data_dir>/<SYMBOL>.parquet`` atomically.

    Repairs are logged as warnings with counts; the file gets a ``timestamp`` column (UTC) and float64
    open, high, low, close[, volume].
    """
    symbol = _check_symbol(symbol)
    data_dir = Path(data_dir)
    existing = _find_symbol(symbol, data_dir) if data_dir.is_dir() else None
    if existing is not None and not overwrite:
        raise DataError(f"{existing} already exists; pass --force to replace it")
    frame, report = _validate(raw, source=source, max_gap=max_gap, fill=False, symbol=symbol)
    for line in report.warnings():
        logger.warning("%s: %s", source, line)
    target = existing if existing is not None else data_dir / f"{symbol}.parquet"
    out = frame.reset_index()
    write_parquet_atomic(target, out)
    logger.info("wrote %s (%d rows, %s .. %s)", target, len(out), _fmt(frame.index[0]), _fmt(frame.index[-1]))
    return target


# --------------------------------------------------------------------------------------------------
# Files and symbols


def _parquet_files(data_dir: Path) -> list[Path]:
    return sorted(
        (
            p
            for p in data_dir.iterdir()
            if p.suffix.lower() in PARQUET_SUFFIXES and not p.name.startswith(".")
        ),
        key=lambda p: p.stem.upper(),
    )


def _find_symbol(symbol: str, data_dir: Path) -> Path | None:
    if not data_dir.is_dir():
        return None
    hits = [p for p in _parquet_files(data_dir) if p.stem.upper() == symbol.upper()]
    if len(hits) > 1:
        raise DataError(
            f"symbol {symbol!r} matches several files in {data_dir}/ ({', '.join(p.name for p in hits)}); "
            "keep one or pass the path"
        )
    return hits[0] if hits else None


def _available(data_dir: Path) -> str:
    if not data_dir.is_dir():
        return f"{data_dir} does not exist"
    names = [p.stem.upper() for p in _parquet_files(data_dir)]
    return "available: " + ", ".join(names) if names else "it holds no .parquet files"


def _check_symbol(symbol: str) -> str:
    if not _SYMBOL_RE.match(symbol or ""):
        raise ConfigError(f"--symbol {symbol!r}: use letters, digits and . _ - ^ = (e.g. ETHUSD)")
    return symbol.upper()


def _check_file(path: Path, kind: str) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a {kind} file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes); re-export or re-import it")


def _check_parquet_path(path: Path) -> Path:
    _check_file(path, ".parquet")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        raise DataError(
            f"{path}: is a {suffix} file, expected .parquet; convert it first with "
            f"`chronobt data import {path} --symbol {path.stem.upper()}`"
        )
    if suffix not in PARQUET_SUFFIXES:
        raise DataError(
            f"{path}: unsupported extension {suffix or '(none)'!r}, expected a .parquet file "
            "(CSV exports go through `chronobt data import`)"
        )
    return path


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        reason = " ".join(str(exc).split())[:200]
        raise DataError(
            f"{path}: cannot read parquet ({type(exc).__name__}: {reason}); the file is corrupt or not "
            "parquet: re-create it with `chronobt data import`"
        ) from None


def _read_csv(path: Path) -> pd.DataFrame:
    _check_file(path, ".csv")
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith(CSV_SUFFIXES):
        raise DataError(f"{path}: expected a .csv export (got {path.suffix!r}); parquet files load directly")
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            head = [handle.readline() for _ in range(30)]
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise DataError(
            f"{path}: not a readable text CSV ({type(exc).__name__}); export it as UTF-8 CSV"
        ) from None
    lines = [ln.rstrip("\r\n") for ln in head if ln.strip()]
    if not lines:
        raise DataError(f"{path}: no rows (only blank lines); re-export it")
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:10]), delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    header_row = None
    for i, line in enumerate(h.rstrip("\r\n") for h in head):
        fields = next(csv.reader([line], delimiter=delimiter), [])
        if _map_prices(fields, strict=False).keys() >= {"open", "close"}:
            header_row = i
            break
    if header_row is None:
        fields = next(csv.reader([lines[0]], delimiter=delimiter), [])
        raise DataError(
            f"{path}: cannot find a header with open/high/low/close columns in the first 30 lines "
            f"(found columns: {', '.join(map(repr, fields))}); rename the columns to timestamp, open, high, "
            "low, close[, volume]"
        )
    try:
        return pd.read_csv(
            path, skiprows=header_row, sep=delimiter, skipinitialspace=True, encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: cannot parse CSV ({reason}); fix the malformed lines") from None


# --------------------------------------------------------------------------------------------------
# Column mapping


def _norm(name: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def _map_prices(columns: Sequence[object], *, strict: bool, source: str = "") -> dict[str, Any]:
    """Map each target to one source column: exact alias first, then a prefixed/suffixed name."""
    found: dict[str, Any] = {}
    for target in TARGETS:
        exact = [c for c in columns if _norm(c) in _PRICE_ALIASES[target]]
        if not exact:
            exact = [
                c
                for c in columns
                if (toks := _norm(c).split("_"))
                and target in (toks[0], toks[-1])
                and not _NOT_PRICE_TOKENS & set(toks)
            ]
        if len(exact) == 1:
            found[target] = exact[0]
        elif len(exact) > 1 and strict:
            raise DataError(
                f"{source}: column {target!r} is ambiguous ({', '.join(map(repr, map(str, exact)))}); "
                "keep one column per price"
            )
    if strict:
        missing = [t for t in TARGETS if t not in found]
        if missing:
            raise DataError(
                f"{source}: missing required column(s) {', '.join(map(repr, missing))} (names are matched "
                f"case-insensitively; found columns: {', '.join(map(repr, map(str, columns)))}); rename them"
            )
    return found


def _pick_volume(columns: Sequence[object], symbol: str | None) -> Any | None:
    """The base-asset volume column among several (``Volume ETH`` over ``Volume USDT``), or None."""
    base = None
    if symbol:
        base = re.sub(r"(USDT|USDC|BUSD|USD|EUR|GBP|JPY)$", "", symbol.upper()).lower() or None
    candidates = []
    for c in columns:
        n = _norm(c)
        toks = n.split("_")
        if not any(t.startswith("volume") or t == "vol" for t in toks):
            continue
        if any(bad in n for bad in _NOT_VOLUME_TOKENS):
            continue
        rest = {t for t in toks if t not in ("volume", "vol")}
        rest |= {t[len("volume") :] for t in toks if t.startswith("volume") and t != "volume"}
        rest -= {t for t in toks if t.startswith("volume") and t != "volume"}
        if "from" in rest or "base" in rest or (base is not None and base in rest):
            score = 0  # named base asset
        elif rest & _QUOTE_TOKENS:
            score = 3  # quote currency
        elif not rest:
            score = 1  # plain "volume"
        else:
            score = 2  # another currency name: most likely the base
        candidates.append((score if score != 2 or base is not None else 0, c))
    if not candidates:
        return None
    candidates.sort(key=lambda sc: sc[0])
    return candidates[0][1]


def _time_values(raw: pd.DataFrame, source: str) -> tuple[pd.Series, str]:
    """The timestamp values (from a DatetimeIndex or a matching column) and their column name."""
    if isinstance(raw.index, pd.DatetimeIndex):
        return pd.Series(raw.index, dtype=raw.index.dtype), str(raw.index.name or "index")
    frame = raw.reset_index() if raw.index.name is not None else raw
    by_norm: dict[str, Any] = {}
    for c in frame.columns:
        by_norm.setdefault(_norm(c), c)
    for name in _TIME_NAMES:
        if name in by_norm:
            return frame[by_norm[name]].reset_index(drop=True), str(by_norm[name])
    for c in frame.columns:  # "Date (UTC)", "open_time_ms", ...
        toks = _norm(c).split("_")
        if toks[0] in ("date", "time", "timestamp", "datetime", "unix"):
            return frame[c].reset_index(drop=True), str(c)
    raise DataError(
        f"{source}: no timestamp column (looked for Date, datetime, timestamp, time, unix, open_time; "
        f"found columns: {', '.join(map(repr, map(str, frame.columns)))}); add or rename one"
    )


# --------------------------------------------------------------------------------------------------
# Timestamps


def _parse_timestamps(values: pd.Series, source: str, column: str) -> pd.DatetimeIndex:
    """Parse a timestamp column to a UTC DatetimeIndex (naive taken as UTC; unix s/ms/us/ns detected)."""
    where = f"{source}: column {column!r}"
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{where} has {int(missing.sum())} missing timestamps "
            f"(first at data row {int(missing.argmax())}); drop those rows"
        )
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        return _to_utc_index(pd.DatetimeIndex(values))
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"{where} holds booleans, not timestamps; point it at the time column")
    if pd.api.types.is_numeric_dtype(values.dtype):
        return _parse_epoch(values.to_numpy(dtype=np.float64), where)
    if not all(isinstance(v, str) for v in values.iloc[:1000]):
        return _parse_objects(values, where)
    text = values.astype(str).str.strip().reset_index(drop=True)
    if text.str.fullmatch(r"[+-]?\d+(?:\.\d*)?").all():  # unix time written as text
        return _parse_epoch(text.astype(np.float64).to_numpy(), where)
    tails = text.str.slice(-7)  # a zone suffix is short; test each distinct ending once
    aware = tails.isin([t for t in pd.unique(tails) if _TZ_SUFFIX.search(t)]).to_numpy()
    if aware.any() and not aware.all():
        naive_at, aware_at = int((~aware).argmax()), int(aware.argmax())
        raise DataError(
            f"{where} mixes time zones: row {aware_at} {text.iloc[aware_at]!r} has one, row {naive_at} "
            f"{text.iloc[naive_at]!r} has none; write every timestamp in one zone (e.g. UTC)"
        )
    fmt = guess_datetime_format(text.iloc[0])
    formats = ([fmt] if fmt else []) + [f for f in _EXTRA_TIME_FORMATS if f != fmt]
    best: pd.Series | None = None
    for f in formats:
        parsed = _try_format(text, f, where)
        if parsed is not None and parsed.notna().all():
            return _to_utc_index(pd.DatetimeIndex(parsed))
        if best is None and parsed is not None and parsed.notna().any():
            best = parsed
    # Report the first row that does not follow the first row's format.
    bad = best.isna().to_numpy() if best is not None else np.ones(len(text), dtype=bool)
    first = int(bad.argmax())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = pd.to_datetime(text[bad], format="mixed", errors="coerce")
    if best is None and alone.notna().all():
        return _to_utc_index(pd.DatetimeIndex(alone))  # no single format, but every row parses alone
    if best is not None and alone.notna().all():
        raise DataError(
            f"{where} mixes date formats: row 0 {text.iloc[0]!r} vs row {first} {text.iloc[first]!r} "
            f"({int(bad.sum())} rows differ); write every timestamp in one format (ISO 8601)"
        )
    unparseable = alone.isna().to_numpy()
    first_bad = int(np.flatnonzero(bad)[unparseable.argmax()]) if unparseable.any() else first
    raise DataError(
        f"{where} has {int(unparseable.sum()) or int(bad.sum())} unparseable timestamps (first at data row "
        f"{first_bad}: {text.iloc[first_bad]!r}); use ISO 8601 like 2021-05-19 12:00 or unix seconds"
    )


def _try_format(text: pd.Series, fmt: str, where: str) -> pd.Series | None:
    try:
        return pd.to_datetime(text, format=fmt, errors="coerce")
    except ValueError as exc:
        if "timezone" in str(exc).lower() or "tz" in str(exc).lower():
            raise DataError(
                f"{where} mixes UTC offsets ({text.iloc[0]!r} ...); convert every timestamp to one zone (UTC)"
            ) from None
        return None


def _parse_objects(values: pd.Series, where: str) -> pd.DatetimeIndex:
    """datetime/Timestamp objects (possibly with tzinfo) in an object column."""
    tzs = {str(getattr(v, "tzinfo", None)) for v in values.iloc[:100_000]}
    if len(tzs) > 1:
        raise DataError(
            f"{where} mixes time zones ({', '.join(sorted(tzs))}); convert every timestamp to one zone (UTC)"
        )
    try:
        return _to_utc_index(pd.DatetimeIndex(pd.to_datetime(values)))
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where} is not parseable as timestamps ({exc}); use ISO 8601 strings") from None


def _parse_epoch(numbers: np.ndarray, where: str) -> pd.DatetimeIndex:
    """Unix time, unit chosen per value by magnitude; a column mixing units is an error."""
    if not np.isfinite(numbers).all():
        first = int((~np.isfinite(numbers)).argmax())
        raise DataError(f"{where} has non-finite unix times (first at data row {first}); drop those rows")
    mag = np.abs(numbers)
    if mag.max() < 1e8:
        raise DataError(
            f"{where} holds numbers up to {mag.max():g}, too small for unix time (seconds since 1970 are "
            "> 1e8 after 1973); point it at a real timestamp column"
        )
    units = np.select([mag < 1e11, mag < 1e14, mag < 1e17], [0, 1, 2], default=3)
    names = np.array(["s", "ms", "us", "ns"])
    if len(np.unique(units)) > 1:
        odd = int((units != units[0]).argmax())
        raise DataError(
            f"{where} mixes unix units: row 0 looks like {names[units[0]]}, "
            f"row {odd} like {names[units[odd]]}; use one unit"
        )
    unit = str(names[units[0]])
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    ns = np.round(numbers * scale).astype(np.int64)
    return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))


def _to_utc_index(idx: pd.DatetimeIndex) -> pd.DatetimeIndex:
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return idx.as_unit("ns")


def _as_utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _fmt(ts: pd.Timestamp | None) -> str:
    if ts is None:
        return "-"
    return ts.strftime("%Y-%m-%d %H:%M") if (ts.second == 0 and ts.microsecond == 0) else ts.isoformat()


# --------------------------------------------------------------------------------------------------
# Validation, repairs and calendars


def _validate(
    raw: pd.DataFrame, *, source: str, max_gap: int | None, fill: bool, symbol: str | None = None
) -> tuple[pd.DataFrame, DataReport]:
    """Map columns, parse timestamps, check prices, repair order/duplicates, infer calendar, fill gaps."""
    if len(raw) == 0:
        raise DataError(f"{source}: has no rows; export some bars")
    columns = _map_prices(list(raw.columns), strict=True, source=source)
    times, time_col = _time_values(raw, source)
    index = _parse_timestamps(times, source, time_col)
    data: dict[str, np.ndarray] = {}
    for target in TARGETS:
        data[target] = _check_prices(raw[columns[target]], index, source, str(columns[target]))
    volume_missing = 0
    vol_col = _pick_volume([c for c in raw.columns if c not in columns.values()], symbol)
    if vol_col is not None:
        columns["volume"] = vol_col
        vol = pd.to_numeric(raw[vol_col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(vol)
        volume_missing = int(bad.sum())
        data["volume"] = np.where(bad, 0.0, vol)
    frame = pd.DataFrame(data, index=pd.DatetimeIndex(index, name="timestamp"))
    rows_read = len(frame)

    # Order
    ns = pd.DatetimeIndex(frame.index).asi8
    descents = int((np.diff(ns) < 0).sum())
    newest_first = bool(len(ns) > 1 and descents > 0 and np.all(np.diff(ns) <= 0))
    if descents:
        frame = frame.iloc[np.argsort(ns, kind="stable")]

    # Duplicates: exact copies collapse; conflicting rows keep the last in file order.
    exact = conflicting = np.zeros(len(frame), dtype=bool)
    dup_exact_first = dup_conf_first = None
    if len(frame) > 1 and (np.diff(pd.DatetimeIndex(frame.index).asi8) == 0).any():  # sorted: repeats adjoin
        exact = frame.reset_index().duplicated(keep="last").to_numpy()
        dup_exact_first = frame.index[exact].min() if exact.any() else None
        frame = frame[~exact]
        conflicting = frame.index.duplicated(keep="last")
        dup_conf_first = frame.index[conflicting].min() if conflicting.any() else None
        frame = frame[~conflicting]

    if len(frame) < MIN_ROWS:
        raise DataError(
            f"{source}: only {len(frame)} distinct timestamp(s) ({_fmt(frame.index[0])}); at least "
            f"{MIN_ROWS} bars are needed to infer the bar frequency (far more for a backtest)"
        )

    o, h, lo, c = (frame[t].to_numpy() for t in TARGETS)
    inconsistent = np.asarray((h < np.maximum(o, c)) | (lo > np.minimum(o, c)) | (h < lo))
    non_positive = np.asarray((np.stack([o, h, lo, c]) <= 0).any(axis=0))

    freq, calendar, step = _infer_calendar(pd.DatetimeIndex(frame.index))
    gaps = missing = longest = 0
    longest_after = None
    if calendar == "continuous" and step is not None:
        frame, gaps, missing, longest, longest_after = _fill_gaps(frame, step, freq, source, max_gap, fill)

    report = DataReport(
        source=source,
        rows_read=rows_read,
        rows=len(frame),
        newest_first=newest_first,
        unsorted_rows=descents,
        duplicate_exact=int(exact.sum()),
        duplicate_exact_first=dup_exact_first,
        duplicate_conflicting=int(conflicting.sum()),
        duplicate_conflicting_first=dup_conf_first,
        ohlc_inconsistent=int(inconsistent.sum()),
        ohlc_inconsistent_first=_first(frame.index, inconsistent),
        non_positive=int(non_positive.sum()),
        non_positive_first=_first(frame.index, non_positive),
        volume_missing=volume_missing,
        gaps=gaps,
        missing_bars=missing,
        filled_bars=missing if fill else 0,
        longest_gap=longest,
        longest_gap_after=longest_after,
        freq=freq,
        calendar=calendar,
        columns={k: str(v) for k, v in columns.items()},
    )
    return frame, report


def _first(index: pd.Index, mask: np.ndarray) -> pd.Timestamp | None:
    return index[int(mask.argmax())] if mask.any() else None


def _check_prices(col: pd.Series, index: pd.DatetimeIndex, source: str, name: str) -> np.ndarray:
    """Float64 prices ``[time]``; non-numeric, missing/non-finite or absurd values are a DataError."""
    where = f"{source}: column {name!r}"
    numeric = pd.to_numeric(col, errors="coerce") if not pd.api.types.is_numeric_dtype(col.dtype) else col
    if pd.api.types.is_bool_dtype(numeric.dtype):
        raise DataError(f"{where} holds booleans, not prices; point it at the price column")
    values = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    non_numeric = np.zeros(len(values), dtype=bool)
    if not pd.api.types.is_numeric_dtype(col.dtype):
        text = col.astype(str).str.strip()
        non_numeric = np.isnan(values) & col.notna().to_numpy() & text.ne("").to_numpy()
        non_numeric &= ~text.str.lower().isin(["nan", "none", "null", "na", "<na>"]).to_numpy()
    problems = [
        (non_numeric, "non-numeric", "make them plain numbers"),
        (~np.isfinite(values), "missing or non-finite (NaN/inf)", "drop or fill those rows"),
        (np.abs(np.nan_to_num(values)) > MAX_ABS_PRICE, f"absurd (|value| > {MAX_ABS_PRICE:g})", "fix them"),
    ]
    for mask, what, fix in problems:
        if mask.any():
            i = int(mask.argmax())
            count = int(mask.sum())
            scope = f"all {count}" if count == len(values) else f"{count} of {len(values)}"
            value = col.iloc[i]
            shown = repr(value.item() if isinstance(value, np.generic) else value)
            raise DataError(
                f"{where} has {scope} rows with {what} values (first at {_fmt(index[i])}, data row {i}: "
                f"{shown}); {fix}"
            )
    return values


def _freq_alias(step: pd.Timedelta) -> str:
    if step % _DAY == pd.Timedelta(0):
        days = step // _DAY
        return "D" if days == 1 else f"{days}D"
    return str(to_offset(step).freqstr)


def _freq_step(freq: str) -> pd.Timedelta | None:
    """The fixed length of one bar for tick-like aliases (None for B, M, Q, ... calendar offsets)."""
    if freq == "B":
        return None
    try:
        return pd.Timedelta(to_offset(freq if freq[:1].isdigit() else f"1{freq}"))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None


def _infer_calendar(index: pd.DatetimeIndex) -> tuple[str, Calendar, pd.Timedelta | None]:
    """Bar frequency and calendar from sorted unique timestamps.

    The bar is the most common spacing. Bars up to a day long with (almost) no Saturday bars over at
    least a week are an exchange calendar (daily -> business days "B"); otherwise 24/7 continuous.
    Spacings of four weeks or more use pandas' calendar offsets (month/quarter/year starts or ends).
    """
    diffs = np.diff(index.asi8)
    steps, counts = np.unique(diffs, return_counts=True)
    step = pd.Timedelta(int(steps[counts.argmax()]), unit="ns")
    if step >= pd.Timedelta(days=28):
        inferred = pd.infer_freq(index) if len(index) >= 3 else None
        return (inferred, "continuous", None) if inferred else (_freq_alias(step), "exchange", None)
    span = index[-1] - index[0]
    saturday_share = float(np.mean(index.day_of_week == 5))
    if step <= _DAY and span >= pd.Timedelta(days=7) and saturday_share < 0.02:
        return ("B" if step == _DAY else _freq_alias(step)), "exchange", None if step == _DAY else step
    return _freq_alias(step), "continuous", step


def _fill_gaps(
    frame: pd.DataFrame, step: pd.Timedelta, freq: str, source: str, max_gap: int | None, fill: bool
) -> tuple[pd.DataFrame, int, int, int, pd.Timestamp | None]:
    """Put a 24/7 series on its regular grid: missing bars become flat bars at the previous close."""
    ns = pd.DatetimeIndex(frame.index).asi8
    off_grid = (ns - ns[0]) % step.value != 0
    if off_grid.any():
        i = int(off_grid.argmax())
        raise DataError(
            f"{source}: {int(off_grid.sum())} timestamps are off the regular {freq} grid starting at "
            f"{_fmt(frame.index[0])} (first at {_fmt(frame.index[i])}); resample the file to regular bars"
        )
    missing = np.diff(ns) // step.value - 1
    gap_at = np.flatnonzero(missing > 0)
    if len(gap_at) == 0:
        return frame, 0, 0, 0, None
    longest_i = int(gap_at[missing[gap_at].argmax()])
    longest = int(missing[longest_i])
    after = frame.index[longest_i]
    total = int(missing.sum())
    if max_gap is not None and longest > max_gap:
        raise DataError(
            f"{source}: a gap of {longest} missing {freq} bars after {_fmt(after)} exceeds --max-gap "
            f"{max_gap} ({len(gap_at)} gaps, {total} missing bars in all); raise --max-gap or cut the file"
        )
    if not fill:
        return frame, len(gap_at), total, longest, after
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=step, name="timestamp")
    out = frame.reindex(grid)
    out["close"] = out["close"].ffill()
    for col in ("open", "high", "low"):
        out[col] = out[col].fillna(out["close"])
    if "volume" in out:
        out["volume"] = out["volume"].fillna(0.0)
    return out, len(gap_at), total, longest, after
