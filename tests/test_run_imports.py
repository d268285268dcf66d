"""A backtest imports only what it runs (no trainer, report, Ray or peft) and records its import time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_the_backtest_path_does_not_import_the_modules_it_does_not_use(
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
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [x for x in proc.stderr.splitlines() if x.startswith("MODULES:")]
    assert lines, proc.stderr
    modules = json.loads(lines[-1].removeprefix("MODULES:"))
    manifests = list(out.rglob("manifest.json"))
    assert manifests, proc.stderr  # the run did run
    assert "chronos" in modules and "torch" in modules
    loaded = [m for m in modules if any(m == u or m.startswith(u + ".") for u in UNUSED)]
    assert loaded == []
    engine = json.loads(manifests[0].read_text())["engine"]
    assert isinstance(engine["import_seconds"], float) and engine["import_seconds"] >= 0
