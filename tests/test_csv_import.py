"""CSV exports as exchanges write them: unit switches, case-twin columns, zones, repairs reported."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.data import check_ohlc, import_csv, import_csv_report, load_ohlc
from chronobt.errors import DataError
from tests.data_cases import good_frame

runner = CliRunner()


def gemini_csv(path: Path, *, n: int = 200, switch: int = 120, bad_date_row: int | None = None) -> Path:
    """Newest first; ``Unix Timestamp`` in milliseconds for the first ``switch`` rows, then seconds."""
    frame = good_frame(n).iloc[::-1].reset_index(drop=True)
    seconds = ((frame["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy()
    unix = np.where(np.arange(n) < switch, seconds * 1000, seconds)
    dates = frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    if bad_date_row is not None:
        dates.iloc[bad_date_row] = (frame["timestamp"].iloc[bad_date_row] + pd.Timedelta(hours=3)).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
    out = pd.DataFrame({"Unix Timestamp": unix, "Date": dates, "Symbol": "ETHUSD"})
    for col in ("open", "high", "low", "close", "volume"):
        out[col.capitalize()] = frame[col]
    path.write_text("Gemini export\n" + out.to_csv(index=False))
    return path


def test_unix_times_switching_from_ms_to_seconds_are_read_row_by_row(tmp_path: Path) -> None:
    path = import_csv(gemini_csv(tmp_path / "gemini.csv"), symbol="ETHUSD", data_dir=tmp_path)
    ohlc = load_ohlc(path)
    assert list(ohlc.index) == list(good_frame(200)["timestamp"])
    assert ohlc.report.warnings() == []


def test_unix_times_disagreeing_with_the_date_column_name_the_row(tmp_path: Path) -> None:
    csv = gemini_csv(tmp_path / "gemini.csv", bad_date_row=57)
    # banner line 1, header line 2: data row 57 is line 60 of the file
    pattern = r"line 60: column 'Unix Timestamp' (\d+) .* column 'Date' says"
    with pytest.raises(DataError, match=pattern) as err:
        import_csv(csv, symbol="ETHUSD", data_dir=tmp_path)
    line = csv.read_text().splitlines()[59]
    assert line.startswith(err.value.args[0].split("'Unix Timestamp' ")[1].split()[0] + ",")
    assert not (tmp_path / "ETHUSD.parquet").exists()


def twin_csv(path: Path, *, conflict_rows: tuple[int, ...] = ()) -> Path:
    """``open..close`` filled in the first half of the rows, ``Open..Close`` in the second half."""
    frame = good_frame(40)
    out = pd.DataFrame({"timestamp": frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")})
    half = np.arange(40) < 20
    for col in ("open", "high", "low", "close"):
        out[col] = frame[col].where(half)
    for col in ("open", "high", "low", "close"):
        out[col.capitalize()] = frame[col].where(~half)
    for row in conflict_rows:
        out.loc[row, "Close"] = out.loc[row, "close"] + 1.0
    path.write_text(out.to_csv(index=False))
    return path


def test_columns_differing_only_in_case_are_merged_when_they_never_conflict(tmp_path: Path) -> None:
    path, report = import_csv_report(twin_csv(tmp_path / "twins.csv"), symbol="T", data_dir=tmp_path)
    stored = load_ohlc(path)
    expected = good_frame(40).set_index("timestamp")[["open", "high", "low", "close"]]
    np.testing.assert_allclose(stored.values(), expected.to_numpy())
    assert any("'close', 'Close' differ only in case; merged" in line for line in report.warnings())


def test_conflicting_case_twin_columns_name_the_rows(tmp_path: Path) -> None:
    csv = twin_csv(tmp_path / "twins.csv", conflict_rows=(3, 7))
    with pytest.raises(
        DataError, match=r"'close' and 'Close' differ only in case and conflict in 2 rows"
    ) as err:
        import_csv(csv, symbol="T", data_dir=tmp_path)
    message = str(err.value)
    assert "lines 5, 9; line 5: " in message and "cannot find" not in message  # the header is line 1
    close = twin_csv(tmp_path / "again.csv").read_text().splitlines()[4].split(",")[4]
    assert f"line 5: {float(close)!r} vs {float(close) + 1.0!r}" in message and "np.float64" not in message


def test_import_prints_its_own_repairs_not_the_clean_stored_file(tmp_path: Path) -> None:
    frame = good_frame(48).sample(frac=1.0, random_state=3)
    csv = tmp_path / "shuffled.csv"
    frame.to_csv(csv, index=False)
    args = ["data", "import", str(csv), "-s", "S", "--data-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rows were out of time order; sorted ascending" in result.stdout
    assert "import repairs" in result.stdout
    as_json = runner.invoke(app, [*args, "--force", "--json"])
    summary = json.loads(as_json.stdout)
    assert summary["import_report"]["unsorted_rows"] > 0
    assert summary["report"]["unsorted_rows"] == 0  # the stored file is sorted


def test_naive_timestamps_are_utc_with_one_warning_naming_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "naive.parquet"
    frame = good_frame(48)
    frame.assign(timestamp=frame["timestamp"].dt.tz_localize(None)).to_parquet(path, index=False)
    with caplog.at_level(logging.WARNING, logger="chronobt"):
        ohlc = load_ohlc(path)
    assert list(ohlc.index) == list(frame["timestamp"])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith(str(path)) and "no time zone; taken as UTC" in lines[0]
    assert check_ohlc(good_frame_path(tmp_path)).report.warnings() == []  # zoned: no warning


def good_frame_path(tmp_path: Path) -> Path:
    path = tmp_path / "aware.parquet"
    good_frame(48).to_parquet(path, index=False)
    return path


def local_csv(path: Path, stamps: list[str]) -> Path:
    frame = good_frame(len(stamps)).assign(timestamp=stamps)
    frame.to_csv(path, index=False)
    return path


def test_tz_converts_local_times_to_utc(tmp_path: Path) -> None:
    csv = local_csv(tmp_path / "ny.csv", [f"2021-03-01 {h:02d}:00" for h in range(9, 17)])
    path, report = import_csv_report(csv, symbol="NY", data_dir=tmp_path, tz="America/New_York")
    assert load_ohlc(path).index[0] == pd.Timestamp("2021-03-01 14:00", tz="UTC")
    assert not report.naive_timestamps and report.tz == "America/New_York"


@pytest.mark.parametrize(
    ("stamps", "why"),
    [
        (["2021-11-07 00:30", "2021-11-07 01:30", "2021-11-07 02:30"], "line 3 is ambiguous"),
        (["2021-03-14 01:00", "2021-03-14 02:00", "2021-03-14 03:00"], "line 3 does not exist"),
    ],
)
def test_tz_refuses_dst_ambiguous_or_nonexistent_local_times(
    tmp_path: Path, stamps: list[str], why: str
) -> None:
    csv = local_csv(tmp_path / "dst.csv", stamps)
    with pytest.raises(DataError, match=why):
        import_csv(csv, symbol="D", data_dir=tmp_path, tz="America/New_York")


def test_tz_with_zoned_timestamps_is_an_error_only_when_it_conflicts(tmp_path: Path) -> None:
    csv = local_csv(tmp_path / "z.csv", ["2021-03-01T09:00-05:00", "2021-03-01T10:00-05:00"])
    path = import_csv(csv, symbol="Z", data_dir=tmp_path, tz="America/New_York")
    assert load_ohlc(path).index[0] == pd.Timestamp("2021-03-01 14:00", tz="UTC")
    with pytest.raises(DataError, match=r"already carry a zone .* drop --tz"):
        import_csv(csv, symbol="Z2", data_dir=tmp_path, tz="Europe/London")
    with pytest.raises(DataError, match="unknown time zone"):
        import_csv(csv, symbol="Z3", data_dir=tmp_path, tz="Mars/Olympus")


def test_import_cli_takes_tz(tmp_path: Path) -> None:
    csv = local_csv(tmp_path / "ny.csv", [f"2021-03-01 {h:02d}:00" for h in range(9, 17)])
    args = ["data", "import", str(csv), "-s", "NY", "--tz", "America/New_York", "--data-dir", str(tmp_path)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["first"] == "2021-03-01T14:00:00+00:00"


def test_a_parquet_dataset_folder_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "ETHUSD.parquet"
    folder.mkdir()
    good_frame(24).to_parquet(folder / "part-0.parquet", index=False)
    good_frame(24, start="2021-03-02").to_parquet(folder / "part-1.parquet", index=False)
    result = runner.invoke(app, ["data", "check", "ETHUSD", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "is a directory of 2 parquet part files" in result.stderr
    assert "combine the parts into one file" in result.stderr and "internal error" not in result.stderr


def test_an_unreadable_file_is_a_data_error_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = good_frame_path(tmp_path)

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pd, "read_parquet", denied)
    result = runner.invoke(app, ["data", "check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}: permission denied reading the file; make it readable")
    monkeypatch.setattr("builtins.open", denied)
    csv = tmp_path / "x.csv"
    csv.write_text("timestamp,open,high,low,close\n")
    with pytest.raises(DataError, match="permission denied reading the file"):
        import_csv(csv, symbol="X", data_dir=tmp_path)


def test_quiet_data_commands_print_nothing_on_success_but_still_report_errors(tmp_path: Path) -> None:
    csv = tmp_path / "naive.csv"
    frame = good_frame(48)
    frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M")).iloc[::-1].to_csv(
        csv, index=False
    )
    for args in (
        ["data", "import", str(csv), "-s", "Q", "--data-dir", str(tmp_path), "-q"],
        ["data", "check", "Q", "--data-dir", str(tmp_path), "-q"],
        ["data", "list", "--data-dir", str(tmp_path), "-q"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert result.stderr == "" and result.stdout == ""  # as every command: nothing on success
    failed = runner.invoke(app, ["data", "check", "NOPE", "--data-dir", str(tmp_path), "-q"])
    assert failed.exit_code == 1 and failed.stderr.startswith("error: no data for symbol 'NOPE'")


def _export_with_a_repeated_stretch(path: Path) -> Path:
    """Two exports glued: rows 0-29 in ``open..close`` (rows 20-29 also hold an older ``Open..Close``
    copy that differs), then rows 20-39 again in ``Open..Close``: the repeated timestamps 20-29 come
    back with capitalized values equal to the lowercase ones."""
    frame = good_frame(40)
    stamps = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    first = pd.DataFrame({"timestamp": stamps[:30]})
    for col in ("open", "high", "low", "close"):
        first[col] = frame[col][:30]
        first[col.capitalize()] = np.where(np.arange(30) >= 20, frame[col][:30] * 1.01, np.nan)
    second = pd.DataFrame({"timestamp": stamps[20:]})
    for col in ("open", "high", "low", "close"):
        second[col] = np.nan
        second[col.capitalize()] = frame[col][20:]
    pd.concat([first, second]).to_csv(path, index=False)
    return path


def test_case_twin_conflicts_only_in_earlier_copies_of_repeated_timestamps_are_not_conflicts(
    tmp_path: Path,
) -> None:
    csv = _export_with_a_repeated_stretch(tmp_path / "glued.csv")
    path, report = import_csv_report(csv, symbol="T", data_dir=tmp_path)
    expected = good_frame(40)[["open", "high", "low", "close"]].to_numpy()
    np.testing.assert_allclose(load_ohlc(path).values(), expected)
    warnings = " ".join(report.warnings())
    assert "10 conflicting rows are earlier copies of a repeated timestamp; the last copy wins" in warnings
    assert "10 exact duplicate rows dropped" in warnings  # the earlier copies, once merged


@pytest.mark.parametrize("choice", ["lower", "capitalized"])
def test_a_real_case_twin_conflict_names_columns_and_the_chosen_set_wins(tmp_path: Path, choice: str) -> None:
    csv = twin_csv(tmp_path / "twins.csv", conflict_rows=(3, 7))
    with pytest.raises(DataError, match=r"choose the set that wins with --columns lower\|capitalized"):
        import_csv(csv, symbol="T", data_dir=tmp_path)
    path, report = import_csv_report(csv, symbol="T", data_dir=tmp_path, columns=choice)
    close = good_frame(40)["close"].to_numpy()
    expected = close[3] + (1.0 if choice == "capitalized" else 0.0)
    assert load_ohlc(path).frame["close"].iloc[3] == pytest.approx(expected)
    winner = "Close" if choice == "capitalized" else "close"
    assert f"2 conflicting rows took {winner!r} (--columns {choice})" in " ".join(report.warnings())


def test_an_unknown_column_set_is_a_usage_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chronobt.cli import app

    csv = twin_csv(tmp_path / "twins.csv")
    args = ["data", "import", str(csv), "-s", "T", "--data-dir", str(tmp_path), "--columns", "upper"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--columns 'upper'" in result.stderr
    assert not (tmp_path / "T.parquet").exists()
