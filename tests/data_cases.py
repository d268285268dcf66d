"""A reusable corpus of bad OHLC inputs, each written into a temporary folder.

``bad_input_cases(tmp)`` returns ``(name, path, fragment)`` for inputs that any command taking
``SYMBOL|PATH`` (``data check``, ``backtest``, ``forecast``, ``load_ohlc``) must refuse with exit 1 and a
message containing ``fragment`` (compare case-insensitively), except ``missing_file``: backtest, sweep and
forecast refuse a path to no file as a usage error (exit 2) before the model loads.
``bad_csv_cases(tmp)`` does the same for ``chronobt data import``. Every case fails with default
options; nothing needs a model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

Case = tuple[str, Path, str]


def good_frame(n: int = 48, *, freq: str = "h", start: str = "2021-03-01") -> pd.DataFrame:
    """A small consistent OHLC frame with a ``timestamp`` column (UTC), a random walk around 100."""
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.3, n))
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq=freq, tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.uniform(1, 10, n),
        }
    )


def _parquet(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.to_parquet(path, index=False)


def _with(column: str, values: list[object], *, dtype: object = object) -> pd.DataFrame:
    """``good_frame()`` with the first rows of ``column`` replaced (a text column when given text)."""
    frame = good_frame()
    col = frame[column].astype(str if isinstance(values[0], str) else dtype)
    col.iloc[: len(values)] = values
    frame[column] = col
    return frame


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _mkdir(path: Path) -> None:
    path.mkdir()


def _nothing(path: Path) -> None:
    return None


def _strings(values: list[str]) -> pd.DataFrame:
    frame = good_frame(len(values))
    frame["timestamp"] = values
    return frame


def _past_2262_arrow(path: Path) -> None:
    """A ``timestamp[us]`` column (what pyarrow and pandas 3 write) holding one bar in 2300."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = good_frame()
    stamps = list(frame["timestamp"].dt.tz_localize(None).dt.to_pydatetime())
    stamps[40] = stamps[40].replace(year=2300)
    columns = {t: frame[t] for t in ("open", "high", "low", "close")}
    table = pa.table({"timestamp": pa.array(stamps, type=pa.timestamp("us", tz="UTC")), **columns})
    pq.write_table(table, path)


def _unix_seconds(frame: pd.DataFrame) -> pd.Series:
    return (frame["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def _zoned_text(frame: pd.DataFrame) -> pd.Series:
    return frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").astype(object)


def _corrupt_parquet(path: Path) -> None:
    good_frame().to_parquet(path, index=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated: no footer


Spec = tuple[str, str, Callable[[Path], None], str]  # name, file name, writer, expected fragment


def bad_input_cases(tmp: Path) -> list[Case]:
    """Write each bad parquet-side input into ``tmp``; return ``(name, path, expected fragment)``."""
    return _write(tmp, _input_specs())


def bad_csv_cases(tmp: Path) -> list[Case]:
    """Write each bad CSV export into ``tmp``; return ``(name, path, fragment)`` for ``data import``."""
    return _write(tmp, _csv_specs())


def bad_input_names() -> list[str]:
    """Case names of :func:`bad_input_cases` (for ``pytest.mark.parametrize`` ids); writes nothing."""
    return [spec[0] for spec in _input_specs()]


def bad_csv_names() -> list[str]:
    """Case names of :func:`bad_csv_cases`; writes nothing."""
    return [spec[0] for spec in _csv_specs()]


def _write(tmp: Path, specs: list[Spec]) -> list[Case]:
    cases: list[Case] = []
    for name, filename, write, fragment in specs:
        path = tmp / filename
        write(path)
        cases.append((name, path, fragment))
    return cases


def _input_specs() -> list[Spec]:
    hourly = good_frame(48)
    off_grid = hourly.copy()
    off_grid.loc[10, "timestamp"] += pd.Timedelta(minutes=30)
    no_low = hourly.drop(columns=["low"])
    no_time = hourly.drop(columns=["timestamp"])
    two_closes = hourly.rename(columns={"close": "BTC:close"}).assign(**{"ETH:close": hourly["close"]})
    unix_seconds = (hourly["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    mixed_units = hourly.assign(timestamp=unix_seconds.astype("int64"), date=hourly["timestamp"].astype(str))
    mixed_units.loc[5, "timestamp"] = mixed_units.loc[5, "timestamp"] * 1000 + 3 * 3_600_000  # ms, 3 h off
    same_time = hourly.assign(timestamp=hourly["timestamp"].iloc[0])
    past_text = hourly.assign(timestamp=_zoned_text(hourly))
    past_text.loc[40, "timestamp"] = "2300-01-01T00:00:00+00:00"
    past_unix = hourly.assign(timestamp=_unix_seconds(hourly).astype("int64"))
    past_unix.loc[40, "timestamp"] = 10_000_000_000  # seconds: 2286-11-20
    notadate = hourly.assign(timestamp=_zoned_text(hourly))
    notadate.loc[7, "timestamp"] = "notadate"
    return [
        ("missing_file", "absent.parquet", _nothing, "file not found"),
        ("zero_byte_file", "zero.parquet", _bytes(b""), "empty (0 bytes)"),
        ("corrupt_parquet", "corrupt.parquet", _corrupt_parquet, "cannot read parquet"),
        ("not_parquet_bytes", "text.parquet", _bytes(b"timestamp,open\n1,2\n"), "cannot read parquet"),
        ("wrong_extension", "prices.json", _bytes(b'{"open": [1]}'), "unsupported extension"),
        ("csv_given_to_loader", "prices.csv", _bytes(b"timestamp,open,high,low,close\n"), "data import"),
        ("directory", "folder.parquet", _mkdir, "is a directory"),
        ("no_rows", "norows.parquet", _parquet(hourly.iloc[:0]), "has no rows"),
        ("missing_column", "nolow.parquet", _parquet(no_low), "missing required column(s) 'low'"),
        ("ambiguous_column", "twocloses.parquet", _parquet(two_closes), "ambiguous"),
        ("no_timestamp_column", "notime.parquet", _parquet(no_time), "no timestamp column"),
        ("non_numeric_price", "text_price.parquet", _parquet(_with("close", ["abc"])), "non-numeric"),
        ("nan_price", "nan_price.parquet", _parquet(_with("open", [np.nan], dtype=float)), "non-finite"),
        ("inf_price", "inf_price.parquet", _parquet(_with("high", [np.inf], dtype=float)), "non-finite"),
        (
            "all_nan_close",
            "allnan.parquet",
            _parquet(hourly.assign(close=np.nan)),
            "'close' has all 48 rows with missing",
        ),
        ("absurd_price", "huge.parquet", _parquet(_with("low", [1e308], dtype=float)), "absurd"),
        (
            "unparseable_timestamps",
            "badtime.parquet",
            _parquet(_strings(["2021-03-01 00:00", "2021-03-01 01:00", "not a date"])),
            "unparseable timestamps",
        ),
        (
            "mixed_timestamp_formats",
            "mixedfmt.parquet",
            _parquet(_strings(["2021-03-01 00:00", "2021-03-01 01:00", "03/01/2021 02:00"])),
            "mixes date formats",
        ),
        (
            "timezone_mixed_column",
            "mixedtz.parquet",
            _parquet(_strings(["2021-03-01 00:00", "2021-03-01 01:00+02:00", "2021-03-01 02:00"])),
            "mixes time zones",
        ),
        (
            "utc_offsets_mixed",
            "mixedoffsets.parquet",
            _parquet(
                _strings(["2021-03-01T00:00+00:00", "2021-03-01T01:00+02:00", "2021-03-01T02:00+00:00"])
            ),
            "mixes",
        ),
        ("missing_timestamps", "nattime.parquet", _parquet(_with("timestamp", [None])), "missing timestamps"),
        ("unix_units_mixed", "units.parquet", _parquet(mixed_units), "data row 5: column 'timestamp'"),
        ("single_row", "onerow.parquet", _parquet(hourly.iloc[:1]), "only 1 distinct timestamp"),
        ("all_rows_one_timestamp", "sametime.parquet", _parquet(same_time), "only 1 distinct timestamp"),
        ("off_grid_timestamp", "offgrid.parquet", _parquet(off_grid), "off the regular h grid"),
        ("symbol_dot_dot", "...parquet", _parquet(hourly), "'..' is not a usable symbol"),
        ("symbol_leading_dot", ".x.parquet", _parquet(hourly), "'.x' is not a usable symbol"),
        ("symbol_with_space", "my data.parquet", _parquet(hourly), "data import"),
        ("timestamp_past_2262", "future.parquet", _past_2262_arrow, "outside 1677-09-22 .. 2262-04-11"),
        (
            "text_timestamp_past_2262",
            "futuretext.parquet",
            _parquet(past_text),
            "outside 1677-09-22 .. 2262-04-11 (what a nanosecond timestamp holds) (first at data row 40",
        ),
        ("unix_time_past_2262", "futureunix.parquet", _parquet(past_unix), "unix times outside 1677-09-22"),
        (
            "lone_bad_timestamp_among_zoned",
            "notadate.parquet",
            _parquet(notadate),
            "1 unparseable timestamps (first at data row 7: 'notadate')",
        ),
    ]


def _csv_with(frame: pd.DataFrame, column: str, row: int, value: str, *, zoned: bool) -> bytes:
    """``frame`` as CSV text, its timestamps zoned (``+00:00``) or naive, one cell of ``column`` replaced."""
    text = frame.assign(
        timestamp=_zoned_text(frame) if zoned else frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M")
    )
    text[column] = text[column].astype(object)
    text.loc[row, column] = value
    return text.to_csv(index=False).encode()


def _csv_specs() -> list[Spec]:
    good = good_frame(24)
    text = good.to_csv(index=False)
    lines = text.splitlines()
    ragged = "\n".join([*lines[:5], lines[5] + ",1,2,3", *lines[6:]]) + "\n"
    return [
        ("missing_csv", "absent.csv", _nothing, "file not found"),
        ("zero_byte_csv", "zero.csv", _bytes(b""), "empty (0 bytes)"),
        ("blank_csv", "blank.csv", _bytes(b"\n\n  \n"), "no rows"),
        ("csv_directory", "folder.csv", _mkdir, "is a directory"),
        ("parquet_given_to_import", "prices.parquet", _parquet(good), "expected a .csv"),
        ("binary_csv", "binary.csv", _bytes(bytes(range(256)) * 8), "csv"),
        (
            "unmappable_columns",
            "unmappable.csv",
            _bytes(b"when,first,top,bottom,last\n2021-01-01,1,2,0.5,1.5\n"),
            "found columns: 'when', 'first', 'top', 'bottom', 'last'",
        ),
        ("ragged_rows", "ragged.csv", _bytes(ragged.encode()), "cannot parse csv"),
        (
            "non_numeric_csv",
            "textprice.csv",
            _bytes(_with("close", ["n/a?"]).to_csv(index=False).encode()),
            "non-numeric",
        ),
        (
            "header_only",
            "headeronly.csv",
            _bytes(b"Date,Open,High,Low,Close\n"),
            "has no rows",
        ),
        (
            "csv_lone_bad_timestamp_among_zoned",
            "notadate.csv",
            _bytes(_csv_with(good, "timestamp", 2, "notadate", zoned=True)),
            "unparseable timestamps (first at line 4: 'notadate')",  # header = line 1
        ),
        (
            "csv_timestamp_past_2262",
            "future.csv",
            _bytes(_csv_with(good, "timestamp", 5, "2300-01-01 00:00", zoned=False)),
            "(first at line 7: '2300-01-01 00:00')",
        ),
        (
            "csv_unix_time_past_2262",
            "futureunix.csv",
            _bytes(
                b"Banner line\n"
                + good.assign(timestamp=_unix_seconds(good))
                .to_csv(index=False)
                .replace(str(_unix_seconds(good).iloc[9]), "99999999999", 1)
                .encode()
            ),
            "(first at line 12: 99999999999)",  # banner line 1, header line 2
        ),
        (
            "csv_case_twins_conflict",
            "twins.csv",
            _bytes(
                b"timestamp,open,high,low,close,Close\n"
                + b"".join(
                    f"2021-03-01 {h:02d}:00,100,102,99,{101 + h}.5,{101 + h + (h == 2)}.5\n".encode()
                    for h in range(6)
                )
            ),
            "conflict in 1 rows (lines 4; line 4: 103.5 vs 104.5)",
        ),
    ]
