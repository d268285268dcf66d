"""Data inputs from a shared folder: symbols safe in paths, hashes of the bytes used, no file aborting a
listing, and a full or read-only disk reported as one line."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt import atomic
from chronobt.cli import app
from chronobt.data import (
    check_ohlc,
    check_symbol,
    import_csv,
    is_symbol,
    list_symbols,
    resolve_path,
    save_ohlc,
    symbol_of_file,
)
from chronobt.data import store as data_store
from chronobt.errors import ConfigError, DataError, UnsafePathError, WriteError
from tests.data_cases import bad_input_cases, good_frame

runner = CliRunner()


def _single_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert "Traceback" not in result.output and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# --- symbols used in paths ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["...parquet", ".x.parquet", "a b.parquet"])
def test_a_file_whose_stem_is_no_symbol_is_refused_naming_the_file_and_the_import_way_out(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / "sec" / name
    path.parent.mkdir()
    good_frame().to_parquet(path, index=False)
    with pytest.raises(DataError) as info:
        check_ohlc(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the file name ") and "chronobt data import" in message
    assert "--symbol" in message and "\n" not in message


@pytest.mark.parametrize("text", ["..", ".", ".hidden", "-rf", "a b", "ETH*"])
def test_a_symbol_argument_that_is_not_safe_in_a_path_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(DataError, match="not a usable symbol"):
        resolve_path(text, tmp_path)


@pytest.mark.parametrize("text", ["", "  "])
def test_an_empty_symbol_is_a_usage_error_not_the_current_folder(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="empty symbol"):
        resolve_path(text, tmp_path)


def test_the_symbol_rule_is_exported_and_shared_by_import_and_files() -> None:
    assert all(is_symbol(s) for s in ("ETHUSD", "BRK.B", "EURUSD=X", "btc-usd_1h"))
    assert not any(is_symbol(s) for s in ("", ".", "..", ".x", "a/b", "a\\b", "a b", "_x"))
    assert symbol_of_file(Path("data/eth-usd.parquet")) == "ETH-USD"
    assert check_symbol("ethusd") == "ETHUSD"
    with pytest.raises(ConfigError, match=r"--symbol '\.\.'"):
        check_symbol("..")


def test_forecast_of_a_dot_dot_file_writes_nothing_at_the_output_root(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    sec, out = tmp_path / "sec", tmp_path / "out"
    sec.mkdir()
    good_frame(300).to_parquet(sec / "...parquet", index=False)
    args = ["forecast", str(sec / "...parquet"), "--horizon", "8", "--context", "128"]
    args += ["--model", str(tiny_model_dir), "--device", "cpu", "--compile", "off", "--output-dir", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output  # a usage error, found before the model loads
    assert "is not a usable symbol" in _single_error_line(result)
    assert not out.exists()


# --- the manifest's hash is of the bytes that were parsed ---------------------------------------------


def test_the_hash_is_of_the_bytes_parsed_even_when_the_file_is_replaced_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "AAA.parquet"
    good_frame(48).to_parquet(path, index=False)
    parsed = hashlib.sha256(path.read_bytes()).hexdigest()
    real_validate = data_store.validate_frame

    def validate_then_swap(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real_validate(*args, **kwargs)
        good_frame(96).to_parquet(path, index=False)  # another writer replaces the file
        return out

    monkeypatch.setattr(data_store, "validate_frame", validate_then_swap)
    ohlc = check_ohlc(path)
    assert len(ohlc) == 48 and ohlc.sha256 == parsed
    assert hashlib.sha256(path.read_bytes()).hexdigest() != parsed


# --- one bad file never aborts `data list` ------------------------------------------------------------


def test_list_symbols_lists_a_file_past_2262_with_its_error_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    cases = {name: path for name, path, _ in bad_input_cases(tmp_path / "bad")}
    data = tmp_path / "data"
    data.mkdir()
    good_frame(48).to_parquet(data / "GOOD.parquet", index=False)
    for name in ("timestamp_past_2262", "unix_time_past_2262"):
        (data / f"{name.upper()}.parquet").write_bytes(cases[name].read_bytes())
    infos = {i.symbol: i for i in list_symbols(data)}
    assert infos["GOOD"].error is None and infos["GOOD"].rows == 48
    for name in ("TIMESTAMP_PAST_2262", "UNIX_TIME_PAST_2262"):
        error = infos[name].error
        assert error is not None and "outside 1677-09-22 .. 2262-04-11" in error and "data row 40" in error


def test_list_symbols_survives_a_failure_no_check_foresaw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for symbol in ("AAA", "BBB"):
        good_frame(48).to_parquet(tmp_path / f"{symbol}.parquet", index=False)
    real_validate = data_store.validate_frame

    def fails_on_aaa(raw, *, source, **kwargs):  # type: ignore[no-untyped-def]
        if source.endswith("AAA.parquet"):
            raise RuntimeError("something unforeseen")
        return real_validate(raw, source=source, **kwargs)

    monkeypatch.setattr(data_store, "validate_frame", fails_on_aaa)
    infos = {i.symbol: i for i in list_symbols(tmp_path)}
    assert infos["BBB"].error is None
    assert infos["AAA"].error is not None and "RuntimeError: something unforeseen" in infos["AAA"].error


def test_data_list_shows_a_file_past_2262_with_error_set_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    cases = {name: path for name, path, _ in bad_input_cases(tmp_path / "bad")}
    data = tmp_path / "data"
    data.mkdir()
    good_frame(48).to_parquet(data / "GOOD.parquet", index=False)
    (data / "FUTURE.parquet").write_bytes(cases["text_timestamp_past_2262"].read_bytes())
    result = runner.invoke(app, ["data", "list", "--json", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    rows = {row["symbol"]: row for row in json.loads(result.stdout)}
    assert rows["GOOD"]["error"] is None and "2262" in rows["FUTURE"]["error"]
    check = runner.invoke(app, ["data", "check", "FUTURE", "--data-dir", str(data)])
    assert check.exit_code == 1 and "FUTURE.parquet" in _single_error_line(check)


# --- a full, read-only or linked destination ----------------------------------------------------------


def _failing(code: int):  # type: ignore[no-untyped-def]
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("target", "code", "cause"),
    [
        ("write_table", errno.ENOSPC, "the disk is full"),
        ("replace", errno.EROFS, "the file system is read-only"),
        ("replace", errno.EACCES, "permission denied"),
    ],
)
def test_data_import_on_a_full_or_read_only_disk_is_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, code: int, cause: str
) -> None:
    csv = tmp_path / "x.csv"
    good_frame(48).to_csv(csv, index=False)
    data = tmp_path / "data"
    monkeypatch.setattr(atomic.pq if target == "write_table" else atomic.os, target, _failing(code))
    result = runner.invoke(app, ["data", "import", str(csv), "--symbol", "BAD", "--data-dir", str(data)])
    assert result.exit_code == 1, result.output
    line = _single_error_line(result)
    assert line.startswith(f"error: {data / 'BAD.parquet'}: cannot write ({cause}); ")
    assert "internal error" not in line and "Errno" not in line
    assert sorted(p.name for p in data.iterdir()) == []


def test_save_over_a_symlinked_data_file_is_refused_and_the_target_untouched(tmp_path: Path) -> None:
    shared = tmp_path / "shared.parquet"
    good_frame(48).to_parquet(shared, index=False)
    before = shared.read_bytes()
    data = tmp_path / "data"
    data.mkdir()
    (data / "AAA.parquet").symlink_to(shared)
    with pytest.raises(UnsafePathError, match=r"AAA\.parquet: is a symbolic link"):
        save_ohlc(good_frame(24), symbol="AAA", data_dir=data, overwrite=True)
    assert shared.read_bytes() == before and (data / "AAA.parquet").is_symlink()


def test_import_write_errors_are_typed_for_library_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "x.csv"
    good_frame(48).to_csv(csv, index=False)
    monkeypatch.setattr(atomic.os, "replace", _failing(errno.ENOSPC))
    with pytest.raises(WriteError, match="free space on the disk holding"):
        import_csv(csv, symbol="AAA", data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / "AAA.parquet").exists()
    assert pd.read_csv(csv).shape == (48, 6)
