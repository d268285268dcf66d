"""What a user and cron see: capped contexts, log files, exit codes, permissions, help, tables, progress."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.cli.progress import rate_text
from chronobt.config import BacktestConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.runs.backtest import run_backtest
from tests.synthetic import ohlc_frame, write_symbol

SMALL = ["--horizon", "8", "--windows", "4", "--compile", "off"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


def _backtest(tmp_path: Path, model: Path, *extra: str) -> object:
    return CliRunner().invoke(
        app,
        [
            "backtest",
            "AAA",
            "--model",
            str(model),
            *SMALL,
            "--data-dir",
            str(tmp_path / "data"),
            "--output-dir",
            str(tmp_path / "out"),
            *extra,
        ],
    )


def test_context_beyond_the_models_maximum_is_capped_for_the_whole_window(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    """The tiny model sees 512 bars: the augmentation, scale and baselines must see the same 512."""
    frame = ohlc_frame(1400, seed=4)
    data = tmp_path / "data"
    data.mkdir()
    frame.to_parquet(data / "AAA.parquet", index=False)
    config = BacktestConfig(
        symbols=("AAA",), preaug="detrending", horizon=8, context=2048, windows=3, data_dir=data,
        output_dir=tmp_path / "o1",
    )  # fmt: skip
    first = run_backtest(config, engine=engine).results[0]
    assert first.summary["context_length"] == engine.max_context == 512
    # bars the model never sees (more than 512 before the first origin) change nothing
    earliest_seen = 1400 - 1 - 8 - 2 * 8 - 511
    changed = frame.copy()
    changed.loc[: earliest_seen - 1, ["open", "high", "low", "close"]] *= 3.0
    changed.to_parquet(data / "AAA.parquet", index=False)
    second = run_backtest(BacktestConfig(**{**config.__dict__, "output_dir": tmp_path / "o2"}), engine=engine)
    a = pd.read_parquet(first.folder / "forecasts.parquet")
    b = pd.read_parquet(second.results[0].folder / "forecasts.parquet")
    np.testing.assert_array_equal(a["median"].to_numpy(), b["median"].to_numpy())
    assert first.summary["metrics"] == second.results[0].summary["metrics"]


def test_zero_prices_before_the_capped_context_do_not_stop_percent_change(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    frame = ohlc_frame(1400, seed=5)
    frame.loc[10, ["open", "high", "low", "close"]] = 0.0  # years before the windows, outside 512 bars
    (tmp_path / "data").mkdir()
    frame.to_parquet(tmp_path / "data" / "AAA.parquet", index=False)
    config = BacktestConfig(
        symbols=("AAA",), preaug="percent_change", horizon=8, context=2048, windows=4,
        data_dir=tmp_path / "data", output_dir=tmp_path / "out",
    )  # fmt: skip
    report = run_backtest(config, engine=engine)
    assert not report.failures, report.failures


def test_log_file_of_a_failing_run_has_start_error_and_finish_lines(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    (tmp_path / "data").mkdir()
    log = tmp_path / "logs" / "run.log"
    result = _backtest(tmp_path, tiny_model_dir, "--log-file", str(log))
    assert result.exit_code == 2  # an unknown symbol: a usage error
    text = log.read_text()
    lines = text.splitlines()
    assert "start: chronobt" in lines[0]
    assert any("ERROR" in line and "no data for symbol 'AAA'" in line for line in lines)
    assert "finish: exit 2 after" in lines[-1]


def test_log_file_of_a_successful_run_keeps_its_warnings(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 150)  # too short for 4 windows of 8: one warning line
    log = tmp_path / "run.log"
    result = _backtest(tmp_path, tiny_model_dir, "--log-file", str(log), "--windows", "40", "--quiet")
    assert result.exit_code == 0, result.output
    text = log.read_text()
    assert "WARNING" in text and "requested windows" in text
    assert text.splitlines()[-1].endswith(tuple(f"{x} s" for x in "0123456789")) or "finish: exit 0" in text


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--start", "notadate"),
        ("--end", "tomorrowish"),
        ("--max-gap", "-1"),
        ("--wait", "-1"),
        ("--paths", "1"),
    ],
)
def test_bad_option_values_exit_2_with_one_line(
    tmp_path: Path, tiny_model_dir: Path, option: str, value: str
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    result = _backtest(tmp_path, tiny_model_dir, option, value)
    assert result.exit_code == 2, result.output
    assert option in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "backtest").exists()


def test_an_output_dir_that_is_a_file_is_a_user_error_naming_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    (tmp_path / "out").write_text("not a folder")
    result = _backtest(tmp_path, tiny_model_dir)
    assert result.exit_code == 2
    assert "is a file, not a folder" in result.stderr and "internal error" not in result.stderr


def test_an_unwritable_output_dir_is_a_user_error_with_the_fix(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chronobt.locking as locking

    write_symbol(tmp_path / "data", "AAA", 300)

    class ReadOnlyLock:
        def __init__(self, path: str) -> None:
            self.path = path

        def acquire(self, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied", self.path)  # root ignores chmod: simulate it

    monkeypatch.setattr(locking, "FileLock", ReadOnlyLock)
    result = _backtest(tmp_path, tiny_model_dir)
    assert result.exit_code == 1
    assert "cannot write there (Permission denied)" in result.stderr and "--output-dir" in result.stderr


def test_result_folders_get_the_permissions_the_umask_gives(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    old = os.umask(0o022)
    try:
        result = _backtest(tmp_path, tiny_model_dir, "--quiet")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "backtest" / "AAA" / "none"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "metrics.json").stat().st_mode) == 0o644


def test_importing_the_library_leaves_the_umask_alone() -> None:
    import importlib

    import chronobt.atomic

    old = os.umask(0o027)
    try:
        importlib.reload(chronobt.atomic)
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    "args", [["-h"], ["backtest", "-h"], ["sweep", "-h"], ["forecast", "-h"], ["data", "-h"]]
)
def test_short_help_works_like_help(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "Usage" in result.output


def test_piped_tables_never_cut_long_names(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    spec = "rolling_norm:window=20"
    result = _backtest(tmp_path, tiny_model_dir, "--preaug", spec, "--model", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout and spec in result.stdout


def test_progress_rates_wait_until_they_mean_something() -> None:
    assert rate_text(1, 0.001) == ""  # one fast item is not "1,000/s"
    assert rate_text(0, 5.0) == ""
    assert rate_text(30, 2.0) == "15/s"
    assert rate_text(1234, 2.0) == "617/s"
    assert rate_text(1, 3.0) == "0.333/s"


def test_json_summary_of_a_backtest_is_machine_readable(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    result = _backtest(tmp_path, tiny_model_dir, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["results"][0]["symbol"] == "AAA"


@pytest.mark.parametrize("command", ["backtest", "forecast"])
def test_report_flag_writes_report_html_beside_the_outputs(
    tmp_path: Path, tiny_model_dir: Path, command: str
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    args = [command, "AAA", "--model", str(tiny_model_dir), "--horizon", "8", "--compile", "off"]
    result = CliRunner().invoke(
        app, [*args, "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out"), "--report"]
    )
    assert result.exit_code == 0, result.output
    reports = list((tmp_path / "out").rglob("report.html"))
    assert len(reports) == 1 and "<svg" in reports[0].read_text()
