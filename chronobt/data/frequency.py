"""Bar frequencies, calendars and timestamp helpers shared by the data modules."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

Calendar = Literal["continuous", "exchange"]


DAY = pd.Timedelta(days=1)


def _freq_alias(step: pd.Timedelta) -> str:
    if step % DAY == pd.Timedelta(0):
        days = step // DAY
        return "D" if days == 1 else f"{days}D"
    return str(to_offset(step).freqstr)


def freq_step(freq: str) -> pd.Timedelta | None:
    """The fixed length of one bar for tick-like aliases (None for B, M, Q, ... calendar offsets)."""
    if freq == "B":
        return None
    try:
        return pd.Timedelta(to_offset(freq if freq[:1].isdigit() else f"1{freq}"))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None


def infer_calendar(index: pd.DatetimeIndex) -> tuple[str, Calendar, pd.Timedelta | None]:
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
    if step <= DAY and span >= pd.Timedelta(days=7) and saturday_share < 0.02:
        return ("B" if step == DAY else _freq_alias(step)), "exchange", None if step == DAY else step
    return _freq_alias(step), "continuous", step


def to_utc_index(idx: pd.DatetimeIndex) -> pd.DatetimeIndex:
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return idx.as_unit("ns")


def as_utc(ts: pd.Timestamp) -> pd.Timestamp:
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def fmt_time(ts: pd.Timestamp | None) -> str:
    if ts is None:
        return "-"
    return ts.strftime("%Y-%m-%d %H:%M") if (ts.second == 0 and ts.microsecond == 0) else ts.isoformat()


def first_flagged(index: pd.Index, mask: np.ndarray) -> pd.Timestamp | None:
    return index[int(mask.argmax())] if mask.any() else None
