"""Future bar timestamps of exchange-hours series follow the exchange's real schedule.

Each series is laid on XNYS's real 2022-2025 schedule (built here from ``exchange_calendars``): pre-market
bars before the open, regular bars from the open, after-market bars from the close, all in New York time,
with early-close days ending both the regular session and the after-market early. The file is cut after
(or before) a date and the 24 forecast timestamps must be the bars the series really has next.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import exchange_calendars as xc
import numpy as np
import pandas as pd
import pytest

from chronobt.data import load_ohlc
from chronobt.data.sessions import learn_hours
from tests.data_cases import good_frame

NY = "America/New_York"
HOUR = pd.Timedelta(hours=1)
HALF = pd.Timedelta(minutes=30)
SCHEDULE = xc.get_calendar("XNYS", start="2022-10-03", end="2025-01-31").schedule
SESSIONS = pd.DatetimeIndex(SCHEDULE.index)

# DST end and start, early closes (Independence Day eves, the Fridays after Thanksgiving), Thanksgiving
# eves, Christmas, Good Friday and ordinary days
CUTS = [
    "2023-05-17",
    "2023-07-03",
    "2023-11-03",
    "2023-11-22",
    "2023-11-24",
    "2023-12-22",
    "2024-03-08",
    "2024-03-28",
    "2024-07-03",
    "2024-11-27",
    "2024-11-29",
    "2024-12-23",
]

Day = Callable[[pd.Timestamp, pd.Timestamp, pd.Timestamp], list[pd.Timestamp]]


def _early(close: pd.Timestamp) -> bool:
    return close.hour < 16


def _eve(day: pd.Timestamp, close: pd.Timestamp) -> bool:
    return day + pd.offsets.BDay(1) not in SESSIONS and not _early(close)


def half_hours(day: pd.Timestamp, open_: pd.Timestamp, close: pd.Timestamp) -> list[pd.Timestamp]:
    """Bars at :30 from 04:30 to 19:30 New York time (16); early closes: 04:30 .. 12:30, 13:30 .. 16:30."""
    pre = [open_ - k * HOUR for k in range(5, 0, -1)]
    regular = list(pd.date_range(open_, close - pd.Timedelta(minutes=1), freq="h"))
    return pre + regular + [close + HALF + k * HOUR for k in range(4)]


def yahoo_like(day: pd.Timestamp, open_: pd.Timestamp, close: pd.Timestamp) -> list[pd.Timestamp]:
    """Pre-market at :00 from 04:00 to 09:00, regular bars at :30, after-market at :00 from the close."""
    pre = [day.tz_localize(NY) + k * HOUR for k in range(4, 10)]
    regular = list(pd.date_range(open_, close - pd.Timedelta(minutes=1), freq="h"))
    return pre + regular + [close + k * HOUR for k in range(4)]


def early_without_last_bar(day: pd.Timestamp, open_: pd.Timestamp, close: pd.Timestamp) -> list[pd.Timestamp]:
    """Like :func:`half_hours`, but early-close days lack the partial 12:30 bar."""
    bars = half_hours(day, open_, close)
    return [b for b in bars if b != close - HALF] if _early(close) else bars


def short_eves(day: pd.Timestamp, open_: pd.Timestamp, close: pd.Timestamp) -> list[pd.Timestamp]:
    """Like :func:`half_hours`, but the after-market before a weekday holiday ends at 18:00."""
    bars = half_hours(day, open_, close)
    return bars[:-2] if _eve(day, close) else bars


def short_fridays(day: pd.Timestamp, open_: pd.Timestamp, close: pd.Timestamp) -> list[pd.Timestamp]:
    """Like :func:`half_hours`, but Fridays' after-market ends at 18:00."""
    bars = half_hours(day, open_, close)
    return bars[:-2] if day.day_of_week == 4 else bars


def after_market_cut_at_utc_midnight(
    day: pd.Timestamp, open_: pd.Timestamp, close: pd.Timestamp
) -> list[pd.Timestamp]:
    """Like :func:`yahoo_like`, but without bars on the next UTC date: winter evenings end at 18:00."""
    bars = yahoo_like(day, open_, close)
    return [b for b in bars if b.tz_convert("UTC").date() == day.date()]


def audit_like(day: pd.Timestamp, open_: pd.Timestamp, close: pd.Timestamp) -> list[pd.Timestamp]:
    """:func:`after_market_cut_at_utc_midnight` whose early-close days lack the partial 12:30 bar."""
    bars = after_market_cut_at_utc_midnight(day, open_, close)
    return [b for b in bars if b != close - HALF] if _early(close) else bars


@cache
def xnys_bars(day_bars: Day) -> pd.DatetimeIndex:
    """``day_bars(date, open, close)`` (New York time) over every XNYS session, as sorted UTC."""
    bars: list[pd.Timestamp] = []
    for day, row in SCHEDULE.iterrows():
        bars += day_bars(pd.Timestamp(day), row["open"].tz_convert(NY), row["close"].tz_convert(NY))
    return pd.DatetimeIndex(bars).tz_convert("UTC").as_unit("ns")


def cut_and_forecast(
    index: pd.DatetimeIndex, cut: str, tmp_path: Path, *, before: bool = False
) -> tuple[list, list]:
    """(24 forecast timestamps of the file cut after (``before``: before) ``cut``'s New York date, the 24
    real next bars)."""
    local = index.tz_convert(NY).tz_localize(None)
    k = int(np.searchsorted(local, pd.Timestamp(cut) + pd.Timedelta(days=0 if before else 1)))
    return forecast_first(index, k, tmp_path)


def forecast_first(index: pd.DatetimeIndex, k: int, tmp_path: Path, *, start: int = 0) -> tuple[list, list]:
    """(24 forecast timestamps of a file holding bars ``start:k`` of ``index``, the 24 real next bars)."""
    path = tmp_path / "SPY.parquet"
    good_frame(k - start).assign(timestamp=index[start:k]).to_parquet(path, index=False)
    ohlc = load_ohlc(path)
    assert ohlc.trading_calendar == "XNYS"
    return list(ohlc.future_timestamps(ohlc.index[-1], 24)), list(index[k : k + 24])


@pytest.mark.parametrize("before", [False, True], ids=["cut-after", "cut-before"])
@pytest.mark.parametrize(
    "layout", [half_hours, yahoo_like, audit_like], ids=["half-hours", "yahoo-like", "audit-like"]
)
@pytest.mark.parametrize("cut", CUTS)
def test_forecast_timestamps_of_extended_hours_stocks_are_the_real_next_bars(
    tmp_path: Path, cut: str, layout: Day, before: bool
) -> None:
    future, real = cut_and_forecast(xnys_bars(layout), cut, tmp_path, before=before)
    assert future == real


LAYOUTS = {
    "half-hours": half_hours,
    "yahoo-like": yahoo_like,
    "early-without-last-bar": early_without_last_bar,
    "short-eves": short_eves,
    "short-fridays": short_fridays,
    "cut-at-utc-midnight": after_market_cut_at_utc_midnight,
    "audit-like": audit_like,
}

# New York wall times inside a session (the file keeps the bars up to and including it): early closes in
# summer (each the file's first of its summer) and winter, holiday eves, the first sessions after DST
# starts and ends, pre- and after-market, and ordinary days
INSIDE = [
    "2023-05-17 12:00",
    "2023-07-03 10:30",
    "2023-07-03 12:00",
    "2023-11-24 11:00",
    "2024-07-03 10:00",
    "2024-11-29 12:15",
    "2023-11-22 13:00",
    "2023-11-22 17:00",
    "2023-12-22 11:30",
    "2024-03-28 14:00",
    "2024-11-27 10:45",
    "2023-03-13 11:00",
    "2023-11-06 13:00",
    "2024-03-11 07:00",
    "2024-03-11 12:30",
    "2024-11-04 10:00",
]


def cut_inside(index: pd.DatetimeIndex, at: str) -> int:
    """The number of bars of ``index`` up to New York wall time ``at``, checked to end inside a session."""
    local = index.tz_convert(NY).tz_localize(None)
    k = int(np.searchsorted(local, pd.Timestamp(at), side="right"))
    assert local[k - 1].date() == local[k].date() == pd.Timestamp(at).date()
    return k


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize("at", INSIDE)
def test_a_file_that_ends_inside_a_session_forecasts_the_rest_of_it_and_the_next_sessions(
    tmp_path: Path, at: str, layout: Day
) -> None:
    index = xnys_bars(layout)
    future, real = forecast_first(index, cut_inside(index, at), tmp_path)
    assert future == real


@pytest.mark.parametrize("at", ["2023-03-13 07:00", "2023-03-13 11:00", "2023-03-13 17:30"])
def test_a_file_that_ends_inside_its_first_summer_session_reads_it_from_its_winter_sessions(
    tmp_path: Path, at: str
) -> None:
    index = xnys_bars(half_hours)
    start = int(np.searchsorted(index, pd.Timestamp("2022-12-01", tz=NY)))
    future, real = forecast_first(index, cut_inside(index, at), tmp_path, start=start)
    assert future == real


@pytest.mark.parametrize("at", ["2023-07-03 10:30", "2023-11-22 17:00", "2024-03-11 12:30"])
def test_the_session_a_file_ends_inside_teaches_no_shape(at: str) -> None:
    index = xnys_bars(audit_like)
    k = cut_inside(index, at)
    first = int(np.searchsorted(index.tz_convert(NY).tz_localize(None), pd.Timestamp(at).normalize())) + 1
    inside, at_first_bar = learn_hours("XNYS", index[:k]), learn_hours("XNYS", index[:first])
    assert inside.changes == at_first_bar.changes
    assert inside.per_session == at_first_bar.per_session
    shapes = [(inside.pooled, at_first_bar.pooled)]
    for mine, theirs in ((inside.regimes, at_first_bar.regimes), (inside.weekdays, at_first_bar.weekdays)):
        assert mine.keys() == theirs.keys()
        shapes += [(mine[key], theirs[key]) for key in mine]  # type: ignore[index]
    assert all(a.keys() == b.keys() for a, b in shapes)


@pytest.mark.parametrize("before", [False, True], ids=["cut-after", "cut-before"])
@pytest.mark.parametrize("cut", ["2023-03-10", "2023-11-03", "2024-03-08", "2024-11-01"])
def test_summer_and_winter_keep_their_own_shapes_when_the_file_cuts_hours_in_utc(
    tmp_path: Path, cut: str, before: bool
) -> None:
    future, real = cut_and_forecast(xnys_bars(after_market_cut_at_utc_midnight), cut, tmp_path, before=before)
    assert future == real


@pytest.mark.parametrize("cut", ["2023-06-30", "2023-11-22", "2024-07-02", "2024-11-27"])
def test_early_closes_follow_the_files_own_early_close_days(tmp_path: Path, cut: str) -> None:
    future, real = cut_and_forecast(xnys_bars(early_without_last_bar), cut, tmp_path)
    assert future == real  # no 12:30 New York bar on the half day


@pytest.mark.parametrize("cut", ["2023-11-21", "2023-12-21", "2024-03-27", "2024-11-26"])
def test_holiday_eves_follow_the_files_own_eves(tmp_path: Path, cut: str) -> None:
    future, real = cut_and_forecast(xnys_bars(short_eves), cut, tmp_path)
    assert future == real


@pytest.mark.parametrize("cut", ["2024-05-16", "2024-09-12", "2024-10-17"])
def test_each_weekday_keeps_its_own_bars(tmp_path: Path, cut: str) -> None:
    future, real = cut_and_forecast(xnys_bars(short_fridays), cut, tmp_path)
    assert future == real


def test_bar_offsets_are_learned_in_local_time_across_dst() -> None:
    index = xnys_bars(half_hours)
    for end in ("2023-11-03", "2024-01-31", "2024-07-31"):  # EDT, EST, EDT
        pattern = learn_hours("XNYS", index[index < pd.Timestamp(end, tz=NY)]).pooled
        assert list(pattern.pre // HOUR.value) == [-5, -4, -3, -2, -1]
        assert list(pattern.regular // HOUR.value) == [0, 1, 2, 3, 4, 5, 6]
        assert list(pattern.post // HALF.value) == [1, 3, 5, 7]


def test_daily_stock_bars_skip_the_holiday(tmp_path: Path) -> None:
    dates = SESSIONS[SESSIONS <= "2024-11-27"].tz_localize("UTC")
    path = tmp_path / "SPY.parquet"
    good_frame(len(dates)).assign(timestamp=dates).to_parquet(path, index=False)
    ohlc = load_ohlc(path)
    assert (ohlc.freq, ohlc.trading_calendar) == ("B", "XNYS")
    future = ohlc.future_timestamps(ohlc.index[-1], 3)
    assert [str(d.date()) for d in future] == ["2024-11-29", "2024-12-02", "2024-12-03"]


def test_crypto_bars_continue_hourly(tmp_path: Path) -> None:
    path = tmp_path / "BTC.parquet"
    good_frame(24 * 30).to_parquet(path, index=False)
    ohlc = load_ohlc(path)
    assert ohlc.trading_calendar is None
    future = ohlc.future_timestamps(ohlc.index[-1], 48)
    assert list(future) == list(pd.date_range(ohlc.index[-1] + HOUR, periods=48, freq="h"))


def test_fx_bars_skip_the_weekend_in_utc(tmp_path: Path) -> None:
    hours = pd.date_range("2024-01-07 22:00", "2024-03-29 21:00", freq="h", tz="UTC")
    week = (hours.day_of_week + 1) % 7 * 24 + hours.hour  # hours since Sunday 00:00
    fx = hours[(week >= 22) & (week < 5 * 24 + 22)]  # Sunday 22:00 .. Friday 21:00 UTC
    path = tmp_path / "EURUSD.parquet"
    good_frame(len(fx) - 30).assign(timestamp=fx[:-30]).to_parquet(path, index=False)
    ohlc = load_ohlc(path)
    assert (ohlc.calendar, ohlc.trading_calendar) == ("exchange", None)
    assert list(ohlc.future_timestamps(ohlc.index[-1], 30)) == list(fx[-30:])


def test_neither_help_nor_a_crypto_load_imports_exchange_calendars() -> None:
    probe = (
        "import sys; from typer.testing import CliRunner; from chronobt.cli import app; "
        "CliRunner().invoke(app, ['--help']); from chronobt.data import load_ohlc; load_ohlc('BTCUSD'); "
        "print('exchange_calendars' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
