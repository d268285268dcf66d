"""The cron example replays a data file one bar per run: forecast, then track, as the crontab line does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.synthetic import ohlc_frame

REPO = Path(__file__).resolve().parents[1]
SIMULATE = REPO / "examples" / "cron" / "simulate.sh"


def test_the_cron_simulation_grows_the_file_a_bar_per_run_and_tracks_the_forecasts(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    source = tmp_path / "aaa.parquet"
    ohlc_frame(160).to_parquet(source, index=False)
    chronobt = tmp_path / "chronobt"
    chronobt.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m chronobt "$@"\n')
    chronobt.chmod(0o755)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PYTHON": sys.executable,
        "CHRONOBT": str(chronobt),
        "CHRONOBT_DATA_DIR": str(tmp_path / "live"),
        "CHRONOBT_OUTPUT_DIR": str(tmp_path / "out"),
        "GROW_START": "150",
        "CHRONOBT_FORECAST_ARGS": "--preaug none --horizon 1 --context 64 --device cpu "
        f"--model {tiny_model_dir}",
    }
    proc = subprocess.run(
        ["bash", str(SIMULATE), str(source), "2"], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_parquet(tmp_path / "live" / "AAA.parquet")) == 151
    folder = tmp_path / "out" / "track" / "AAA" / "none"
    ledger = pd.read_parquet(folder / "ledger.parquet")
    assert len(ledger) == 2 * 4 and int(ledger["resolved"].sum()) == 4
    metrics = json.loads((folder / "metrics.json").read_text())
    assert (metrics["forecasts"], metrics["windows"], metrics["pending"]) == (2, 1, 1)
    logs = sorted(p.name.split("-")[0] for p in (tmp_path / "out" / "logs").iterdir())
    assert logs == ["forecast", "track"]
