"""Exchange hours: the bars a series holds per session, learned in the exchange's local time.

An intraday series on a trading calendar (see :mod:`chronobt.data.sessions`) holds, per session,
pre-market bars before the open, regular bars from the open to the close and after-market bars from the
close on. Each bar is read as a local wall-clock offset: pre-market and regular bars from the session's
open, after-market bars from its close. Offsets in local time do not move when daylight saving time
starts or ends, and after-market offsets from the close end an early-close day's after-market early by
the same amount.

Normal sessions are learned per UTC offset of the session (its "regime": summer or winter time) and per
weekday, from the latest :data:`RECENT_SESSIONS` normal sessions of that regime in the file (so a regime
that has just begun is read together with its previous season). A file whose shapes are the
same in summer and winter gets the same bars either way; a file whose extended hours are cut at a UTC
time (so winter evenings hold one bar fewer) gets each regime's own. Early closes (a close earlier than
the calendar's usual one) and holiday eves (a full session before a weekday holiday) are rare, so they are
learned as changes to their normal shape: offsets that the last :data:`RARE_LAST` such days within
:data:`RARE_SPAN` (of the same regime, or of any when the regime has none) mostly lack, or mostly add
(say, no partial bar before an early close, or an after-market that ends early before a holiday). A file
with no such day yet treats one as a normal session (regular bars cut at the early close, after-market
bars from it).

The file's last session teaches no shape, whatever its kind: the file may end inside it (a forecast run
while the session is open), so its missing later bars say nothing. It only fixes where the forecast
starts: the coming bars of that session follow the shape learned from the sessions before it. (A file of
one session is read from that session.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

RECENT = pd.Timedelta(weeks=8)  # bars per session are counted over this much of the series' end

RECENT_SESSIONS = 40  # each regime's normal shapes are learned from its latest this many sessions (8 weeks)

RARE_SPAN = pd.Timedelta(days=730)  # early closes and holiday eves are read from this much of the end

RARE_LAST = 6  # ... at most this many of the latest of each

_SHARE = 0.2  # share of a weekday's sessions that must hold an offset

_RARE_SHARE = 0.5  # share of the early closes (holiday eves) read that must lack (add) an offset

_MIN_SESSIONS = 2  # fewer normal sessions of a weekday than this: use the regime's pooled shape

_PRE, _REGULAR, _POST = 0, 1, 2

RARE_KINDS = ("early", "eve")

Key = tuple[int, int]  # (part, offset ns)


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

    def keys(self, regular_before: int | None = None) -> set[Key]:
        """``{(part, offset)}``; regular offsets only below ``regular_before`` when given."""
        regular = self.regular if regular_before is None else self.regular[self.regular < regular_before]
        parts = ((_PRE, self.pre), (_REGULAR, regular), (_POST, self.post))
        return {(part, int(o)) for part, offsets in parts for o in offsets}

    @classmethod
    def of_keys(cls, keys: set[Key]) -> Shape:
        def part(p: int) -> np.ndarray:
            return np.array(sorted(o for q, o in keys if q == p), dtype=np.int64)

        return cls(pre=part(_PRE), regular=part(_REGULAR), post=part(_POST))


@dataclass(frozen=True)
class Change:
    """How a rare kind of session differs from its normal shape: offsets it lacks and offsets it adds."""

    dropped: frozenset[Key] = frozenset()
    added: frozenset[Key] = frozenset()

    def apply(self, shape: Shape) -> Shape:
        if not self.dropped and not self.added:
            return shape
        return Shape.of_keys((shape.keys() - self.dropped) | self.added)


@dataclass(frozen=True)
class HoursPattern:
    """Learned bar shapes.

    Attributes
    ----------
    pooled : Shape
        The recent normal sessions of the file's last regime, all weekdays.
    regimes : dict
        ``{utc_offset_ns: Shape}``: each regime's latest normal sessions, all weekdays.
    weekdays : dict
        ``{(utc_offset_ns, weekday): Shape}`` (0 = Monday), for weekdays seen at least twice.
    changes : dict
        ``{("early" | "eve", utc_offset_ns | None): Change}`` for kinds the file holds: per regime, and
        over all regimes (``None``) for a regime without such a day.
    per_session : float
        Median number of bars per recent session (all kinds).
    """

    pooled: Shape
    regimes: dict[int, Shape]
    weekdays: dict[tuple[int, int], Shape]
    changes: dict[tuple[str, int | None], Change]
    per_session: float

    def normal(self, regime: int, weekday: int) -> Shape:
        """The normal shape of a session in ``regime`` on ``weekday``."""
        return self.weekdays.get((regime, weekday), self.regimes.get(regime, self.pooled))

    def shape(self, regime: int, weekday: int, kind: str) -> Shape:
        """The shape a session of ``kind`` (``normal``, ``early``, ``eve``) follows."""
        change = self.changes.get((kind, regime), self.changes.get((kind, None), Change()))
        return change.apply(self.normal(regime, weekday))

    def most_bars(self) -> int:
        return max([len(self.pooled), *(len(s) for s in (*self.regimes.values(), *self.weekdays.values()))])


def session_table(sched: pd.DataFrame, tz: str) -> pd.DataFrame:
    """Sessions with local wall-clock ``open``/``close`` (int64 ns), ``regime``, ``weekday`` and ``kind``.

    ``sched``: naive session-date index with UTC ``open``/``close`` (``exchange_calendars``' schedule).
    ``regime`` is the session's UTC offset at the open (ns). The schedule's last session is never an eve
    (the day after it is unknown).
    """
    dates = pd.DatetimeIndex(sched.index).as_unit("ns")
    utc_opens = pd.DatetimeIndex(sched["open"]).as_unit("ns")
    opens = utc_opens.tz_convert(tz).tz_localize(None)
    closes = pd.DatetimeIndex(sched["close"]).as_unit("ns").tz_convert(tz).tz_localize(None)
    close_time = (closes - closes.normalize()).asi8
    times, counts = np.unique(close_time, return_counts=True)
    early = close_time < times[np.argmax(counts)] if len(close_time) else np.zeros(0, dtype=bool)
    next_weekday = dates + pd.offsets.BDay(1)
    eve = ~next_weekday.isin(dates) & (next_weekday <= dates.max()) & ~early
    return pd.DataFrame(
        {
            "open": opens.asi8,
            "close": closes.asi8,
            "regime": opens.asi8 - utc_opens.asi8,
            "weekday": dates.day_of_week,
            "kind": np.where(early, "early", np.where(eve, "eve", "normal")),
        },
        index=dates,
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

    def keys(self, session: int) -> set[Key]:
        rows = self.pos == session
        return {(int(p), int(o)) for p, o in zip(self.part[rows], self.offset[rows], strict=True)}


def learn(index: pd.DatetimeIndex, table: pd.DataFrame, tz: str) -> HoursPattern:
    """The :class:`HoursPattern` of the bars ``index`` (sorted UTC) on the session ``table``.

    The last session held is left out (it may be partial) unless it is the only one; ``pooled`` still
    follows its regime.
    """
    bars = _Bars.of(index, table, tz)
    held, per = np.unique(bars.pos, return_counts=True)
    if len(held) == 0:
        return HoursPattern(Shape(), {}, {}, {}, 1.0)
    last_regime = int(table["regime"].to_numpy()[held[-1]])
    if len(held) > 1:  # the last session may still be open: it only places the forecast's start
        held, per = held[:-1], per[:-1]
    info = table.iloc[held]
    dates = pd.DatetimeIndex(info.index)
    kinds, regime, weekday = (info[c].to_numpy() for c in ("kind", "regime", "weekday"))
    normal = kinds == "normal"
    regimes: dict[int, Shape] = {}
    weekdays: dict[tuple[int, int], Shape] = {}
    for r in np.unique(regime[normal]):
        latest = np.zeros(len(held), dtype=bool)
        latest[np.flatnonzero(normal & (regime == r))[-RECENT_SESSIONS:]] = True
        regimes[int(r)] = bars.shape(held[latest], _SHARE)
        for w in np.unique(weekday[latest]):
            day = latest & (weekday == w)
            if np.sum(day) >= _MIN_SESSIONS:
                weekdays[(int(r), int(w))] = bars.shape(held[day], _SHARE)
    recent = dates > dates[-1] - RECENT
    pooled = regimes.get(last_regime, bars.shape(held[recent], _SHARE))
    pattern = HoursPattern(pooled, regimes, weekdays, {}, float(np.median(per[recent])))
    changes = {
        (k, r): _change(bars, pattern, info, held, (kinds == k) & ((regime == r) if r is not None else True))
        for k in RARE_KINDS
        for r in [None, *(int(r) for r in np.unique(regime[kinds == k]))]
    }
    return HoursPattern(pooled, regimes, weekdays, changes, pattern.per_session)


def _change(
    bars: _Bars, pattern: HoursPattern, info: pd.DataFrame, held: np.ndarray, of: np.ndarray
) -> Change:
    """What the file's latest sessions ``of`` (``[sessions held]`` bool) lack or add against their normal
    shapes."""
    dates = pd.DatetimeIndex(info.index)
    rows = np.flatnonzero(of & (dates > dates[-1] - RARE_SPAN))[-RARE_LAST:]
    if len(rows) == 0:
        return Change()
    expected: Counter[Key] = Counter()
    missing: Counter[Key] = Counter()
    extra: Counter[Key] = Counter()
    for row in rows:
        session = info.iloc[row]
        normal = pattern.normal(int(session["regime"]), int(session["weekday"]))
        ref = normal.keys(regular_before=int(session["close"] - session["open"]))
        seen = bars.keys(int(held[row]))
        expected.update(ref)
        missing.update(ref - seen)
        extra.update(seen - ref)
    dropped = {k for k, n in missing.items() if n >= _RARE_SHARE * expected[k]}
    added = {k for k, n in extra.items() if n >= _RARE_SHARE * len(rows)}
    return Change(dropped=frozenset(dropped), added=frozenset(added))


def future_bars(pattern: HoursPattern, table: pd.DataFrame, tz: str) -> np.ndarray:
    """Sorted unique UTC int64 ns of the bars ``pattern`` puts in every session of ``table``."""
    found: list[np.ndarray] = []
    opens, closes = table["open"].to_numpy(), table["close"].to_numpy()
    groups = table.groupby(["regime", "weekday", "kind"], sort=False).indices
    for key, rows in groups.items():
        regime, weekday, kind = cast(tuple[int, int, str], key)
        shape = pattern.shape(int(regime), int(weekday), str(kind))
        o, c = opens[rows][:, None], closes[rows][:, None]
        regular = o + shape.regular[None, :]
        found += [(o + shape.pre[None, :]).ravel(), regular[regular < c], (c + shape.post[None, :]).ravel()]
    local = pd.DatetimeIndex(np.concatenate([_empty(), *found]).astype("datetime64[ns]"))
    standard = np.zeros(len(local), dtype=bool)  # a wall time DST repeats: the standard-time one
    stamps = local.tz_localize(tz, ambiguous=standard, nonexistent="NaT").dropna()  # DST skips: dropped
    return np.unique(stamps.tz_convert("UTC").as_unit("ns").asi8)
