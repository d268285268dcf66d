"""Which columns hold the prices, the volume and the time, and parsing the timestamps."""

from __future__ import annotations

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


def parse_timestamps(values: pd.Series, source: str, column: str) -> pd.DatetimeIndex:
    """Parse a timestamp column to a UTC DatetimeIndex (naive taken as UTC; unix s/ms/us/ns detected)."""
    where = f"{source}: column {column!r}"
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{where} has {int(missing.sum())} missing timestamps "
            f"(first at data row {int(missing.argmax())}); drop those rows"
        )
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        return to_utc_index(pd.DatetimeIndex(values))
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
            return to_utc_index(pd.DatetimeIndex(parsed))
        if best is None and parsed is not None and parsed.notna().any():
            best = parsed
    # Report the first row that does not follow the first row's format.
    bad = best.isna().to_numpy() if best is not None else np.ones(len(text), dtype=bool)
    first = int(bad.argmax())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = pd.to_datetime(text[bad], format="mixed", errors="coerce")
    if best is None and alone.notna().all():
        return to_utc_index(pd.DatetimeIndex(alone))  # no single format, but every row parses alone
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
        return to_utc_index(pd.DatetimeIndex(pd.to_datetime(values)))
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
