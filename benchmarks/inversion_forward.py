"""The main command's inversion against its forward passes, from its own run record, whole processes.

Runs ``python -m chronobt backtest BTCUSD --preaug differencing --windows N`` (bundled model, hourly
``data/BTCUSD.parquet``, ``--dependence auto``) ``--runs`` times per window count, each a fresh process
into a fresh output folder, and reads its ``manifest.json``: ``timings.invert`` (the whole inversion:
the step-dependence fit, its calibration-chosen candidates and the main inversion; with ``--numba``, the
numba loops instead of the C ones, their first load included) and ``engine.forward_seconds`` (the
forward passes alone). Prints the medians and their ratio per window count, and the load average before
and after.

    PYTHONPATH=$PWD python3 benchmarks/inversion_forward.py --windows 200 800 --runs 3 [--numba]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: ``python -m chronobt``, and the same with the inversion's numba loops (as where no C compiler built
#: the C ones).
CHILD = "import sys; from chronobt.cli import main; sys.argv[0] = 'chronobt'; main()"
NUMBA_CHILD = "import chronobt.augment.sampling as s; s.PREFER_C = False; " + CHILD


def one_run(windows: int, preaug: str, symbol: str, numba: bool = False) -> tuple[float, float]:
    """``(invert seconds, forward seconds)`` of one whole-process run of the main command."""
    with tempfile.TemporaryDirectory() as tmp:
        child = NUMBA_CHILD if numba else CHILD
        command = [sys.executable, "-c", child, "backtest", symbol, "--preaug", preaug]
        command += ["--windows", str(windows), "--output-dir", tmp]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        manifest = json.loads((Path(tmp) / "backtest" / symbol / preaug / "manifest.json").read_text())
    return float(manifest["timings"]["invert"]), float(manifest["engine"]["forward_seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--symbol", default="BTCUSD")
    parser.add_argument("--preaug", default="differencing")
    parser.add_argument("--numba", action="store_true", help="the numba loops instead of the C ones")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = []
    for windows in args.windows:
        runs = [one_run(windows, args.preaug, args.symbol, args.numba) for _ in range(args.runs)]
        invert = statistics.median(r[0] for r in runs)
        forward = statistics.median(r[1] for r in runs)
        rows.append((windows, invert, forward, runs))
    load_after = os.getloadavg()
    print(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "load_before": load_before,
                      "load_after": load_after, "runs": args.runs}))  # fmt: skip
    print("| windows | inversion s (median) | forward s (median) | inversion / forward | runs (inv, fwd) |")
    print("|---|---|---|---|---|")
    for windows, invert, forward, runs in rows:
        each = ", ".join(f"{i:.2f}/{f:.2f}" for i, f in runs)
        print(f"| {windows} | {invert:.2f} | {forward:.2f} | {invert / forward:.2f}x | {each} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
