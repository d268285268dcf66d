"""`chronobt data import|list|check` through Typer's CliRunner: exit codes, messages, files written."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from tests.data_cases import bad_csv_cases, bad_csv_names, bad_input_cases, bad_input_names, good_frame

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data"
#: A CryptoDataDownload-style hourly export made from data/BTCUSD.parquet (tests/fixtures/make_fixtures.py).
CDD_CSV = REPO / "tests" / "fixtures" / "BTCUSD_cdd_1h.csv"

runner = CliRunner()


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _assert_clean_failure(result, fragment: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert fragment.lower() in result.stderr.lower(), result.stderr
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    assert result.stdout == ""


Corpus = tuple[Path, dict[str, tuple[Path, str]]]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("bad")
    return root, {name: (path, fragment) for name, path, fragment in bad_input_cases(root)}


@pytest.fixture(scope="module")
def csv_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("badcsv")
    return root, {name: (path, fragment) for name, path, fragment in bad_csv_cases(root)}


def test_the_corpus_covers_at_least_fifteen_bad_inputs() -> None:
    assert len(bad_input_names()) >= 15 and len(set(bad_input_names())) == len(bad_input_names())


@pytest.mark.parametrize("name", bad_input_names())
def test_data_check_refuses_each_bad_input_with_one_clear_line(
    corpus: Corpus, tmp_path: Path, name: str
) -> None:
    root, cases = corpus
    path, fragment = cases[name]
    before = tree(root)
    result = runner.invoke(app, ["data", "check", str(path), "--data-dir", str(tmp_path)])
    _assert_clean_failure(result, fragment)
    assert path.name in result.stderr, name
    assert tree(root) == before and tree(tmp_path) == []  # nothing written anywhere


@pytest.mark.parametrize("name", bad_csv_names())
def test_data_import_refuses_each_bad_csv_and_writes_nothing(
    csv_corpus: Corpus, tmp_path: Path, name: str
) -> None:
    _, cases = csv_corpus
    path, fragment = cases[name]
    out = tmp_path / "data"
    result = runner.invoke(app, ["data", "import", str(path), "--symbol", "BAD", "--data-dir", str(out)])
    _assert_clean_failure(result, fragment)
    assert not out.exists() or tree(out) == [], name


def test_check_of_a_missing_symbol_lists_the_ones_available() -> None:
    result = runner.invoke(app, ["data", "check", "NOPE", "--data-dir", str(SHIPPED)])
    _assert_clean_failure(result, "available: AAPL, BTCUSD, ETHUSD, MSFT")


def test_check_with_too_few_bars_for_min_bars_fails(tmp_path: Path) -> None:
    good_frame(40).to_parquet(tmp_path / "X.parquet", index=False)
    ok = runner.invoke(app, ["data", "check", "x", "--data-dir", str(tmp_path), "--min-bars", "40"])
    assert ok.exit_code == 0, ok.output
    result = runner.invoke(app, ["data", "check", "x", "--data-dir", str(tmp_path), "--min-bars", "41"])
    _assert_clean_failure(result, "has 40 bars")


def test_check_with_a_gap_over_max_gap_fails_and_names_the_gap() -> None:
    result = runner.invoke(app, ["data", "check", "ETHUSD", "--data-dir", str(SHIPPED), "--max-gap", "11"])
    _assert_clean_failure(result, "gap of 12 missing D bars after 2019-03-19 00:00 exceeds --max-gap 11")


def test_check_json_reports_the_shipped_ethusd_fill() -> None:
    result = runner.invoke(app, ["data", "check", "ethusd", "--data-dir", str(SHIPPED), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["symbol"], payload["freq"], payload["calendar"]) == ("ETHUSD", "D", "continuous")
    report = payload["report"]
    assert payload["rows"] == report["rows_read"] + report["filled_bars"]
    assert (report["filled_bars"], report["longest_gap"]) == (12, 12)
    assert any("forward-filled" in line for line in report["warnings"])


def test_check_table_goes_to_stdout_and_names_findings(tmp_path: Path) -> None:
    frame = good_frame(30)
    frame.loc[4, "close"] = 0.0
    frame.loc[4, "low"] = 0.0
    frame.iloc[::-1].to_parquet(tmp_path / "Z.parquet", index=False)
    result = runner.invoke(app, ["data", "check", "Z", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "newest-first" in result.stdout
    assert "zero or negative prices" in result.stdout
    assert result.stderr == ""  # findings are the result here, not repeated as warnings


def test_import_of_an_exchange_csv(tmp_path: Path) -> None:
    out = tmp_path / "data"
    args = [
        "data",
        "import",
        str(CDD_CSV),
        "--symbol",
        "BTCUSD",
        "--data-dir",
        str(out),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rows"] == 300
    assert payload["first"] == "2019-01-01T00:00:00+00:00"
    assert payload["last"] == "2019-01-13T11:00:00+00:00"
    assert "newest-first" in result.stderr  # the repair is announced on stderr
    assert tree(out) == ["BTCUSD.parquet"]
    stored = pd.read_parquet(out / "BTCUSD.parquet")
    assert list(stored.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert stored["timestamp"].is_monotonic_increasing

    again = runner.invoke(app, args)
    _assert_clean_failure(again, "already exists; pass --force")
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output


def test_import_quiet_hides_warnings_but_not_errors(tmp_path: Path) -> None:
    args = ["data", "import", str(CDD_CSV), "--symbol", "E", "--data-dir", str(tmp_path), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and result.stderr == ""
    result = runner.invoke(app, args)
    _assert_clean_failure(result, "already exists")


def test_list_prints_a_table_of_the_shipped_symbols() -> None:
    result = runner.invoke(app, ["data", "list", "--data-dir", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    for symbol in ("AAPL", "BTCUSD", "ETHUSD", "MSFT"):
        assert symbol in result.stdout
    assert "20,111" in result.stdout  # BTCUSD rows, as data/README.md states


def test_list_json_uses_the_data_dir_from_the_environment(tmp_path: Path) -> None:
    good_frame(48).to_parquet(tmp_path / "abc.parquet", index=False)
    result = runner.invoke(app, ["data", "list", "--json"], env={"CHRONOBT_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    (info,) = json.loads(result.stdout)
    assert (info["symbol"], info["rows"], info["freq"]) == ("ABC", 48, "h")
    assert info["first"] == "2021-03-01T00:00:00+00:00"


def test_list_of_a_missing_data_dir_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "list", "--data-dir", str(tmp_path / "none")])
    _assert_clean_failure(result, "does not exist")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "check", str(tmp_path / "x.parquet"), "--debug"])
    assert result.exit_code == 1
    assert result.exception is not None and "file not found" in str(result.exception)


@pytest.mark.parametrize("command", ["import", "list", "check"])
def test_every_data_command_has_help(command: str) -> None:
    result = runner.invoke(app, ["data", command, "--help"])
    assert result.exit_code == 0
    assert "--data-dir" in result.stdout and "--json" in result.stdout


@pytest.mark.parametrize("command", ["import", "check"])
def test_a_negative_max_gap_is_the_run_commands_usage_error_before_any_file_is_read(
    command: str, tmp_path: Path
) -> None:
    target = [str(tmp_path / "missing.csv"), "--symbol", "X"] if command == "import" else ["NOSUCH"]
    args = ["data", command, *target, "--data-dir", str(tmp_path), "--max-gap", "-1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    # the message of backtest/sweep/forecast (RunOptions), not a second wording, and no file error
    assert result.stderr == "error: --max-gap -1: expected 0 or a positive number of bars\n"
    assert list(tmp_path.iterdir()) == []


def test_the_data_commands_share_the_run_commands_max_gap_option() -> None:
    from chronobt.cli import backtest as backtest_cli
    from chronobt.cli import data as data_cli

    def max_gap_option(command: object) -> object:
        hints = typing.get_type_hints(command, include_extras=True)
        return hints["max_gap"]

    shared = max_gap_option(backtest_cli.backtest)
    assert max_gap_option(data_cli.import_cmd) == shared
    assert max_gap_option(data_cli.check_cmd) == shared
