"""Trading calendars, future timestamps and annualisation measured from the series itself."""

from __future__ import annotations

import json
from pathlib import Path

import exchange_calendars as xc
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.data import load_ohlc
from chronobt.errors import ConfigError, DataError
from tests.data_cases import good_frame

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data"


def nyse_hourly(start: str, end: str) -> pd.DatetimeIndex:
    """Hourly bars of the real XNYS sessions: from the open (13:30 or 14:30 UTC), the last one the partial
    hour before the close; holidays absent, early closes shorter."""
    sched = xc.get_calendar("XNYS", start=start, end=end).schedule
    bars = [
        pd.date_range(row.open, row.close - pd.Timedelta(minutes=1), freq="h") for row in sched.itertuples()
    ]
    return pd.DatetimeIndex(np.concatenate([b.asi8 for b in bars]), tz="UTC").as_unit("ns")


def nyse_extended_hourly(start: str, end: str) -> pd.DatetimeIndex:
    """Like :func:`nyse_hourly` with five pre-market bars (4:30 .. 8:30 New York) and four from the close
    (16:00 .. 19:00; 13:00 .. 16:00 on a half day): 16 bars a full day."""
    sched = xc.get_calendar("XNYS", start=start, end=end).schedule
    hour = pd.Timedelta(hours=1)
    bars = [
        [row.open - k * hour for k in range(5, 0, -1)]
        + list(pd.date_range(row.open, row.close - pd.Timedelta(minutes=1), freq="h"))
        + [row.close + k * hour for k in range(4)]
        for row in sched.itertuples()
    ]
    return pd.DatetimeIndex([b for day in bars for b in day]).tz_convert("UTC").as_unit("ns")


def write_bars(index: pd.DatetimeIndex, path: Path) -> Path:
    frame = good_frame(len(index)).assign(timestamp=index)
    frame.to_parquet(path, index=False)
    return path


def test_generated_nyse_hours_have_half_hour_opens_that_move_with_dst() -> None:
    index = nyse_hourly("2024-10-28", "2024-11-08")
    assert index[0] == pd.Timestamp("2024-10-28 13:30", tz="UTC")  # EDT open
    assert pd.Timestamp("2024-11-04 14:30", tz="UTC") in index  # EST open
    assert (index.minute == 30).all()


@pytest.mark.parametrize(
    ("end", "what"),
    [
        ("2024-12-04", "Thanksgiving closed and the half day after it"),
        ("2024-11-07", "the DST change of 2024-11-03"),
        ("2024-04-03", "Good Friday and the DST change of 2024-03-10"),
    ],
)
def test_future_timestamps_of_hourly_us_stocks_equal_the_dropped_real_bars(
    tmp_path: Path, end: str, what: str
) -> None:
    index = nyse_hourly("2023-12-01", end)
    path = write_bars(index[:-24], tmp_path / "SPY.parquet")
    ohlc = load_ohlc(path)
    assert ohlc.trading_calendar == "XNYS", what
    future = ohlc.future_timestamps(ohlc.index[-1], 24)
    assert list(future) == list(index[-24:]), what


def test_extended_hours_us_stocks_follow_pre_and_post_market_bars(tmp_path: Path) -> None:
    index = nyse_extended_hourly("2024-09-02", "2024-12-04")
    ohlc = load_ohlc(write_bars(index[:-40], tmp_path / "SPY.parquet"))
    assert (ohlc.trading_calendar, ohlc.season_length) == ("XNYS", 16)
    assert list(ohlc.future_timestamps(ohlc.index[-1], 40)) == list(index[-40:])  # Thanksgiving, half day


def test_hourly_us_stocks_have_seven_bars_a_day_and_measured_annualisation(tmp_path: Path) -> None:
    index = nyse_hourly("2022-01-03", "2024-12-31")
    ohlc = load_ohlc(write_bars(index, tmp_path / "SPY.parquet"))
    assert ohlc.season_length == 7  # 9:30 .. 15:30 New York time, whatever the UTC hour
    info = ohlc.annualisation
    assert info["method"] == "measured" and info["span_years"] == pytest.approx(3.0, abs=0.01)
    assert ohlc.bars_per_year == pytest.approx(len(index) / info["span_years"], rel=1e-4)
    assert 1730 < ohlc.bars_per_year < 1770  # ~252 sessions x 7, less early closes; not 5 x 24 x 52


def test_a_named_calendar_is_used_and_none_turns_it_off(tmp_path: Path) -> None:
    index = nyse_hourly("2024-09-02", "2024-12-04")
    path = write_bars(index[:-24], tmp_path / "SPY.parquet")
    assert load_ohlc(path, calendar="xnys").trading_calendar == "XNYS"
    plain = load_ohlc(path, calendar="none")
    assert plain.trading_calendar is None
    assert list(plain.future_timestamps(plain.index[-1], 24)) != list(index[-24:])  # holiday not known
    with pytest.raises(ConfigError, match="not an exchange calendar"):
        load_ohlc(path, calendar="NOPE")


def test_a_calendar_on_a_24_7_series_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "btc.parquet"
    good_frame(24 * 20).to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"24/7 h series .* drop --calendar"):
        load_ohlc(path, calendar="XNYS")


@pytest.mark.parametrize("symbol", ["AAPL", "MSFT"])
def test_daily_us_stocks_are_xnys_and_skip_exchange_holidays(symbol: str) -> None:
    ohlc = load_ohlc(symbol, SHIPPED)
    assert (ohlc.freq, ohlc.trading_calendar) == ("B", "XNYS")
    before_good_friday = pd.Timestamp("2012-04-05", tz="UTC")
    future = ohlc.future_timestamps(before_good_friday, 3)
    assert [str(d.date()) for d in future] == ["2012-04-09", "2012-04-10", "2012-04-11"]
    kept = ohlc.index[ohlc.index <= pd.Timestamp("2012-11-20", tz="UTC")]
    real = ohlc.index[len(kept) : len(kept) + 10]  # Thanksgiving, Christmas
    assert list(ohlc.future_timestamps(kept[-1], 10)) == list(real)


def test_daily_stock_annualisation_is_measured_from_the_file() -> None:
    ohlc = load_ohlc("AAPL", SHIPPED)
    info = ohlc.annualisation
    assert info["method"] == "measured"
    assert info["bars_per_year"] == pytest.approx(len(ohlc) / info["span_years"], rel=1e-4)
    assert 250 < info["bars_per_year"] < 253
    assert ohlc.summary()["annualisation"] == info


def test_a_business_day_series_with_holidays_present_gets_no_calendar(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    good_frame(60, freq="B").to_parquet(path, index=False)  # trades on Good Friday 2021-04-02
    ohlc = load_ohlc(path)
    assert ohlc.trading_calendar is None
    assert ohlc.future_timestamps(pd.Timestamp("2021-04-01", tz="UTC"), 1)[0].day_name() == "Friday"


def test_hourly_24_7_is_measured_with_filled_gaps_counted(tmp_path: Path) -> None:
    frame = good_frame(24 * 800)
    path = tmp_path / "btc.parquet"
    frame.drop(index=range(100, 130)).to_parquet(path, index=False)
    ohlc = load_ohlc(path)
    assert ohlc.trading_calendar is None and ohlc.report.filled_bars == 30
    assert ohlc.annualisation["method"] == "measured"
    assert ohlc.bars_per_year == pytest.approx(24 * 365.25)
    future = ohlc.future_timestamps(ohlc.index[-1], 3)
    assert (np.diff(future.asi8) == pd.Timedelta(hours=1).value).all()


def test_daily_24_7_continues_daily_and_short_series_are_nominal(tmp_path: Path) -> None:
    path = tmp_path / "eth.parquet"
    good_frame(60, freq="D").to_parquet(path, index=False)
    ohlc = load_ohlc(path)
    assert ohlc.annualisation == {"bars_per_year": 365.0, "method": "nominal", "span_years": 0.1643}
    future = ohlc.future_timestamps(ohlc.index[-1], 3)
    assert list(future.day_name()) == ["Friday", "Saturday", "Sunday"]


def test_fx_gets_no_exchange_calendar_and_keeps_its_weekly_hours(tmp_path: Path) -> None:
    grid = pd.date_range("2021-03-07 22:00", "2021-04-30 21:00", freq="h", tz="UTC")
    weekday, hour = grid.day_of_week, grid.hour
    open_hours = ~((weekday == 5) | ((weekday == 4) & (hour >= 22)) | ((weekday == 6) & (hour < 22)))
    path = write_bars(grid[open_hours], tmp_path / "fx.parquet")
    ohlc = load_ohlc(path)
    assert (ohlc.calendar, ohlc.trading_calendar, ohlc.season_length) == ("exchange", None, 24)
    future = ohlc.future_timestamps(pd.Timestamp("2021-04-30 21:00", tz="UTC"), 1)
    assert future[0] == pd.Timestamp("2021-05-02 22:00", tz="UTC")


def test_data_check_reports_the_session_bars_and_takes_calendar(tmp_path: Path) -> None:
    write_bars(nyse_hourly("2024-09-02", "2024-12-04"), tmp_path / "SPY.parquet")
    runner = CliRunner()
    args = ["data", "check", "SPY", "--data-dir", str(tmp_path)]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "h / exchange (XNYS)" in shown.stdout and "7 / " in shown.stdout
    plain = runner.invoke(app, [*args, "--calendar", "none", "--json"])
    summary = json.loads(plain.stdout)
    assert summary["trading_calendar"] is None and summary["annualisation"]["method"] == "nominal"
    bad = runner.invoke(app, [*args, "--calendar", "NOPE"])
    assert bad.exit_code != 0 and "not an exchange calendar" in bad.stderr
