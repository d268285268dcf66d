"""The examples run: the Python API example with a tiny model, the cron script's syntax and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.synthetic import write_symbol

REPO = Path(__file__).resolve().parents[1]
CRON = REPO / "examples" / "cron" / "nightly.sh"


def test_api_backtest_example_runs_with_a_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    env = {**os.environ, "CHRONOBT_MODEL": str(tiny_model_dir), "CHRONOBT_DATA_DIR": str(tmp_path / "data")}
    env["CHRONOBT_OUTPUT_DIR"] = str(tmp_path / "out")
    args = ["AAA", "--horizon", "8", "--context", "128", "--windows", "3", "--device", "cpu"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "api_backtest.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "close MASE" in proc.stdout
    assert (tmp_path / "out" / "backtest" / "AAA" / "differencing" / "metrics.json").is_file()


def test_cron_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(CRON)], check=True)


def _fake_chronobt(tmp_path: Path, exit_code: int) -> Path:
    """A stand-in for the chronobt executable: records its arguments and exits with ``exit_code``."""
    fake = tmp_path / "fake-chronobt"
    fake.write_text(f'#!/usr/bin/env bash\necho "$@" >> "{tmp_path}/calls"\nexit {exit_code}\n')
    fake.chmod(0o755)
    return fake


@pytest.mark.parametrize(("chronobt_rc", "script_rc"), [(0, 0), (3, 3), (75, 0), (1, 1)])
def test_cron_script_passes_exit_codes_through_and_treats_a_lock_as_skipped(
    tmp_path: Path, chronobt_rc: int, script_rc: int
) -> None:
    write_symbol(tmp_path / "data", "AAA", 100)
    write_symbol(tmp_path / "data", "bbb", 100)
    env = {
        **os.environ,
        "CHRONOBT": str(_fake_chronobt(tmp_path, chronobt_rc)),
        "CHRONOBT_DATA_DIR": str(tmp_path / "data"),
        "CHRONOBT_OUTPUT_DIR": str(tmp_path / "out"),
    }
    proc = subprocess.run(
        ["bash", str(CRON), "forecast"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == script_rc, proc.stderr
    call = (tmp_path / "calls").read_text()
    assert call.startswith("forecast AAA BBB --preaug auto --quiet --log-file")
    if chronobt_rc == 75:
        assert "skipped" in proc.stderr


def test_cron_script_requires_the_data_and_output_dirs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHRONOBT_")}
    proc = subprocess.run(["bash", str(CRON), "sweep"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "CHRONOBT_DATA_DIR" in proc.stderr
