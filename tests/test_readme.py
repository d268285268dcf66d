"""The README's Quickstart is what CI runs and what a newcomer types: keep them true."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Quickstart\s+```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no Quickstart bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_quickstart_gives_setup_main_and_test_commands_that_ci_runs() -> None:
    setup, main, test = quickstart_commands()
    assert main == "chronobt backtest ETHUSD --preaug differencing"
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert setup in ci and test in ci


@pytest.mark.slow
def test_readme_main_command_runs_as_written_on_the_bundled_model(tmp_path: Path) -> None:
    _, main, _ = quickstart_commands()
    argv = shlex.split(main)
    assert argv[0] == "chronobt"
    # offline: no hub probe, no network; auto then resolves to the bundled model at once
    env = {**os.environ, "CHRONOBT_OUTPUT_DIR": str(tmp_path / "results"), "HF_HUB_OFFLINE": "1"}
    env.pop("CHRONOBT_MODEL", None)
    env.pop("CHRONOBT_DATA_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "chronobt", *argv[1:]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    metrics = json.loads((tmp_path / "results/backtest/ETHUSD/differencing/metrics.json").read_text())
    assert metrics["model"] == "chronos2-mini"  # no hub here: auto resolves to the bundled model
    assert "chronos2-mini" in proc.stderr  # and says so in one warning line
    assert metrics["windows"] >= 1
    assert all(v["mase"] == v["mase"] for v in metrics["metrics"].values())  # finite, not NaN


def _choice_options() -> set[str]:
    """The options of backtest, sweep and forecast whose metavar lists a fixed set of values."""
    import typer

    from chronobt.cli import COMMANDS

    found = set()
    for name in ("backtest", "sweep", "forecast"):
        module = __import__(COMMANDS[name][0], fromlist=["app"])
        for param in typer.main.get_command(module.app).params:
            metavar = getattr(param, "metavar", None) or ""
            if metavar.startswith("[") and "|" in metavar:
                found.update(opt for opt in param.opts if opt.startswith("--"))
    return found


def test_readme_lists_every_choice_option_as_matched_in_any_case() -> None:
    text = " ".join((REPO / "README.md").read_text().split())
    sentence = re.search(r"Options with a fixed set of values \((.*?)\) match it in any case", text)
    assert sentence, "README.md no longer says which options match in any case"
    listed = set(re.findall(r"`(--[a-z-]+)`", sentence.group(1)))
    assert listed == _choice_options()


def readme_api_snippet() -> str:
    block = re.search(r"## Python API\s+```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "README.md has no Python API block"
    return block.group(1)


@pytest.mark.slow
def test_readme_api_snippet_runs_from_the_folder_holding_the_clone_and_prints_only_its_result(
    tmp_path: Path,
) -> None:
    """The clone's folder is named like the package: Python started beside it sees that folder first
    (as a namespace package); the installed package must still win. The snippet asks for one line."""
    (tmp_path / "chronobt").symlink_to(REPO, target_is_directory=True)  # the clone, seen from its parent
    (tmp_path / "data").symlink_to(REPO / "data", target_is_directory=True)  # the snippet's ./data
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOBT_")}
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", readme_api_snippet()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == ""  # no progress bar, no warning: the library is quiet by default
    (line,) = proc.stdout.splitlines()  # only what the snippet printed
    mase, coverage = (float(x) for x in line.split())
    assert mase > 0 and 0 <= coverage <= 1
    metrics = json.loads((tmp_path / "results/backtest/ETHUSD/differencing/metrics.json").read_text())
    assert metrics["interval_calibration"]["applied"] is True
    assert coverage == metrics["calibrated"]["metrics"]["close"]["coverage_80"]
