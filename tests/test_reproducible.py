"""Identical runs on a CPU write byte-identical results, so a user can diff two runs to check them.

Reproducible: a backtest's ``metrics.json``, ``forecasts.parquet`` and ``trades.parquet``; a sweep's
``leaderboard.csv``, ``leaderboard.parquet`` and ``best/<SYMBOL>.json``; a forecast's ``<last-bar>.parquet``
and ``latest.parquet``. Not reproducible, by design: ``manifest.json`` (backtest and sweep) and a forecast's
``latest.json`` are the run records, with the wall-clock stamp (``created_at``), the seconds per stage
(``timings``, ``inference_seconds``) and the command line (which names the output folder).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from tests.synthetic import write_symbol

SPLITS = ["--validation-windows", "4", "--test-windows", "3"]
SMALL = ["--horizon", "8", "--context", "128", "--compile", "off", "--device", "cpu"]
RUNS = {
    "backtest": (
        ["backtest", "AAA", "BBB", "--preaug", "differencing", "--windows", "6"],
        [
            f"backtest/{s}/differencing/{f}"
            for s in ("AAA", "BBB")
            for f in ("metrics.json", "forecasts.parquet", "trades.parquet")
        ],
    ),
    "sweep": (
        ["sweep", "AAA", "BBB", "--preaug", "none,differencing,robust_scaling", "--force", *SPLITS],
        ["sweep/leaderboard.csv", "sweep/leaderboard.parquet", "sweep/best/AAA.json", "sweep/best/BBB.json"],
    ),
    "forecast": (
        ["forecast", "AAA", "BBB", "--preaug", "differencing"],
        [f"forecast/{s}/latest.parquet" for s in ("AAA", "BBB")],
    ),
}
RECORDS = {"backtest": "backtest/AAA/differencing/manifest.json", "sweep": "sweep/manifest.json"}


@pytest.mark.parametrize("command", sorted(RUNS))
def test_identical_runs_write_byte_identical_results(
    tmp_path: Path, tiny_model_dir: Path, command: str
) -> None:
    data = tmp_path / "data"
    write_symbol(data, "AAA", 300, seed=1)
    write_symbol(data, "BBB", 300, seed=2)
    args, files = RUNS[command]
    for out in ("one", "two"):
        result = CliRunner().invoke(
            app,
            [
                *args,
                *SMALL,
                "--model",
                str(tiny_model_dir),
                "--data-dir",
                str(data),
                "--output-dir",
                str(tmp_path / out),
                "-q",
            ],
        )
        assert result.exit_code == 0, result.output
    if command == "forecast":
        files = files + sorted(
            str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one/forecast").glob("*/*/20*.parquet")
        )
        assert len(files) == 4  # the history files too
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    if command in RECORDS:  # the run record differs: it holds the stamp and the seconds
        one, two = ((tmp_path / out / RECORDS[command]).read_text() for out in ("one", "two"))
        assert one != two and "created_at" in one
