"""Exchange trading calendars (``exchange_calendars``): inference, session bar patterns, future bars.

A series on a trading calendar (say ``XNYS``) trades only in that exchange's sessions: weekends,
holidays and early closes included. Intraday bars are learned and placed in the exchange's local time,
by their offset from each session's open (pre-market and regular bars) or close (after-market bars), per
weekday and summer/winter time, with early closes and holiday eves apart (see
:mod:`chronobt.data.exchange_hours`), so the UTC
clock moves with daylight saving time and a half-hour open (13:30 or 14:30 UTC for New York) stays a
half-hour open.

Inference is deliberately simple: only ``XNYS`` is tried, and only for series the frequency inference
already calls ``exchange`` (no weekend bars). A daily series is XNYS when (almost) every bar is an XNYS
session and most XNYS weekday holidays in its span are absent. An intraday series is XNYS when (almost)
every bar falls on an XNYS session date (New York time) within 6 hours before its open to 5 hours after
its close (so pre- and post-market bars are fine) and most holidays in its span hold no bars. Anything
else (FX, 24/5 futures, other exchanges) gets no trading calendar unless one is named.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from chronobt.data import exchange_hours
from chronobt.errors import ConfigError, DataError

INFERRED = ("XNYS",)  # calendars tried when none is named


RECENT = exchange_hours.RECENT  # the bar pattern is read from this much of the series' end


_MATCH_SHARE = 0.98  # share of bars that must sit in the calendar's sessions


_HOLIDAY_SHARE = 0.8  # share of the calendar's holidays a daily series must skip


NO_CALENDAR = ("none", "")


def check_calendar_name(name: str) -> str:
    """Upper-case ``name`` if ``exchange_calendars`` knows it, else a ConfigError listing examples."""
    import exchange_calendars as xc

    names = {n.upper(): n for n in xc.get_calendar_names(include_aliases=True)}
    if name.upper() not in names:
        raise ConfigError(
            f"--calendar {name!r}: not an exchange calendar (e.g. XNYS, XNAS, XLON, XTKS, 24/5, 24/7; "
            "see exchange_calendars.get_calendar_names()) - or pass 'none' for no holiday calendar"
        )
    return names[name.upper()]


@lru_cache(maxsize=16)
def _calendar(name: str, start_year: int, end_year: int) -> tuple[pd.DataFrame, str]:
    import exchange_calendars as xc

    bound = xc.get_calendar(name).bound_min()  # None: any start
    start = pd.Timestamp(f"{start_year}-01-01")
    start = start if bound is None else max(start, pd.Timestamp(bound).tz_localize(None).normalize())
    try:
        cal = xc.get_calendar(name, start=start, end=pd.Timestamp(f"{end_year}-12-31"))
    except Exception as exc:  # exchange_calendars raises its own types for out-of-bounds dates
        raise ConfigError(f"calendar {name}: no schedule for {start_year}..{end_year} ({exc})") from None
    return cal.schedule.loc[:, ["open", "close"]], str(cal.tz)


def schedule(name: str, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """Sessions (naive date index) with UTC ``open``/``close`` covering ``first``..``last``."""
    sched, _ = _calendar(name, int(first.year) - 1, int(last.year) + 1)
    return sched.loc[(sched.index >= first.tz_localize(None).normalize() - pd.Timedelta(days=7))]


def infer_trading_calendar(index: pd.DatetimeIndex, step: pd.Timedelta | None, freq: str) -> str | None:
    """The exchange calendar the bars follow (``"XNYS"``) or None; ``index`` is sorted UTC."""
    for name in INFERRED:
        try:
            sched = schedule(name, index[0], index[-1])
        except ConfigError:
            continue
        if freq == "B" and _daily_matches(index, sched):
            return name
        if step is not None and step < pd.Timedelta(days=1) and _intraday_matches(name, index, sched):
            return name
    return None


def _skips_holidays(dates: pd.DatetimeIndex, sessions: pd.DatetimeIndex) -> bool:
    """Most weekday non-sessions (holidays) between the first and last date are absent from ``dates``."""
    weekdays = pd.bdate_range(dates[0], dates[-1])
    holidays = weekdays[~weekdays.isin(sessions)]
    return len(holidays) > 0 and float(np.mean(~holidays.isin(dates))) >= _HOLIDAY_SHARE


def _daily_matches(index: pd.DatetimeIndex, sched: pd.DataFrame) -> bool:
    dates = index.tz_convert("UTC").tz_localize(None).normalize()
    sessions = pd.DatetimeIndex(sched.index)
    return bool(np.mean(dates.isin(sessions)) >= _MATCH_SHARE) and _skips_holidays(dates, sessions)


def _ns(times: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def _assign(name: str, index: pd.DatetimeIndex, sched: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """For each bar: its session's position in ``sched`` (by the exchange's local date; -1 when that date
    is no session) and the local dates ``[time]``."""
    _, tz = _calendar(name, int(index[0].year) - 1, int(index[-1].year) + 1)
    local = index.tz_convert(tz).tz_localize(None).normalize().as_unit("ns")
    sessions = pd.DatetimeIndex(sched.index).as_unit("ns")
    pos = sessions.get_indexer(local)
    return pos, local.asi8


def _intraday_matches(name: str, index: pd.DatetimeIndex, sched: pd.DataFrame) -> bool:
    """Bars on session dates, near the session (pre/post-market included) and absent on holidays."""
    pos, local = _assign(name, index, sched)
    on_session = pos >= 0
    if float(np.mean(on_session)) < _MATCH_SHARE:
        return False
    p, ns = pos[on_session], index.asi8[on_session]
    near = (ns >= _ns(sched["open"])[p] - _PRE.value) & (ns <= _ns(sched["close"])[p] + _POST.value)
    if float(np.mean(near)) < _MATCH_SHARE:
        return False
    dates = pd.DatetimeIndex(np.unique(local))
    return _skips_holidays(dates, pd.DatetimeIndex(sched.index)) or bool(np.all(on_session))


_PRE = pd.Timedelta(hours=6)  # pre-market bars start at most this long before the open


_POST = pd.Timedelta(hours=5)  # post-market bars end at most this long after the close


def _table(name: str, first: pd.Timestamp, last: pd.Timestamp) -> tuple[pd.DataFrame, str]:
    """The :func:`~chronobt.data.exchange_hours.session_table` of ``name`` around ``first``..``last``
    (the whole cached schedule, so eves at the edges are known; shared: do not modify)."""
    return _cached_table(name, int(first.year) - 1, int(last.year) + 1)


@lru_cache(maxsize=16)
def _cached_table(name: str, start_year: int, end_year: int) -> tuple[pd.DataFrame, str]:
    sched, tz = _calendar(name, start_year, end_year)
    return exchange_hours.session_table(sched, tz), tz


def learn_hours(name: str, index: pd.DatetimeIndex) -> exchange_hours.HoursPattern:
    """The bar shapes of ``index`` (sorted UTC) per session of ``name``, in the exchange's local time."""
    first = max(index[0], index[-1] - exchange_hours.RARE_SPAN - pd.Timedelta(days=7))
    table, tz = _table(name, first, index[-1])
    return exchange_hours.learn(index[index >= first], table, tz)


def session_pattern(name: str, index: pd.DatetimeIndex) -> dict[str, Any]:
    """The pooled bar shape of the last :data:`RECENT` of ``index`` and the bars per session.

    Returns ``{"pre": [k], "regular": [k], "post": [k], "per_session": float}``: int64 ns local offsets
    of pre-market bars from the open (negative), of regular bars from the open, and of bars at or after
    the close from the close (see :mod:`chronobt.data.exchange_hours`); ``per_session`` is the median
    number of bars per recent session (the file's last, possibly still open, session left out).
    """
    pattern = learn_hours(name, index)
    pooled = pattern.pooled
    return {
        "pre": pooled.pre,
        "regular": pooled.regular,
        "post": pooled.post,
        "per_session": pattern.per_session,
    }


def future_intraday(name: str, index: pd.DatetimeIndex, after: pd.Timestamp, n: int) -> pd.DatetimeIndex:
    """The ``n`` bars after ``after`` in the calendar's coming sessions, on the series' learned shapes.

    Each coming session (holidays skipped) gets the bars of its kind and weekday (see
    :mod:`chronobt.data.exchange_hours`) at local offsets from its open and close: regular bars stop at
    the (early) close, after-market bars follow it, and daylight saving time moves nothing. When
    ``index`` ends inside a session, that session's remaining bars come first, on the shape learned
    from the sessions before it.
    """
    pattern = learn_hours(name, index)
    per = pattern.most_bars()
    if per == 0:
        raise DataError(
            f"no bar of the series' last {RECENT.days // 7} weeks falls on a {name} session; pass "
            "--calendar none (or the exchange the bars follow)"
        )
    found: list[np.ndarray] = []
    total = 0
    horizon_days = 10 + 2 * (n // per + 1)
    start = after
    while total < n:
        end = start + pd.Timedelta(days=horizon_days)
        table, tz = _table(name, start, end)
        day = start.tz_convert(tz).tz_localize(None).normalize() - pd.Timedelta(days=1)
        table = table[(table.index >= day) & (table.index <= end.tz_localize(None))]
        bars = exchange_hours.future_bars(pattern, table, tz)
        bars = bars[bars > after.value]
        bars = bars[~np.isin(bars, np.concatenate([_no_bars(), *found]))]
        _check_progress(found, len(bars), name)
        found.append(bars)
        total += len(bars)
        start = end
    ns = np.sort(np.concatenate(found))[:n]
    return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True), name="timestamp")


def _no_bars() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _check_progress(found: list[Any], added: int, name: str) -> None:
    """Stop when the calendar has no sessions left (past the dates it knows)."""
    if added == 0 and len(found) >= 3 and all(len(f) == 0 for f in found[-3:]):
        raise DataError(f"calendar {name} has no sessions after {len(found)} searches; pass --calendar none")


def future_daily(name: str, index: pd.DatetimeIndex, after: pd.Timestamp, n: int) -> pd.DatetimeIndex:
    """The ``n`` calendar sessions after ``after``'s date, stamped at the series' time of day."""
    time_of_day = index[-1] - index[-1].normalize()
    day = after.tz_convert("UTC").tz_localize(None).normalize()
    found: list[pd.DatetimeIndex] = []
    total = 0
    while total < n:
        end = day + pd.Timedelta(days=2 * n + 10)
        sessions = pd.DatetimeIndex(schedule(name, day, end).index)
        sessions = sessions[(sessions > day) & (sessions <= end)]
        _check_progress(found, len(sessions), name)
        found.append(sessions)
        total += len(sessions)
        day = end
    dates = pd.DatetimeIndex(np.concatenate([f.asi8 for f in found])[:n])
    stamps = dates.tz_localize("UTC") + time_of_day
    return pd.DatetimeIndex(stamps, name="timestamp")
