"""The examples run: the Python API example and the cron script (sweep, then forecast) with a tiny model,
and the cron script's exit codes."""

from __future__ import annotations

import json
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


def test_cron_script_sweeps_then_forecasts_with_the_choice_and_writes_the_files_it_promises(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    subprocess.run(["bash", "-n", str(CRON)], check=True)
    write_symbol(tmp_path / "data", "AAA", 300)
    write_symbol(tmp_path / "data", "bbb", 300)  # a lower-case file name: the symbol is upper-cased
    chronobt = tmp_path / "chronobt"  # the CLI of this checkout, as cron would call the installed one
    chronobt.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m chronobt "$@"\n')
    chronobt.chmod(0o755)
    small = f"--horizon 8 --context 128 --device cpu --model {tiny_model_dir}"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CHRONOBT": str(chronobt),
        "CHRONOBT_DATA_DIR": str(tmp_path / "data"),
        "CHRONOBT_OUTPUT_DIR": str(tmp_path / "out"),
        "CHRONOBT_SWEEP_ARGS": f"--validation-windows 3 --test-windows 2 --preaug none,differencing {small}",
        "CHRONOBT_FORECAST_ARGS": small,
    }
    for mode in ("sweep", "forecast"):
        proc = subprocess.run(
            ["bash", str(CRON), mode], env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        (log,) = (tmp_path / "out" / "logs").glob(f"{mode}-*.log")  # one log per mode and UTC day
        assert f"chronobt {mode} AAA BBB" in log.read_text() and "finish: exit 0" in log.read_text()
    out = tmp_path / "out"
    assert (out / "sweep" / "leaderboard.csv").is_file() and (out / "sweep" / "manifest.json").is_file()
    for symbol in ("AAA", "BBB"):
        best = json.loads((out / "sweep" / "best" / f"{symbol}.json").read_text())
        assert best["best_preaug"] in ("none", "differencing")
        latest = json.loads((out / "forecast" / symbol / "latest.json").read_text())
        assert latest["requested_preaug"] == "auto" and latest["preaug"] == best["best_preaug"]
        assert latest["horizon"] == 8 and (out / "forecast" / symbol / latest["file"]).is_file()


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
