"""Where a chart's axes go, computed before anything is drawn (pure numpy and pandas, no matplotlib).

:func:`bar_axis` lays an exchange series' bars side by side, so nights, weekends and holidays take no
room (a 24/7 series keeps its time axis); :func:`y_window` keeps the bars readable when one forecast's
band explodes, and says which steps it cut. Tests check a chart through these values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

#: A step between bars this many times the usual one is closed time (a night, a weekend, a holiday).
GAP_FACTOR = 1.5
_DAY_NS = 86_400 * 10**9


def utc(values: Any) -> npt.NDArray[Any]:
    """Timestamps as naive-UTC ``datetime64[ns]`` (what matplotlib draws without a timezone)."""
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy(dtype="datetime64[ns]")


@dataclass(frozen=True)
class BarAxis:
    """An x axis that counts bars instead of calendar time.

    ``x`` ``[n]`` is each bar's position (0, 1, 2, ...); ``ticks`` the positions labelled (the first bar
    of each day, or of each session after a gap for daily bars, thinned to a few) with ``labels``;
    ``breaks`` the positions ``i - 0.5`` where closed time was cut out (a gap before bar ``i``).
    """

    times: pd.DatetimeIndex
    x: npt.NDArray[np.float64]
    ticks: list[float]
    labels: list[str]
    breaks: list[float]


def gaps_before(times: Any) -> npt.NDArray[np.bool_]:
    """``[n]`` bool: bar ``i`` follows closed time (its step from bar ``i - 1`` exceeds 1.5x the median)."""
    t = pd.DatetimeIndex(utc(times)).asi8
    out = np.zeros(len(t), dtype=bool)
    if len(t) < 3:
        return out
    step = np.diff(t)
    out[1:] = step > GAP_FACTOR * float(np.median(step))
    return out


def closed_hours(record: Any) -> bool | None:
    """Whether a run's data record (``data`` in its manifest) names a series with closed hours.

    ``calendar`` ``exchange`` -> True, ``continuous`` -> False; ``None`` when the record does not say
    (older runs): the chart then looks at the bars it draws.
    """
    calendar = record.get("calendar") if isinstance(record, dict) else None
    return {"exchange": True, "continuous": False}.get(str(calendar)) if calendar else None


def bar_axis(times: Any, *, closed_hours: bool | None = None, max_ticks: int = 8) -> BarAxis | None:
    """A :class:`BarAxis` for ``times`` of a series with closed hours (exchange series), else ``None``.

    ``closed_hours``: whether the series has closed hours (its data record's ``calendar`` is
    ``exchange``), so every window of one series gets the same kind of axis; ``None``: whether ``times``
    themselves skip time (a step over 1.5x the usual one). 24/7 series keep their time axis.
    Ticks: intraday bars at the first bar of each UTC day (``Mon 03-04``), daily or slower bars at the
    first bar after each gap (``2013-03-04``); at least ``len / max_ticks`` bars apart.
    """
    index = pd.DatetimeIndex(utc(times))
    gaps = gaps_before(index)
    if not len(index) or closed_hours is False or (closed_hours is None and not gaps.any()):
        return None
    if len(index) > 1 and float(np.median(np.diff(index.asi8))) < 0.9 * _DAY_NS:
        day = index.normalize().asi8
        starts = np.flatnonzero(day[1:] != day[:-1]) + 1
        fmt = "%a %m-%d"
    else:
        starts = np.flatnonzero(gaps)
        fmt = "%Y-%m-%d"
    ticks = _spaced([0, *starts.tolist()], math.ceil(len(index) / max_ticks), len(index))
    return BarAxis(
        times=index,
        x=np.arange(len(index), dtype=np.float64),
        ticks=[float(i) for i in ticks],
        labels=[f"{index[i]:{fmt}}" for i in ticks],
        breaks=[float(i) - 0.5 for i in np.flatnonzero(gaps)],
    )


def bar_positions(axis: BarAxis, times: Any) -> npt.NDArray[np.float64]:
    """``[n]`` the x position on ``axis`` of each of ``times`` (each one of the axis's bars, or placed at
    the bar before it when it falls between two)."""
    t = pd.DatetimeIndex(utc(times)).asi8
    at = np.searchsorted(axis.times.asi8, t, side="right") - 1
    return np.asarray(axis.x[np.clip(at, 0, len(axis.x) - 1)], dtype=np.float64)


#: Calendar tick steps from fine to coarse, each with its label format (:func:`calendar_ticks`).
_CALENDAR_STEPS = (("D", "%m-%d"), ("W-MON", "%m-%d"), ("MS", "%Y-%m"), ("QS", "%Y-%m"), ("YS", "%Y"))


def calendar_ticks(axis: BarAxis, *, max_ticks: int = 8, max_breaks: int = 40) -> BarAxis:
    """``axis`` relabelled for a long span: ticks at the first bar on or after each calendar day, week,
    month, quarter or year (the finest step giving at most ``max_ticks``), and no gap lines when there
    would be more than ``max_breaks`` (years of weekends are a grey smear, not a guide)."""
    t = axis.times
    fmt = _CALENDAR_STEPS[-1][1]
    marks = pd.DatetimeIndex([])
    for freq, fmt in _CALENDAR_STEPS:  # noqa: B007 (the format of the step chosen is used below)
        marks = pd.date_range(t[0].floor("D"), t[-1], freq=freq)
        if len(marks) <= max_ticks:
            break
    marks = marks[:: max(1, math.ceil(len(marks) / max_ticks))]  # decades of years: every few
    at = np.unique(np.searchsorted(t.asi8, marks.asi8, side="left"))
    at = at[at < len(t)]
    return BarAxis(
        times=t,
        x=axis.x,
        ticks=[float(axis.x[i]) for i in at],
        labels=[f"{t[i]:{fmt}}" for i in at],
        breaks=axis.breaks if len(axis.breaks) <= max_breaks else [],
    )


def _spaced(positions: list[int], gap: int, n: int) -> list[int]:
    """``positions`` (ascending, the first one 0; ``n`` bars in all) thinned so that kept ones are at least
    ``gap`` apart. A day or session shorter than half the gap (a Sunday evening's open) gets no tick, and
    the first position gives way to the second when they are too close (a partial first session)."""
    runs = np.diff([*positions, n])
    kept: list[int] = []
    for p, run in zip(positions, runs, strict=True):
        if 2 * run < gap:
            continue
        if not kept or p - kept[-1] >= gap:
            kept.append(p)
        elif kept == [positions[0]]:
            kept = [p]
    return kept or positions[:1]


@dataclass(frozen=True)
class YWindow:
    """The y range a fan chart shows and what it cuts off.

    ``lo, hi`` are the axis limits; ``above`` and ``below`` ``[horizon]`` mark the steps where the widest
    band leaves the axis; ``top`` and ``bottom`` the most extreme values cut off (NaN when nothing is;
    ``inf`` for a non-finite quantile).
    """

    lo: float
    hi: float
    above: npt.NDArray[np.bool_]
    below: npt.NDArray[np.bool_]
    top: float
    bottom: float

    @property
    def clipped(self) -> bool:
        return bool(self.above.any() or self.below.any())


def y_window(
    *,
    core: Sequence[npt.ArrayLike],
    upper: npt.ArrayLike,
    lower: npt.ArrayLike,
    reach: float = 1.0,
    margin: float = 0.06,
) -> YWindow:
    """Y limits that keep the bars readable when a band explodes.

    ``core`` are the values that must show in full (the bars before the origin, the actuals, the median);
    ``upper`` and ``lower`` ``[horizon]`` the widest band. The axis spans the core and the band, but the
    band at most ``reach`` core ranges beyond the core (so the core fills at least a third of the height),
    plus a ``margin`` share of the span on each side. The steps where the band goes further are reported.
    """
    parts = [np.asarray(v, dtype=np.float64).ravel() for v in core]
    kept = np.concatenate([v[np.isfinite(v)] for v in parts]) if parts else np.empty(0)
    up = np.asarray(upper, dtype=np.float64).ravel()
    down = np.asarray(lower, dtype=np.float64).ravel()
    band = np.concatenate([up[np.isfinite(up)], down[np.isfinite(down)]])
    if not kept.size:
        kept = band if band.size else np.array([0.0, 1.0])
    a, b = float(kept.min()), float(kept.max())
    span = (b - a) or (abs(a) * 0.01 or 1.0)
    lo = min(a, max(float(band.min()), a - reach * span)) if band.size else a
    hi = max(b, min(float(band.max()), b + reach * span)) if band.size else b
    pad = margin * (hi - lo)
    lo, hi = lo - pad, hi + pad
    above = (np.isfinite(up) & (up > hi)) | np.isposinf(up)
    below = (np.isfinite(down) & (down < lo)) | np.isneginf(down)
    return YWindow(
        lo=lo,
        hi=hi,
        above=above,
        below=below,
        top=float(np.max(up[above])) if above.any() else math.nan,
        bottom=float(np.min(down[below])) if below.any() else math.nan,
    )
