"""chronobt.data: loading, validation, loud repairs, calendars, CSV import, the shipped sample data."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chronobt.data import (
    OHLC,
    TARGETS,
    check_ohlc,
    import_csv,
    list_symbols,
    load_ohlc,
    require_bars,
    save_ohlc,
)
from chronobt.errors import ConfigError, DataError
from tests.data_cases import bad_csv_cases, bad_input_cases, good_frame

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data"
#: A CryptoDataDownload-style hourly export made from data/BTCUSD.parquet (tests/fixtures/make_fixtures.py).
CDD_CSV = REPO / "tests" / "fixtures" / "BTCUSD_cdd_1h.csv"


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


# ------------------------------------------------------------------------------------------------
# The bad-input corpus (library level; the CLI runs the same corpus in test_data_cli.py)


def test_bad_input_corpus_has_at_least_fifteen_cases(tmp_path: Path) -> None:
    assert len(bad_input_cases(tmp_path)) >= 15


def test_every_bad_input_raises_a_data_error_naming_the_problem_and_the_file(tmp_path: Path) -> None:
    for name, path, fragment in bad_input_cases(tmp_path):
        with pytest.raises(DataError) as info:
            load_ohlc(path, tmp_path)
        message = str(info.value)
        assert fragment.lower() in message.lower(), (name, message)
        assert path.name in message, (name, message)


def test_every_bad_csv_is_refused_by_import_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "csv").mkdir()
    for name, path, fragment in bad_csv_cases(tmp_path / "csv"):
        with pytest.raises(DataError) as info:
            import_csv(path, symbol="BAD", data_dir=out)
        assert fragment.lower() in str(info.value).lower(), (name, str(info.value))
        assert not out.exists() or list(out.iterdir()) == [], name


def test_price_errors_name_the_column_count_and_first_timestamp(tmp_path: Path) -> None:
    frame = good_frame(48)
    frame.loc[[7, 9, 20], "close"] = np.nan
    with pytest.raises(DataError, match=r"column 'close' has 3 of 48 rows .*first at 2021-03-01 07:00"):
        load_ohlc(write(frame, tmp_path / "x.parquet"))


# ------------------------------------------------------------------------------------------------
# Symbols and paths


def test_symbol_resolves_case_insensitively_in_the_data_dir(tmp_path: Path) -> None:
    write(good_frame(), tmp_path / "EthUsd.parquet")
    ohlc = load_ohlc("ethusd", tmp_path)
    assert ohlc.symbol == "ETHUSD"
    assert ohlc.path == tmp_path / "EthUsd.parquet"


def test_missing_symbol_lists_the_symbols_that_exist(tmp_path: Path) -> None:
    write(good_frame(), tmp_path / "BTCUSD.parquet")
    write(good_frame(), tmp_path / "AAPL.parquet")
    with pytest.raises(DataError, match=r"'DOGE'.*available: AAPL, BTCUSD.*data import"):
        load_ohlc("DOGE", tmp_path)


def test_a_path_loads_that_file_and_takes_its_stem_as_symbol(tmp_path: Path) -> None:
    path = write(good_frame(), tmp_path / "my_series.parquet")
    ohlc = load_ohlc(path, data_dir=tmp_path / "elsewhere")
    assert ohlc.symbol == "MY_SERIES"
    assert len(ohlc) == 48


def test_negative_max_gap_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max-gap"):
        load_ohlc(write(good_frame(), tmp_path / "x.parquet"), max_gap=-1)


# ------------------------------------------------------------------------------------------------
# Frame contract


def test_loaded_frame_follows_the_contract(tmp_path: Path) -> None:
    ohlc = load_ohlc(write(good_frame(30), tmp_path / "x.parquet"))
    idx = ohlc.frame.index
    assert isinstance(idx, pd.DatetimeIndex) and str(idx.tz) == "UTC" and idx.name == "timestamp"
    assert idx.is_monotonic_increasing and idx.is_unique
    assert list(ohlc.frame.columns) == [*TARGETS, "volume"]
    assert all(ohlc.frame[c].dtype == np.float64 for c in ohlc.frame.columns)
    assert len(ohlc.sha256) == 64


def test_values_returns_time_by_variates_in_target_order(tmp_path: Path) -> None:
    frame = good_frame(30)
    ohlc = load_ohlc(write(frame, tmp_path / "x.parquet"))
    values = ohlc.values(("close", "open"))
    assert values.shape == (30, 2) and values.dtype == np.float64
    np.testing.assert_array_equal(values[:, 0], frame["close"].to_numpy())
    np.testing.assert_array_equal(values[:, 1], frame["open"].to_numpy())
    values[0, 0] = -1.0
    assert ohlc.frame["close"].iloc[0] != -1.0  # a copy, not a view


def test_values_for_an_absent_column_is_a_data_error(tmp_path: Path) -> None:
    ohlc = load_ohlc(write(good_frame().drop(columns=["volume"]), tmp_path / "x.parquet"))
    with pytest.raises(DataError, match="no column 'volume'"):
        ohlc.values(("close", "volume"))


def test_require_bars_names_the_purpose_and_the_count(tmp_path: Path) -> None:
    ohlc = load_ohlc(write(good_frame(40), tmp_path / "x.parquet"))
    require_bars(ohlc, 40, purpose="context 32 + horizon 8")
    with pytest.raises(DataError, match=r"has 40 bars.*context 64 \+ horizon 24 needs at least 88"):
        require_bars(ohlc, 88, purpose="context 64 + horizon 24")


# ------------------------------------------------------------------------------------------------
# Columns and timestamps


def test_columns_match_case_insensitively_and_with_prefixes(tmp_path: Path) -> None:
    frame = good_frame(30)
    renamed = frame.rename(
        columns={
            "timestamp": "Date",
            "open": "Open",
            "high": "ETH:high",
            "low": "low_price",
            "close": "CLOSE",
        }
    )
    ohlc = load_ohlc(write(renamed, tmp_path / "x.parquet"))
    np.testing.assert_array_equal(ohlc.values(), frame[list(TARGETS)].to_numpy())
    assert ohlc.report.columns["high"] == "ETH:high"


def test_adjusted_close_is_not_mistaken_for_close(tmp_path: Path) -> None:
    frame = good_frame(30).assign(**{"Adj Close": 1.0})
    ohlc = load_ohlc(write(frame, tmp_path / "x.parquet"))
    np.testing.assert_array_equal(ohlc.values(("close",))[:, 0], frame["close"].to_numpy())


def test_a_datetime_index_is_accepted(tmp_path: Path) -> None:
    frame = good_frame(30).set_index("timestamp")
    frame.to_parquet(tmp_path / "x.parquet")
    assert len(load_ohlc(tmp_path / "x.parquet")) == 30


@pytest.mark.parametrize("unit, scale", [("s", 10**9), ("ms", 10**6)])
def test_unix_seconds_and_milliseconds_are_detected(tmp_path: Path, unit: str, scale: int) -> None:
    frame = good_frame(30)
    expected = pd.DatetimeIndex(frame["timestamp"])
    ns = (frame["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "ns")
    frame = frame.drop(columns=["timestamp"]).assign(unix=(ns // scale).astype("int64"))
    ohlc = load_ohlc(write(frame, tmp_path / f"{unit}.parquet"))
    assert ohlc.frame.index.equals(expected.rename("timestamp").as_unit("ns"))


def test_naive_timestamps_are_taken_as_utc_and_other_zones_converted(tmp_path: Path) -> None:
    frame = good_frame(30)
    naive = frame.assign(timestamp=frame["timestamp"].dt.tz_localize(None))
    eastern = frame.assign(timestamp=frame["timestamp"].dt.tz_convert("America/New_York"))
    a = load_ohlc(write(naive, tmp_path / "naive.parquet"))
    b = load_ohlc(write(eastern, tmp_path / "eastern.parquet"))
    assert a.frame.index[0] == pd.Timestamp("2021-03-01 00:00", tz="UTC")
    assert a.frame.index.equals(b.frame.index)


def test_date_strings_in_one_format_parse(tmp_path: Path) -> None:
    frame = good_frame(30, freq="D")
    as_text = frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d"))
    ohlc = load_ohlc(write(as_text, tmp_path / "x.parquet"))
    assert ohlc.frame.index[0] == pd.Timestamp("2021-03-01", tz="UTC")
    assert ohlc.freq == "D"


# ------------------------------------------------------------------------------------------------
# Repairs: loud, with counts


def test_unsorted_rows_are_sorted_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frame = good_frame(30)
    shuffled = frame.sample(frac=1.0, random_state=3)
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        ohlc = load_ohlc(write(shuffled, tmp_path / "x.parquet"))
    np.testing.assert_array_equal(ohlc.values(), frame[list(TARGETS)].to_numpy())
    assert ohlc.report.unsorted_rows > 0 and not ohlc.report.newest_first
    assert any("out of time order; sorted" in r.getMessage() for r in caplog.records)


def test_newest_first_rows_are_reversed_and_reported(tmp_path: Path) -> None:
    frame = good_frame(30)
    ohlc = load_ohlc(write(frame.iloc[::-1], tmp_path / "x.parquet"))
    np.testing.assert_array_equal(ohlc.values(), frame[list(TARGETS)].to_numpy())
    assert ohlc.report.newest_first
    assert "newest-first" in ohlc.report.warnings()[0]


def test_exact_duplicates_collapse_with_a_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frame = good_frame(30)
    doubled = pd.concat([frame, frame.iloc[[4, 9, 9]]], ignore_index=True)
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        ohlc = load_ohlc(write(doubled, tmp_path / "x.parquet"))
    assert len(ohlc) == 30
    assert ohlc.report.duplicate_exact == 3 and ohlc.report.duplicate_conflicting == 0
    assert ohlc.report.duplicate_exact_first == frame["timestamp"].iloc[4]
    assert any("3 exact duplicate rows dropped" in r.getMessage() for r in caplog.records)


def test_conflicting_duplicates_keep_the_last_row_in_file_order(tmp_path: Path) -> None:
    frame = good_frame(30)
    later = frame.iloc[[6]].assign(close=frame["close"].iloc[6] * 1.01, high=frame["high"].iloc[6] * 1.02)
    ohlc = load_ohlc(write(pd.concat([frame, later], ignore_index=True), tmp_path / "x.parquet"))
    assert len(ohlc) == 30
    assert ohlc.report.duplicate_conflicting == 1
    assert ohlc.report.duplicate_conflicting_first == frame["timestamp"].iloc[6]
    assert ohlc.frame["close"].iloc[6] == later["close"].iloc[0]
    assert "kept the last in file order" in " ".join(ohlc.report.warnings())


def test_ohlc_inconsistencies_are_counted_and_kept(tmp_path: Path) -> None:
    frame = good_frame(30)
    frame.loc[5, "high"] = frame.loc[5, ["open", "close"]].max() - 0.5
    frame.loc[12, "low"] = frame.loc[12, ["open", "close"]].min() + 0.5
    ohlc = load_ohlc(write(frame, tmp_path / "x.parquet"))
    assert ohlc.report.ohlc_inconsistent == 2
    assert ohlc.report.ohlc_inconsistent_first == frame["timestamp"].iloc[5]
    np.testing.assert_array_equal(ohlc.values(), frame[list(TARGETS)].to_numpy())


def test_non_positive_prices_are_reported_not_refused(tmp_path: Path) -> None:
    frame = good_frame(30)
    frame.loc[[3, 8], "low"] = 0.0
    frame.loc[8, "close"] = -1.0
    ohlc = load_ohlc(write(frame, tmp_path / "x.parquet"))
    assert ohlc.report.non_positive == 2
    assert ohlc.report.non_positive_first == frame["timestamp"].iloc[3]
    assert "zero or negative prices" in " ".join(ohlc.report.warnings())


def test_the_non_positive_warning_names_the_span_and_claims_no_refusal(tmp_path: Path) -> None:
    frame = good_frame(30)
    frame.loc[[3, 8], "low"] = 0.0
    (line,) = [w for w in load_ohlc(write(frame, tmp_path / "x.parquet")).report.warnings() if "zero" in w]
    first, last = (f"{t:%Y-%m-%d %H:%M}" for t in frame["timestamp"].iloc[[3, 8]])
    assert f"(first at {first}, last at {last})" in line
    assert "stop with an error for this symbol if a window's context holds one" in line
    assert "will refuse it" not in line


def test_missing_volume_is_set_to_zero_loudly(tmp_path: Path) -> None:
    frame = good_frame(30)
    frame.loc[[1, 2], "volume"] = np.nan
    ohlc = load_ohlc(write(frame, tmp_path / "x.parquet"))
    assert ohlc.report.volume_missing == 2
    assert ohlc.frame["volume"].iloc[1] == 0.0


def _with_gaps(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    frame = good_frame(60)
    holed = frame.drop(index=[*range(10, 13), *range(30, 35)])  # gaps of 3 and 5 hourly bars
    return write(holed, tmp_path / "holes.parquet"), frame


def test_gaps_in_24_7_data_are_forward_filled_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, frame = _with_gaps(tmp_path)
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        ohlc = load_ohlc(path)
    report = ohlc.report
    assert (report.filled_bars, report.gaps, report.longest_gap) == (8, 2, 5)
    assert report.longest_gap_after == frame["timestamp"].iloc[29]
    assert ohlc.frame.index.equals(pd.DatetimeIndex(frame["timestamp"], name="timestamp").as_unit("ns"))
    filled = ohlc.frame.iloc[30:35]
    prev_close = frame["close"].iloc[29]
    assert (filled[list(TARGETS)].to_numpy() == prev_close).all()
    assert (filled["volume"] == 0).all()
    assert any(
        "8 missing h bars forward-filled (2 gap(s), longest 5" in r.getMessage() for r in caplog.records
    )


def test_a_gap_longer_than_max_gap_is_an_error(tmp_path: Path) -> None:
    path, _ = _with_gaps(tmp_path)
    with pytest.raises(
        DataError, match=r"gap of 5 missing h bars after 2021-03-02 05:00 exceeds --max-gap 4"
    ):
        load_ohlc(path, max_gap=4)
    assert load_ohlc(path, max_gap=5).report.filled_bars == 8


# ------------------------------------------------------------------------------------------------
# Calendars and frequencies


def test_hourly_crypto_is_continuous_with_daily_season(tmp_path: Path) -> None:
    ohlc = load_ohlc(write(good_frame(24 * 20), tmp_path / "x.parquet"))
    assert (ohlc.freq, ohlc.calendar, ohlc.season_length, ohlc.bars_per_year) == ("h", "continuous", 24, 8760)
    after = ohlc.frame.index[-1]
    future = ohlc.future_timestamps(after, 30)
    assert len(future) == 30 and future[0] == after + pd.Timedelta(hours=1)
    assert (np.diff(future.asi8) == pd.Timedelta(hours=1).value).all()


def test_daily_crypto_is_continuous_with_weekly_season(tmp_path: Path) -> None:
    ohlc = load_ohlc(write(good_frame(60, freq="D"), tmp_path / "x.parquet"))
    assert (ohlc.freq, ohlc.calendar, ohlc.season_length, ohlc.bars_per_year) == ("D", "continuous", 7, 365)


def test_daily_stock_uses_business_days_and_is_not_filled(tmp_path: Path) -> None:
    frame = good_frame(60, freq="B")
    frame = frame.drop(index=[14])  # a holiday stays a missing day, not a filled bar
    ohlc = load_ohlc(write(frame, tmp_path / "x.parquet"))
    assert (ohlc.freq, ohlc.calendar, ohlc.season_length, ohlc.bars_per_year) == ("B", "exchange", 5, 252)
    assert len(ohlc) == 59 and ohlc.report.filled_bars == 0


def test_future_timestamps_of_a_daily_stock_skip_weekends(tmp_path: Path) -> None:
    ohlc = load_ohlc(write(good_frame(60, freq="B"), tmp_path / "x.parquet"))
    friday = pd.Timestamp("2021-04-02", tz="UTC")
    future = ohlc.future_timestamps(friday, 6)
    assert list(future.day_name()) == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Monday"]
    assert future[0] == pd.Timestamp("2021-04-05", tz="UTC")


def test_hourly_fx_with_weekend_gaps_is_an_exchange_calendar(tmp_path: Path) -> None:
    grid = pd.date_range("2021-03-07 22:00", "2021-04-30 21:00", freq="h", tz="UTC")
    weekday, hour = grid.day_of_week, grid.hour
    open_hours = ~((weekday == 5) | ((weekday == 4) & (hour >= 22)) | ((weekday == 6) & (hour < 22)))
    frame = good_frame(int(open_hours.sum())).assign(timestamp=grid[open_hours])
    ohlc = load_ohlc(write(frame, tmp_path / "fx.parquet"))
    assert (ohlc.freq, ohlc.calendar) == ("h", "exchange")
    assert ohlc.report.filled_bars == 0 and ohlc.season_length == 24
    future = ohlc.future_timestamps(pd.Timestamp("2021-04-30 20:00", tz="UTC"), 3)
    assert list(future) == [
        pd.Timestamp("2021-04-30 21:00", tz="UTC"),
        pd.Timestamp("2021-05-02 22:00", tz="UTC"),  # Sunday open, Saturday skipped
        pd.Timestamp("2021-05-02 23:00", tz="UTC"),
    ]
    assert ohlc.bars_per_year == pytest.approx(24 * 5 * 365 / 7)  # 120 trading hours a week


def test_fifteen_minute_bars_keep_their_alias(tmp_path: Path) -> None:
    ohlc = load_ohlc(write(good_frame(96 * 3, freq="15min"), tmp_path / "x.parquet"))
    assert (ohlc.freq, ohlc.season_length, ohlc.bars_per_year) == ("15min", 96, 365 * 96)


def test_shipped_daily_stock_is_business_days() -> None:
    ohlc = check_ohlc(SHIPPED / "MSFT.parquet")
    assert (ohlc.freq, ohlc.calendar, ohlc.report.filled_bars) == ("B", "exchange", 0)


def test_hourly_fx_is_exchange_and_shipped_hourly_crypto_continuous(tmp_path: Path) -> None:
    # FX hours: Sunday 22:00 .. Friday 21:00 UTC, closed over the weekend
    grid = pd.date_range("2017-01-01 22:00", "2017-02-24 21:00", freq="h", tz="UTC")
    weekday, hour = grid.day_of_week, grid.hour
    open_hours = ~((weekday == 5) | ((weekday == 4) & (hour >= 22)) | ((weekday == 6) & (hour < 22)))
    close = 1.05 + np.cumsum(np.random.default_rng(0).normal(0.0, 0.0005, int(open_hours.sum())))
    fx = pd.DataFrame(
        {"timestamp": grid[open_hours], "open": close, "high": close + 0.0004, "low": close - 0.0004}
    ).assign(close=close, volume=0.0)
    fx_ohlc = check_ohlc(write(fx, tmp_path / "EURUSD.parquet"))
    assert (fx_ohlc.freq, fx_ohlc.calendar, fx_ohlc.report.filled_bars) == ("h", "exchange", 0)
    btc = check_ohlc(SHIPPED / "BTCUSD.parquet")
    assert (btc.freq, btc.calendar, btc.report.filled_bars) == ("h", "continuous", 0)
    # 12 missing bars in 5 gaps, the longest 5 hours apart (4 missing bars), are filled and reported
    frame = pd.read_parquet(SHIPPED / "BTCUSD.parquet").iloc[:2000]
    missing = [100, 101, 102, 103, 400, 401, 402, 900, 901, 1500, 1501, 1800]
    holed = check_ohlc(write(frame.drop(index=missing), tmp_path / "BTC.parquet"))
    assert (holed.freq, holed.calendar) == ("h", "continuous")
    assert (holed.report.filled_bars, holed.report.gaps, holed.report.longest_gap) == (12, 5, 4)


# ------------------------------------------------------------------------------------------------
# CSV import


def _read_cdd(path: Path) -> list[dict[str, str]]:
    """The CryptoDataDownload export read independently: skip the banner, plain csv module."""
    with open(path, newline="") as handle:
        next(handle)
        return list(csv.DictReader(handle))


def test_exchange_csv_imports_completely_in_ascending_order(tmp_path: Path) -> None:
    source = CDD_CSV
    rows = _read_cdd(source)
    unix_ms = sorted({int(r["unix"]) for r in rows})
    path = import_csv(source, symbol="btcusd", data_dir=tmp_path)
    assert path == tmp_path / "BTCUSD.parquet"
    ohlc = load_ohlc("BTCUSD", tmp_path)
    assert len(ohlc) == len(unix_ms) == 300  # no duplicate timestamps, no gaps in this export
    assert ohlc.frame.index.is_monotonic_increasing
    assert (
        ohlc.frame.index[0]
        == pd.Timestamp(unix_ms[0], unit="ms", tz="UTC")
        == pd.Timestamp("2019-01-01 00:00", tz="UTC")
    )
    assert ohlc.frame.index[-1] == pd.Timestamp(unix_ms[-1], unit="ms", tz="UTC")
    by_time = {int(r["unix"]): r for r in rows}
    first = by_time[unix_ms[0]]
    assert ohlc.frame["close"].iloc[0] == float(first["close"])
    assert ohlc.frame["volume"].iloc[0] == float(first["Volume BTC"])  # base asset, not USD
    shipped = load_ohlc(SHIPPED / "BTCUSD.parquet").frame.loc[ohlc.frame.index]  # the fixture's source
    np.testing.assert_array_equal(ohlc.values(), shipped[list(TARGETS)].to_numpy())
    assert (ohlc.freq, ohlc.calendar) == ("h", "continuous")


def test_import_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    source = CDD_CSV
    path = import_csv(source, symbol="BTCUSD", data_dir=tmp_path)
    before = path.read_bytes()
    with pytest.raises(DataError, match="already exists; pass --force"):
        import_csv(source, symbol="btcusd", data_dir=tmp_path)
    assert import_csv(source, symbol="BTCUSD", data_dir=tmp_path, overwrite=True) == path
    assert path.read_bytes() == before


def test_import_handles_banner_newest_first_am_pm_dates_and_two_volumes(tmp_path: Path) -> None:
    frame = good_frame(30)
    lines = [
        "Timestamps are UTC timezone,https://www.CryptoDataDownload.com",
        "date,symbol,open,high,low,close,volume_btc,volume",
    ]
    for _, row in frame.iloc[::-1].iterrows():
        stamp = row["timestamp"].strftime("%Y-%m-%d %I-%p")
        values = ",".join(f"{row[c]:.6f}" for c in TARGETS)
        lines.append(f"{stamp},BTCUSD,{values},{row['volume']:.6f},{row['volume'] * 100:.6f}")
    source = tmp_path / "Coinbase_BTCUSD_1h.csv"
    source.write_text("\n".join(lines) + "\n")
    ohlc = load_ohlc(import_csv(source, symbol="BTCUSD", data_dir=tmp_path / "data"))
    assert ohlc.frame.index.equals(pd.DatetimeIndex(frame["timestamp"], name="timestamp").as_unit("ns"))
    np.testing.assert_allclose(ohlc.frame["volume"], frame["volume"], atol=1e-6)
    np.testing.assert_allclose(ohlc.values(), frame[list(TARGETS)].to_numpy(), atol=1e-6)


def test_import_semicolon_csv_with_capitalised_columns(tmp_path: Path) -> None:
    frame = good_frame(10, freq="D").rename(columns=str.capitalize)
    frame["Timestamp"] = frame["Timestamp"].dt.strftime("%Y-%m-%d")
    source = tmp_path / "x.csv"
    frame.rename(columns={"Timestamp": "Date"}).to_csv(source, sep=";", index=False)
    ohlc = load_ohlc(import_csv(source, symbol="X", data_dir=tmp_path))
    assert len(ohlc) == 10 and ohlc.freq == "D"


def test_import_writes_no_temporary_files(tmp_path: Path) -> None:
    import_csv(CDD_CSV, symbol="BTCUSD", data_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BTCUSD.parquet"]


def test_bad_symbol_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--symbol"):
        save_ohlc(good_frame(), symbol="../evil", data_dir=tmp_path)


# ------------------------------------------------------------------------------------------------
# list_symbols


def test_list_symbols_reports_rows_span_and_freq_and_survives_a_bad_file(tmp_path: Path) -> None:
    write(good_frame(48), tmp_path / "BTCUSD.parquet")
    write(good_frame(20, freq="B"), tmp_path / "aapl.parquet")
    (tmp_path / "BROKEN.parquet").write_bytes(b"junk")
    infos = {i.symbol: i for i in list_symbols(tmp_path)}
    assert list(infos) == ["AAPL", "BROKEN", "BTCUSD"]
    assert (infos["BTCUSD"].rows, infos["BTCUSD"].freq, infos["BTCUSD"].calendar) == (48, "h", "continuous")
    assert infos["BTCUSD"].first == pd.Timestamp("2021-03-01", tz="UTC")
    assert infos["AAPL"].freq == "B"
    assert infos["BROKEN"].error is not None and "cannot read parquet" in infos["BROKEN"].error


def test_list_symbols_of_a_missing_dir_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist; pass --data-dir"):
        list_symbols(tmp_path / "nope")


# ------------------------------------------------------------------------------------------------
# The shipped sample data


def test_shipped_data_is_small() -> None:
    total = sum(p.stat().st_size for p in SHIPPED.glob("*.parquet"))
    assert 0 < total < 10 * 2**20


@pytest.mark.parametrize(
    "symbol, freq, calendar",
    [
        ("ETHUSD", "D", "continuous"),
        ("BTCUSD", "h", "continuous"),
        ("AAPL", "B", "exchange"),
        ("MSFT", "B", "exchange"),
    ],
)
def test_shipped_symbols_load(symbol: str, freq: str, calendar: str) -> None:
    ohlc = load_ohlc(symbol, SHIPPED)
    assert (ohlc.freq, ohlc.calendar) == (freq, calendar)
    assert ohlc.report.duplicate_conflicting == 0 and ohlc.report.ohlc_inconsistent == 0
    assert np.isfinite(ohlc.values()).all() and (ohlc.values() > 0).all()


def test_shipped_daily_ethusd_has_about_1300_bars_2016_to_2020() -> None:
    ohlc = load_ohlc("ethusd", SHIPPED)
    assert 1250 <= ohlc.report.rows_read <= 1350
    assert ohlc.frame.index[0].year == 2016 and ohlc.frame.index[-1].year == 2020
    assert isinstance(ohlc, OHLC) and ohlc.season_length == 7
