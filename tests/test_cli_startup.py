"""The command line starts without the model stack, and each command's options come from the configs."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest
import typer
from typer.testing import CliRunner

from chronobt.cli import COMMANDS, app
from chronobt.cli import backtest as backtest_cli
from chronobt.cli import forecast as forecast_cli
from chronobt.cli import sweep as sweep_cli
from chronobt.config import BacktestConfig, ForecastConfig, RunOptions, SweepConfig
from chronobt.errors import ChronobtError
from tests.synthetic import write_symbol

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "chronos", "transformers")

PROBE = """
import sys
sys.argv = ["chronobt", *sys.argv[1:]]
from chronobt.cli import main
try:
    main()
except SystemExit:
    pass
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""

LIGHT_COMMANDS = [
    ["--help"],
    *[[name, "--help"] for name in COMMANDS],
    ["data", "import", "--help"],
    ["data", "list", "--help"],
    ["data", "check", "--help"],
]


def _heavy_modules_after(args: list[str], tmp_path: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("HEAVY:")]
    assert line, proc.stderr
    return line[-1].removeprefix("HEAVY:"), proc


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=" ".join)
def test_help_of_every_command_imports_neither_torch_nor_chronos(args: list[str], tmp_path: Path) -> None:
    heavy, proc = _heavy_modules_after(args, tmp_path)
    assert "Usage" in proc.stdout
    assert heavy == "", f"chronobt {' '.join(args)} imported {heavy}"


def test_data_list_and_check_import_neither_torch_nor_chronos(tmp_path: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 200)
    for args in (["data", "list"], ["data", "check", "AAA"]):
        heavy, proc = _heavy_modules_after([*args, "--data-dir", str(tmp_path / "data")], tmp_path)
        assert "AAA" in proc.stdout, proc.stderr
        assert heavy == "", f"chronobt {' '.join(args)} imported {heavy}"


def test_the_root_listing_shows_each_commands_own_short_help() -> None:
    for name, (module, short_help) in COMMANDS.items():
        command = typer.main.get_command(__import__(module, fromlist=["app"]).app)
        own = inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " ")
        assert own == short_help, name
    listing = CliRunner().invoke(app, ["--help"]).output
    assert all(name in listing for name in COMMANDS)


def test_an_unknown_command_is_a_usage_error_with_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["backtst"])
    assert result.exit_code == 2 and "backtest" in result.output


def _text(value: Any) -> Any:
    """A config default as the command line spells it (tuples comma-separated)."""
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


@pytest.mark.parametrize(
    ("command", "config_type"),
    [
        (backtest_cli.backtest, BacktestConfig),
        (sweep_cli.sweep, SweepConfig),
        (forecast_cli.forecast, ForecastConfig),
    ],
)
def test_every_option_default_is_the_configs_own(command: Any, config_type: type[RunOptions]) -> None:
    parameters = inspect.signature(command).parameters
    checked = 0
    for field in dataclasses.fields(config_type):
        option = {"n_paths": "paths"}.get(field.name, field.name)
        if (
            option not in parameters
            or field.default is dataclasses.MISSING
            or field.name in ("covariates", "symbols")
        ):
            continue
        assert parameters[option].default == _text(field.default), option
        checked += 1
    assert checked >= 20


def test_choice_options_match_case_insensitively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def fake_run_locked(ui: Any, run: Any, config: Any, engine_config: Any, *, wait: float) -> Any:
        seen.append((config, engine_config))
        raise ChronobtError("stopped before running")

    monkeypatch.setattr(backtest_cli, "run_locked", fake_run_locked)
    args = [
        "backtest",
        "AAA",
        "--dependence",
        "Independent",
        "--calibrate",
        "CONFORMAL",
        "--executor",
        "Local",
    ]
    args += ["--dtype", "Float32", "--compile", "OFF", "--compile-mode", "Max-Autotune", "--finetune", "Off"]
    write_symbol(tmp_path / "data", "AAA", 300)  # unknown symbols are refused before run_locked
    folders = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, *folders])
    assert result.exit_code == 1, result.output
    config, engine = seen[0]
    assert (config.dependence, config.calibrate, config.executor, config.finetune) == (
        "independent",
        "conformal",
        "local",
        "off",
    )
    assert (engine.dtype, engine.compile, engine.compile_mode) == ("float32", "off", "max-autotune")


@pytest.mark.parametrize(
    ("command", "config_type"),
    [
        (backtest_cli.backtest, BacktestConfig),
        (sweep_cli.sweep, SweepConfig),
        (forecast_cli.forecast, ForecastConfig),
    ],
)
def test_every_choice_option_of_a_run_config_is_a_literal_field_with_its_choices_shown(
    command: Any, config_type: type[RunOptions]
) -> None:
    hints = get_type_hints(config_type)
    options = get_type_hints(command, include_extras=True)
    literal_fields = [f.name for f in dataclasses.fields(config_type) if get_origin(hints[f.name]) is Literal]
    assert {"dependence", "calibrate", "finetune"} <= set(literal_fields)
    for name in literal_fields:
        if name not in options:
            continue
        (option,) = (a for a in get_args(options[name])[1:] if isinstance(a, typer.models.OptionInfo))
        assert option.metavar == f"[{'|'.join(get_args(hints[name]))}]", name


def test_the_sweep_metric_matches_case_insensitively_and_lists_the_configs_choices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    def fake_run_locked(ui: Any, run: Any, config: Any, engine_config: Any, *, wait: float) -> Any:
        seen.append(config)
        raise ChronobtError("stopped before running")

    monkeypatch.setattr(sweep_cli, "run_locked", fake_run_locked)
    write_symbol(tmp_path / "data", "AAA", 300)
    folders = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")]
    result = CliRunner().invoke(app, ["sweep", "AAA", "--metric", "MASE", *folders])
    assert result.exit_code == 1, result.output
    assert seen[0].metric == "mase"
    result = CliRunner().invoke(app, ["sweep", "AAA", "--metric", "Directional_Accuracy", *folders])
    assert result.exit_code == 1, result.output
    assert seen[1].metric == "directional_accuracy" and seen[1].higher_is_better
    metavar = f"[{'|'.join(get_args(get_type_hints(SweepConfig)['metric']))}]"
    assert metavar == "[mase|wql|mae|rmse|smape|directional_accuracy|sharpe|sortino|calmar|total_return]"
    assert metavar in CliRunner().invoke(app, ["sweep", "--help"]).output.replace("\n", "")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["forecast", "AAA", "--seed", "-5"], "--seed"),
        (["backtest", "AAA", "--seed", "-1"], "--seed"),
        (["backtest", "AAA", "--wait", "nan"], "--wait"),
        (["backtest", "AAA", "--wait", "inf"], "--wait"),
        (["backtest", "AAA", "--fee-bps", "nan"], "--fee-bps"),
        (["backtest", "AAA", "--fee-bps", "inf"], "--fee-bps"),
        (["backtest", "AAA", "--fee-bps", "1e400"], "--fee-bps"),
        (["sweep", "--fee-bps", "-inf"], "--fee-bps"),
        (["backtest", "AAA", "--finetune", "full", "--finetune-lr", "nan"], "--finetune-lr"),
        (["forecast", "AAA", "--finetune", "lora", "--finetune-lr", "1e400"], "--finetune-lr"),
        (["backtest", "AAA", "--quantiles", "0.1,0.5,nan"], "--quantiles"),
        (["backtest", "AAA", "--calendar", "BOGUS"], "--calendar"),
        (["forecast", "AAA", "--calendar", "BOGUS"], "--calendar"),
        (["sweep", "--dependence", "bogus"], "--dependence"),
        (["sweep", "--metric", "bogus"], "--metric"),
    ],
)
def test_bad_numbers_and_names_are_one_line_usage_errors_before_any_work(
    args: list[str], option: str, tmp_path: Path
) -> None:
    write_symbol(tmp_path / "data", "AAA", 200)
    out = tmp_path / "out"
    folders = ["--data-dir", str(tmp_path / "data"), "--output-dir", str(out)]
    result = CliRunner().invoke(app, [*args, *folders, "--model", str(tmp_path / "no-such-model")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and option in lines[0], result.stderr
    assert "internal error" not in result.stderr and not out.exists()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_option_help_holds_no_measured_timings(name: str) -> None:
    module = __import__(COMMANDS[name][0], fromlist=["app"])
    command = typer.main.get_command(module.app)
    for param in command.params:
        text = getattr(param, "help", None) or ""
        assert not re.search(r"\d\s*(ms|s|sec|seconds|min|minutes)\b", text), (param.name, text)
