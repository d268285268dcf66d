"""Every command's --help reads cleanly: plain metavars, and what it says agrees with the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chronobt.cli import app

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["backtest"],
    ["sweep"],
    ["forecast"],
    ["report"],
    ["data"],
    ["data", "import"],
    ["data", "list"],
    ["data", "check"],
]


def help_text(command: list[str]) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_plain_metavars_without_typers_braces_or_type_labels(command: list[str]) -> None:
    text = help_text(command)
    usage = text.splitlines()[0]
    assert "{" not in usage and "}" not in usage, usage
    assert not re.search(r"<list\[|<[a-z]+\[", text), text  # no <list[str]>
    arguments = text.split("Arguments:")[1].split("Options:")[0] if "Arguments:" in text else ""
    assert "<" not in re.sub(r"<(SYMBOL|data-dir|output-dir)>", "", arguments), arguments


@pytest.mark.parametrize("command", ["backtest", "forecast"])
def test_symbol_commands_name_their_arguments_symbol(command: str) -> None:
    text = help_text([command])
    assert text.splitlines()[0].endswith("[OPTIONS] SYMBOL...")
    assert re.search(r"^\s+SYMBOL\.\.\.\s+Symbols", text, re.M)


def test_sweep_symbols_are_optional() -> None:
    assert help_text(["sweep"]).splitlines()[0].endswith("[OPTIONS] [SYMBOL...]")


def test_compile_help_states_the_readmes_pay_off_rule() -> None:
    rule = "earn the compile time back"
    readme = re.sub(r"\s+", " ", (REPO / "README.md").read_text())
    assert rule in readme
    for command in ("backtest", "sweep", "forecast"):
        text = re.sub(r"\s+", " ", help_text([command]))
        assert rule in text and "engine.compile.decision" in text
        assert "on for CUDA" not in text


def test_calibrate_help_names_the_default_and_every_choice() -> None:
    for command, default in (("backtest", "auto"), ("forecast", "auto"), ("sweep", "none")):
        text = re.sub(r"\s+", " ", help_text([command]))
        option = text.split("--calibrate [auto|none|conformal]")[1].split(" --")[0]
        assert "auto does so when at least 20 windows" in option and f"[default: {default}]" in option
