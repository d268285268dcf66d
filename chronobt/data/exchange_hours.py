"""Exchange hours: the bars a series holds per session, learned in the exchange's local time.

An intraday series on a trading calendar (see :mod:`chronobt.data.sessions`) holds, per session,
pre-market bars before the open, regular bars from the open to the close and after-market bars from the
close on. Each bar is read as a local wall-clock offset: pre-market and regular bars from the session's
open, after-market bars from its close. Offsets in local time do not move when daylight saving time
starts or ends, and after-market offsets from the close end an early-close day's after-market early by
the same amount.

Sessions come in three kinds: ``early`` (the close is earlier than the calendar's usual close),
``eve`` (a full session before a weekday holiday) and ``normal``. Normal sessions are learned per
weekday from the series' last :data:`RECENT`; early closes and holiday eves are rare, so they are
learned from the last :data:`RARE_LAST` of them within :data:`RARE_SPAN` (so a file whose early-close
days lack the last partial regular bar, or whose holiday eves end the after-market early, is followed).
Where the file has none of a kind, an early close follows its weekday's shape with regular bars cut at
the close and after-market bars from the (early) close, and an eve follows its weekday.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

RECENT = pd.Timedelta(weeks=8)  # normal sessions are learned from this much of the series' end

RARE_SPAN = pd.Timedelta(days=730)  # early closes and holiday eves are read from this much of the end

RARE_LAST = 6  # ... at most this many of the latest of each

_SHARE = 0.2  # share of a weekday's recent sessions that must hold an offset

_RARE_SHARE = 0.5  # share of the early closes (holiday eves) read that must hold an offset

_MIN_SESSIONS = 2  # fewer recent normal sessions of a weekday than this: use the pooled shape

_PRE, _REGULAR, _POST = 0, 1, 2

KINDS = ("normal", "early", "eve")


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Shape:
    """The bars of one kind of session, as int64 ns offsets of local wall-clock time.

    Attributes
    ----------
    pre : np.ndarray
        ``[k]`` pre-market bars from the open (negative).
    regular : np.ndarray
        ``[k]`` regular bars from the open (kept only while before the session's close).
    post : np.ndarray
        ``[k]`` after-market bars from the close (zero or positive).
    """

    pre: np.ndarray = field(default_factory=_empty)
    regular: np.ndarray = field(default_factory=_empty)
    post: np.ndarray = field(default_factory=_empty)

    def __len__(self) -> int:
        return len(self.pre) + len(self.regular) + len(self.post)


@dataclass(frozen=True)
class HoursPattern:
    """Learned bar shapes: per weekday (0 = Monday) of normal sessions, pooled, early closes, eves.

    ``per_session`` is the median number of bars per recent session (all kinds).
    """

    pooled: Shape
    weekdays: dict[int, Shape]
    early: Shape | None
    eve: Shape | None
    per_session: float

    def shape(self, weekday: int, kind: str) -> Shape:
        """The shape a session of ``kind`` on ``weekday`` follows (see the module docstring)."""
        if kind == "early" and self.early is not None:
            return self.early
        if kind == "eve" and self.eve is not None:
            return self.eve
        return self.weekdays.get(weekday, self.pooled)


def session_table(sched: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Sessions with local wall-clock ``open``/``close`` (int64 ns), ``weekday`` and ``kind``.

    ``sched``: naive session-date index with UTC ``open``/``close`` (``exchange_calendars``' schedule).
    The schedule's last session is never an eve (the day after it is unknown).
    """
    dates = pd.DatetimeIndex(sched.index).as_unit("ns")
    opens = pd.DatetimeIndex(sched["open"]).tz_convert(tz).tz_localize(None).as_unit("ns")
    closes = pd.DatetimeIndex(sched["close"]).tz_convert(tz).tz_localize(None).as_unit("ns")
    close_time = (closes - closes.normalize()).asi8
    usual = np.unique(close_time, return_counts=True)
    early = close_time < usual[0][np.argmax(usual[1])] if len(close_time) else np.zeros(0, bool)
    next_weekday = dates + pd.offsets.BDay(1)
    eve = ~next_weekday.isin(dates) & (next_weekday <= dates.max()) & ~early
    kind = np.where(early, "early", np.where(eve, "eve", "normal"))
    return pd.DataFrame(
        {"open": opens.asi8, "close": closes.asi8, "weekday": dates.day_of_week, "kind": kind}, index=dates
    )


@dataclass(frozen=True)
class _Bars:
    """The bars of a series on a session table: session position, part (pre/regular/post), offset."""

    pos: np.ndarray
    part: np.ndarray
    offset: np.ndarray

    @classmethod
    def of(cls, index: pd.DatetimeIndex, table: pd.DataFrame, tz: str) -> _Bars:
        local = index.tz_convert(tz).tz_localize(None).as_unit("ns")
        pos = pd.DatetimeIndex(table.index).get_indexer(local.normalize())
        keep = pos >= 0
        pos, ns = pos[keep], local.asi8[keep]
        opens, closes = table["open"].to_numpy()[pos], table["close"].to_numpy()[pos]
        part = np.where(ns < opens, _PRE, np.where(ns < closes, _REGULAR, _POST))
        offset = np.where(part == _POST, ns - closes, ns - opens)
        return cls(pos=pos, part=part, offset=offset.astype(np.int64))

    def shape(self, sessions: np.ndarray, share: float) -> Shape:
        """The offsets held by at least ``share`` of ``sessions`` (positions in the table)."""
        rows = np.isin(self.pos, sessions)
        floor = share * max(1, len(sessions))

        def common(part: int) -> np.ndarray:
            values, counts = np.unique(self.offset[rows & (self.part == part)], return_counts=True)
            return values[counts >= floor].astype(np.int64)

        return Shape(pre=common(_PRE), regular=common(_REGULAR), post=common(_POST))


def learn(index: pd.DatetimeIndex, table: pd.DataFrame, tz: str) -> HoursPattern:
    """The :class:`HoursPattern` of the bars ``index`` (sorted UTC) on the session ``table``."""
    bars = _Bars.of(index, table, tz)
    held, per = np.unique(bars.pos, return_counts=True)
    if len(held) == 0:
        return HoursPattern(Shape(), {}, None, None, 1.0)
    dates = pd.DatetimeIndex(table.index)[held]
    kinds = table["kind"].to_numpy()[held]
    weekday = table["weekday"].to_numpy()[held]
    recent = dates > dates[-1] - RECENT
    normal = recent & (kinds == "normal")
    pooled_rows = normal if normal.any() else recent
    pooled = bars.shape(held[pooled_rows], _SHARE)
    weekdays = {
        int(w): bars.shape(held[normal & (weekday == w)], _SHARE)
        for w in np.unique(weekday[normal])
        if np.sum(normal & (weekday == w)) >= _MIN_SESSIONS
    }

    def rare(kind: str) -> Shape | None:
        rows = held[(kinds == kind) & (dates > dates[-1] - RARE_SPAN)][-RARE_LAST:]
        return bars.shape(rows, _RARE_SHARE) if len(rows) else None

    per_session = float(np.median(per[recent]))
    return HoursPattern(pooled, weekdays, rare("early"), rare("eve"), per_session)


def future_bars(pattern: HoursPattern, table: pd.DataFrame, tz: str) -> np.ndarray:
    """Sorted unique UTC int64 ns of the bars ``pattern`` puts in every session of ``table``."""
    found: list[np.ndarray] = []
    opens, closes = table["open"].to_numpy(), table["close"].to_numpy()
    keys = table["weekday"].astype(str) + "/" + table["kind"].astype(str)
    for key in np.unique(keys):
        rows = (keys == key).to_numpy()
        weekday, kind = key.split("/")
        shape = pattern.shape(int(weekday), kind)
        o, c = opens[rows][:, None], closes[rows][:, None]
        regular = o + shape.regular[None, :]
        found += [(o + shape.pre[None, :]).ravel(), regular[regular < c], (c + shape.post[None, :]).ravel()]
    local = pd.DatetimeIndex(np.concatenate([_empty(), *found]).astype("datetime64[ns]"))
    standard = np.zeros(len(local), dtype=bool)  # a wall time DST repeats: the standard-time one
    stamps = local.tz_localize(tz, ambiguous=standard, nonexistent="NaT").dropna()  # DST skips: dropped
    return np.unique(stamps.tz_convert("UTC").as_unit("ns").asi8)
