"""Which columns hold the prices, the volume and the time, and parsing the timestamps."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from chronobt.data.frequency import to_utc_index
from chronobt.data.ohlc import TARGETS
from chronobt.errors import DataError

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


#: ``DataFrame.attrs`` key under which :func:`~chronobt.data.files.read_csv` records the file line
#: (1-based, the header being line 1 when there is no banner) of the first data row.
FIRST_LINE = "chronobt_first_line"


def row_at(i: int, first_line: int | None) -> str:
    """Where data row ``i`` (0-based) is: ``line N`` of a CSV file, else ``data row i`` of a table."""
    return f"line {first_line + i}" if first_line is not None else f"data row {i}"


def rows_at(rows: np.ndarray, first_line: int | None, *, most: int = 5) -> str:
    """Several rows as :func:`row_at` would name them: ``lines 5, 9`` or ``data rows 3, 7`` (then ...)."""
    offset = first_line if first_line is not None else 0
    shown = ", ".join(str(int(r) + offset) for r in rows[:most]) + (" ..." if len(rows) > most else "")
    return f"{'lines' if first_line is not None else 'data rows'} {shown}"


def shown(value: object) -> str:
    """A cell as a user wrote it: ``8294.83``, ``'abc'``, ``2300-01-01 00:00:00+00:00`` (numpy scalars as
    plain Python values, times as ISO text)."""
    if isinstance(value, pd.Timestamp | np.datetime64 | dt.datetime):
        return str(pd.Timestamp(value))
    return repr(value.item() if isinstance(value, np.generic) else value)


def _norm(name: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def map_prices(columns: Sequence[object], *, strict: bool, source: str = "") -> dict[str, Any]:
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


def pick_volume(columns: Sequence[object], symbol: str | None) -> Any | None:
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


def time_values(raw: pd.DataFrame, source: str) -> tuple[pd.Series, str]:
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


def parse_timestamps(
    values: pd.Series, source: str, column: str, *, tz: str | None = None, first_line: int | None = None
) -> tuple[pd.DatetimeIndex, bool]:
    """Parse a timestamp column to a UTC DatetimeIndex ``[time]`` in file order, and whether it was naive.

    Unix times (s/ms/us/ns, chosen per row by magnitude) are UTC. Timestamps without a zone are local
    times in ``tz`` when given (a DST-ambiguous or nonexistent wall time is a DataError naming the row),
    else taken as UTC (the caller warns). Timestamps with a zone are converted to UTC; ``tz`` must then
    agree with their offsets (else a DataError: drop ``--tz``). Times outside what a nanosecond
    timestamp holds (before 1677-09-22, after 2262-04-11) are a DataError naming the row.
    ``first_line``: the file line of the first row (CSV), so errors name lines; else data rows.
    """
    where = f"{source}: column {column!r}"
    parsed = _parse_any(values, where, first_line)
    _check_range(parsed, where, values, first_line)
    naive = parsed.tz is None
    try:
        if naive and tz is None:
            return to_utc_index(parsed), True
        if naive and tz is not None:
            return _localize(parsed, tz, where, values, first_line), False
        if tz is not None:
            _check_zone_agrees(parsed, tz, where, values, first_line)
        return to_utc_index(parsed), False
    except pd.errors.OutOfBoundsDatetime:  # in range as written, out of it once converted to UTC
        raise DataError(f"{where}: timestamps {_RANGE} once converted to UTC; {_RANGE_FIX}") from None


_RANGE = "outside 1677-09-22 .. 2262-04-11 (what a nanosecond timestamp holds)"


_RANGE_FIX = "fix or drop those rows (a wrong unit or a corrupt value)"


def _check_range(parsed: pd.DatetimeIndex, where: str, values: pd.Series, first_line: int | None) -> None:
    """A DataError naming the first timestamp a nanosecond timestamp cannot hold."""
    utc = parsed.tz_convert(None) if parsed.tz is not None else parsed
    out = np.asarray((utc < pd.Timestamp.min) | (utc > pd.Timestamp.max))
    if out.any():
        i = int(out.argmax())
        raise DataError(
            f"{where} has {int(out.sum())} timestamp(s) {_RANGE} (first at {row_at(i, first_line)}: "
            f"{shown(values.iloc[i])}); {_RANGE_FIX}"
        )


def _zone(tz: str) -> Any:
    try:
        return pd.Timestamp("2000-01-01", tz=tz).tz
    except Exception:  # pytz/zoneinfo raise different types for unknown zones
        raise DataError(
            f"--tz {tz!r}: unknown time zone; use an IANA name like America/New_York or Europe/London"
        ) from None


def _localize(
    parsed: pd.DatetimeIndex, tz: str, where: str, values: pd.Series, first_line: int | None
) -> pd.DatetimeIndex:
    zone = _zone(tz)
    local = parsed.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    bad = np.asarray(local.isna())
    if bad.any():
        i = int(bad.argmax())
        exists = parsed[i : i + 1].tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")
        why = "is ambiguous (it occurs twice when DST ends)" if exists.isna().any() else "does not exist"
        raise DataError(
            f"{where}: local time {shown(values.iloc[i])} at {row_at(i, first_line)} {why} in {tz} "
            f"({int(bad.sum())} such "
            "rows); export the file in UTC or with UTC offsets"
        )
    return to_utc_index(local)


def _check_zone_agrees(
    parsed: pd.DatetimeIndex, tz: str, where: str, values: pd.Series, first_line: int | None
) -> None:
    wall = parsed.tz_localize(None)
    in_tz = parsed.tz_convert(_zone(tz)).tz_localize(None)
    differ = np.asarray(wall != in_tz)
    if differ.any():
        i = int(differ.argmax())
        raise DataError(
            f"{where}: timestamps already carry a zone ({shown(values.iloc[i])} at {row_at(i, first_line)} "
            f"is not {tz} "
            "time); drop --tz (zoned timestamps are converted to UTC as they are)"
        )


def _parse_any(values: pd.Series, where: str, first_line: int | None) -> pd.DatetimeIndex:
    """The column as a DatetimeIndex: naive or zoned as written, unix times as UTC."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{where} has {int(missing.sum())} missing timestamps "
            f"(first at {row_at(int(missing.argmax()), first_line)}); drop those rows"
        )
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        return pd.DatetimeIndex(values)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise DataError(f"{where} holds booleans, not timestamps; point it at the time column")
    if pd.api.types.is_numeric_dtype(values.dtype):
        return _parse_epoch(values.to_numpy(dtype=np.float64), where, first_line)
    if not all(isinstance(v, str) for v in values.iloc[:1000]):
        return _parse_objects(values, where)
    text = values.astype(str).str.strip().reset_index(drop=True)
    if text.str.fullmatch(r"[+-]?\d+(?:\.\d*)?").all():  # unix time written as text
        return _parse_epoch(text.astype(np.float64).to_numpy(), where, first_line)
    tails = text.str.slice(-7)  # a zone suffix is short; test each distinct ending once
    aware = tails.isin([t for t in pd.unique(tails) if _TZ_SUFFIX.search(t)]).to_numpy()
    if aware.any() and not aware.all():
        _raise_unparseable(text, ~aware, where, first_line)  # a lone 'notadate' is not a zone mix
        naive_at, aware_at = int((~aware).argmax()), int(aware.argmax())
        raise DataError(
            f"{where} mixes time zones: {row_at(aware_at, first_line)} {text.iloc[aware_at]!r} has one, "
            f"{row_at(naive_at, first_line)} {text.iloc[naive_at]!r} has none; write every timestamp in one "
            "zone (e.g. UTC)"
        )
    fmt = guess_datetime_format(text.iloc[0])
    formats = ([fmt] if fmt else []) + [f for f in _EXTRA_TIME_FORMATS if f != fmt]
    best: pd.Series | None = None
    for f in formats:
        parsed = _try_format(text, f, where)
        if parsed is not None and parsed.notna().all():
            return pd.DatetimeIndex(parsed)
        if best is None and parsed is not None and parsed.notna().any():
            best = parsed
    # Report the first row that does not follow the first row's format.
    bad = best.isna().to_numpy() if best is not None else np.ones(len(text), dtype=bool)
    first = int(bad.argmax())
    alone = _raise_unparseable(text, bad, where, first_line)
    if best is None:
        return pd.DatetimeIndex(alone)  # no single format, but every row parses alone
    raise DataError(
        f"{where} mixes date formats: {row_at(0, first_line)} {text.iloc[0]!r} vs "
        f"{row_at(first, first_line)} {text.iloc[first]!r} ({int(bad.sum())} rows differ); write every "
        "timestamp in one format (ISO 8601)"
    )


def _raise_unparseable(text: pd.Series, rows: np.ndarray, where: str, first_line: int | None) -> pd.Series:
    """Parse ``text[rows]`` each alone; a DataError naming the first that is no date at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = pd.to_datetime(text[rows], format="mixed", errors="coerce")
    unparseable = alone.isna().to_numpy()
    if unparseable.any():
        i = int(np.flatnonzero(rows)[unparseable.argmax()])
        raise DataError(
            f"{where} has {int(unparseable.sum())} unparseable timestamps (first at {row_at(i, first_line)}: "
            f"{text.iloc[i]!r}); use ISO 8601 like 2021-05-19 12:00 or unix seconds"
        )
    return alone


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
        return pd.DatetimeIndex(pd.to_datetime(values))
    except (ValueError, TypeError) as exc:
        raise DataError(f"{where} is not parseable as timestamps ({exc}); use ISO 8601 strings") from None


def epoch_units(numbers: np.ndarray) -> np.ndarray:
    """Per value, the unix unit its magnitude implies: 0 s, 1 ms, 2 us, 3 ns ``[rows]``.

    Seconds are below 1e11 (year 5138), milliseconds below 1e14, microseconds below 1e17.
    """
    mag = np.abs(numbers)
    return np.select([mag < 1e11, mag < 1e14, mag < 1e17], [0, 1, 2], default=3)


def _parse_epoch(numbers: np.ndarray, where: str, first_line: int | None) -> pd.DatetimeIndex:
    """Unix time, the unit chosen per row by magnitude (exports switch from ms to s mid-file)."""
    if not np.isfinite(numbers).all():
        first = int((~np.isfinite(numbers)).argmax())
        raise DataError(
            f"{where} has non-finite unix times (first at {row_at(first, first_line)}); drop those rows"
        )
    mag = np.abs(numbers)
    small = mag < 1e8
    if small.any():
        i = int(small.argmax())
        raise DataError(
            f"{where} holds numbers as small as {mag[i]:g} ({row_at(i, first_line)}), too small for unix "
            "time (seconds since 1970 are > 1e8 after 1973); point it at a real timestamp column"
        )
    scale = np.array([10**9, 10**6, 10**3, 1], dtype=np.float64)[epoch_units(numbers)]
    exact = np.round(numbers * scale)
    out = (exact < pd.Timestamp.min.value) | (exact > pd.Timestamp.max.value)
    if out.any():
        i = int(out.argmax())
        raise DataError(
            f"{where} has {int(out.sum())} unix times {_RANGE} (first at {row_at(i, first_line)}: "
            f"{int(numbers[i]) if float(numbers[i]).is_integer() else float(numbers[i])!r}); {_RANGE_FIX}"
        )
    ns = exact.astype(np.int64)
    return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))


def second_time_column(frame: pd.DataFrame, used: str) -> Any | None:
    """Another column holding date/time text beside the (unix) time column ``used``, or None."""
    for c in frame.columns:
        if str(c) == used or pd.api.types.is_numeric_dtype(frame[c].dtype):
            continue
        toks = _norm(c).split("_")
        if _norm(c) in _TIME_NAMES or toks[0] in ("date", "time", "datetime"):
            return c
    return None
