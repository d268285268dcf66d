"""Start-up of the command line: ``python -m chronobt --help`` against ``python -c "import typer, rich"``.

Whole processes, as a user runs them, interleaved (A, B, A, B, ...) after a warm-up of each, so drift
on a shared machine hits both alike. Prints each median, the ratio of medians (target: within 4x) and
the load average before and after, with the date and machine, as a Markdown table for
benchmarks/RESULTS.md::

    PYTHONPATH=$PWD python3 benchmarks/cli_startup.py --pairs 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "chronobt --help": [sys.executable, "-m", "chronobt", "--help"],
    "import typer, rich": [sys.executable, "-c", "import typer, rich"],
}
TARGET_RATIO = 4.0


def _run(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one whole process (its output discarded)."""
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10, help="interleaved pairs after the warm-up (>= 5)")
    args = parser.parse_args()
    if args.pairs < 5:
        parser.error("--pairs must be >= 5")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    for argv in COMMANDS.values():  # warm-up: file caches, .pyc files
        _run(argv, env)
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.pairs):
        for name, argv in COMMANDS.items():
            times[name].append(_run(argv, env))
    load_after = os.getloadavg()
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["chronobt --help"] / medians["import typer, rich"]
    print(f"date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {_machine()}")
    print(f"load average (1/5/15 min): before {_load(load_before)}, after {_load(load_after)}")
    print(f"{args.pairs} interleaved pairs after one warm-up run each\n")
    print("| command | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        print(f"| `{name}` | {medians[name]:.3f} | {min(values):.3f} | {max(values):.3f} |")
    verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    print(f"\nratio of medians: {ratio:.2f}x ({verdict} the {TARGET_RATIO:g}x target)")


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
