"""A backtest imports only what it runs (no trainer, report, Ray or peft) and records its import time; once
its native forward's check is stored, a backtest imports neither chronos nor transformers (nor numba, where
the inversion's C loops were built)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chronobt.augment import loops
from tests.synthetic import write_symbol

REPO = Path(__file__).resolve().parents[1]
#: Modules the main command never uses (and their submodules).
UNUSED = (
    "ray",
    "peft",
    "chronobt.report",
    "chronobt.runs.sweep",
    "transformers.trainer",
    "transformers.trainer_callback",
    "matplotlib",
)

PROBE = """
import json, sys
sys.argv = ["chronobt", *sys.argv[1:]]
from chronobt.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print("MODULES:" + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_the_backtest_path_imports_only_what_it_runs_and_a_repeat_no_chronos(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    write_symbol(data, "AAA", n=400)
    out = tmp_path / "out"
    args = [
        "backtest",
        "AAA",
        "--data-dir",
        str(data),
        "--output-dir",
        str(out),
        "--model",
        str(tiny_model_dir),
    ]
    args += ["--windows", "30", "--preaug", "differencing", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    first = run_probe(args, tmp_path)
    forecasts = next(out.rglob("forecasts.parquet")).read_bytes()
    second = run_probe(args, tmp_path)
    assert "chronos" in first and "torch" in first  # the first run checks the native forward against chronos
    assert "transformers" in first
    for modules in (first, second):
        loaded = [m for m in modules if any(m == u or m.startswith(u + ".") for u in UNUSED)]
        assert loaded == []
    # once the check's verdict is stored, a backtest imports neither chronos nor transformers; with the
    # inversion's C loops built, no numba either
    assert [m for m in second if m.split(".")[0] in ("chronos", "transformers")] == []
    if loops.library() is not None:
        assert [m for m in first + second if m.split(".")[0] == "numba"] == []
    assert next(out.rglob("forecasts.parquet")).read_bytes() == forecasts  # the same numbers
    manifests = list(out.rglob("manifest.json"))
    assert manifests  # the run did run
    engine = json.loads(manifests[0].read_text())["engine"]
    assert isinstance(engine["import_seconds"], float) and engine["import_seconds"] >= 0
    assert engine["native_forward"] is True and engine["native_check"]["reused"] is True
    assert engine["chronos_loaded"] is False and engine["view_checks"]["reused"] >= 1


def run_probe(args: list[str], cwd: Path) -> list[str]:
    """Run the command line in a fresh process; the modules it had imported when it ended."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [x for x in proc.stderr.splitlines() if x.startswith("MODULES:")]
    assert lines, proc.stderr
    assert proc.returncode == 0 or "code" not in proc.stderr, proc.stderr
    return list(json.loads(lines[-1].removeprefix("MODULES:")))
