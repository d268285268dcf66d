"""glibc's allocator as it is vs ``chronobt.engine.allocator.keep_freed_memory`` (``CHRONOBT_MALLOC=keep``).

Two modes, each measurement a fresh process (the allocator setting is per process):

* ``forward`` (default): alternating the two settings ``--rounds`` times, each process warms the engine up
  on one batch, then times ``Chronos2Engine.predict`` on ``--windows`` windows of four random-walk series
  of a 7M-parameter model and counts its minor page faults and its system (kernel) CPU time, where page
  faults are paid.
* ``--cli main|small``: whole ``chronobt backtest`` processes, end to end (imports, model load, data,
  forecasts, scoring, files), with ``CHRONOBT_MALLOC=keep`` and ``CHRONOBT_MALLOC=default`` alternating
  keep, default, keep, default, ... for ``--pairs`` pairs, so both see the same drift of a shared machine.
  ``main`` is the README's main command (``chronobt backtest ETHUSD --preaug differencing`` with
  ``HF_HUB_OFFLINE=1``: the bundled model on daily ETHUSD); ``small`` backtests hourly BTCUSD
  (``data/BTCUSD.parquet``) with the 7M-parameter random model at context 2048, ``--windows`` windows.
  Prints the wall-time medians, min and max per setting and the paired ratio default / keep (> 1: keep
  is faster) with its median, min and max, and the same ratio of CPU time (user + kernel, which other
  jobs on the machine disturb less than wall time).

Usage::

    python benchmarks/allocator.py [--rounds 4] [--windows 40] [--context 2048]
    python benchmarks/allocator.py --cli main [--pairs 6]
    python benchmarks/allocator.py --cli small [--pairs 5] [--windows 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(d_model=256, d_kv=32, d_ff=1024, num_layers=6, num_heads=8, context_length=2048)

_CHILD = """
import json, resource, sys, time
import numpy as np
from chronobt.engine.allocator import keep_freed_memory
from chronobt.engine.core import Chronos2Engine, EngineConfig

mode, model, windows, context = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tuned = keep_freed_memory({"CHRONOBT_MALLOC": mode})
engine = Chronos2Engine(EngineConfig(model=model, device="cpu", compile="off"))
x = 100 + np.random.default_rng(0).normal(size=(windows, 4, context)).cumsum(-1)
engine.predict(x[:4], 24)
before = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
engine.predict(x, 24)
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "mode": mode, "tuned": tuned, "ms_per_window": 1000 * seconds / windows,
    "faults": after.ru_minflt - before.ru_minflt,
    "sys_ms_per_window": 1000 * (after.ru_stime - before.ru_stime) / windows,
}))
"""


def forward_mode(args: argparse.Namespace) -> None:
    """Time ``Chronos2Engine.predict`` in fresh processes, alternating the two settings."""
    from chronobt.engine.checkpoints import ArchSpec, save_random_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        model = save_random_checkpoint(Path(tmp) / "small", ArchSpec(**SMALL), seed=0)  # type: ignore[arg-type]
        rows: dict[str, list[dict]] = {"default": [], "keep": []}
        for _ in range(args.rounds):
            for mode in ("default", "keep"):
                argv = [sys.executable, "-c", _CHILD, mode, str(model), str(args.windows), str(args.context)]
                out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
                rows[mode].append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"# {time.strftime('%Y-%m-%d')} · {platform.processor() or platform.machine()} · 7M-parameter "
        f"Chronos-2, context {args.context}, {args.windows} windows x 4 series, {args.rounds} alternating "
        "fresh processes per mode"
    )
    print("| allocator | ms/window (median) | ms/window (all) | minor faults | kernel CPU ms/window |")
    print("|---|---|---|---|---|")
    for mode, label in (("default", "glibc defaults"), ("keep", "keep_freed_memory (CLI)")):
        ms = [r["ms_per_window"] for r in rows[mode]]
        faults = [r["faults"] for r in rows[mode]]
        kernel = statistics.median(r["sys_ms_per_window"] for r in rows[mode])
        print(
            f"| {label} | {statistics.median(ms):.1f} | {', '.join(f'{m:.1f}' for m in ms)} | "
            f"{int(statistics.median(faults)):,} | {kernel:.1f} |"
        )
    gain = statistics.median(r["ms_per_window"] for r in rows["default"]) / statistics.median(
        r["ms_per_window"] for r in rows["keep"]
    )
    print(f"speed-up of keep_freed_memory: {gain:.2f}x")


def _run_cli(argv: list[str], mode: str, output_dir: Path) -> dict[str, float]:
    """One ``python -m chronobt`` process from the repository root: wall seconds, faults, kernel CPU."""
    env = {k: v for k, v in os.environ.items() if k not in ("CHRONOBT_MODEL", "CHRONOBT_DATA_DIR")}
    env |= {"CHRONOBT_MALLOC": mode, "HF_HUB_OFFLINE": "1", "CHRONOBT_OUTPUT_DIR": str(output_dir)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "chronobt", *argv], cwd=REPO, env=env, check=True, capture_output=True
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "seconds": seconds,
        "faults": after.ru_minflt - before.ru_minflt,
        "sys_seconds": after.ru_stime - before.ru_stime,
        "cpu_seconds": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
    }


def cli_mode(args: argparse.Namespace) -> None:
    """Time whole ``chronobt backtest`` processes, keep and default alternating, ``--pairs`` pairs."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.cli == "main":
            argv = ["backtest", "ETHUSD", "--preaug", "differencing"]
            what = "`chronobt backtest ETHUSD --preaug differencing` (bundled chronos2-mini, daily ETHUSD)"
        else:
            from chronobt.engine.checkpoints import ArchSpec, save_random_checkpoint

            model = save_random_checkpoint(Path(tmp) / "small", ArchSpec(**SMALL), seed=0)  # type: ignore[arg-type]
            argv = ["backtest", "BTCUSD", "--model", str(model), "--windows", str(args.windows)]
            argv += ["--context", str(args.context)]
            what = (
                f"`chronobt backtest BTCUSD --model <7M random> --windows {args.windows} "
                f"--context {args.context}` (hourly BTCUSD)"
            )
        rows: dict[str, list[dict[str, float]]] = {"keep": [], "default": []}
        for pair in range(args.pairs):
            for mode in ("keep", "default"):
                rows[mode].append(_run_cli(argv, mode, Path(tmp) / f"out-{pair}-{mode}"))
                print(f"pair {pair + 1} {mode}: {rows[mode][-1]['seconds']:.2f} s", file=sys.stderr)
    print(
        f"# {time.strftime('%Y-%m-%d')} · {platform.processor() or platform.machine()} · {what}, "
        f"HF_HUB_OFFLINE=1, {args.pairs} pairs of fresh processes, keep and default alternating"
    )
    print(
        "| CHRONOBT_MALLOC | wall s (median) | min | max | all | minor faults (median) | kernel CPU s "
        "| CPU s (user + kernel) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for mode in ("keep", "default"):
        s = [r["seconds"] for r in rows[mode]]
        faults = int(statistics.median(r["faults"] for r in rows[mode]))
        kernel = statistics.median(r["sys_seconds"] for r in rows[mode])
        cpu = statistics.median(r["cpu_seconds"] for r in rows[mode])
        print(
            f"| {mode} | {statistics.median(s):.2f} | {min(s):.2f} | {max(s):.2f} | "
            f"{', '.join(f'{x:.2f}' for x in s)} | {faults:,} | {kernel:.2f} | {cpu:.2f} |"
        )
    ratios = [d["seconds"] / k["seconds"] for k, d in zip(rows["keep"], rows["default"], strict=True)]
    print(
        f"paired ratio default / keep (> 1: keep faster): median {statistics.median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f} ({', '.join(f'{r:.3f}' for r in ratios)})"
    )
    cpu_ratios = [
        d["cpu_seconds"] / k["cpu_seconds"] for k, d in zip(rows["keep"], rows["default"], strict=True)
    ]
    print(
        f"paired CPU-time ratio default / keep: median {statistics.median(cpu_ratios):.3f}, "
        f"min {min(cpu_ratios):.3f}, max {max(cpu_ratios):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", choices=("main", "small"), default=None, help="time whole CLI runs")
    parser.add_argument("--rounds", type=int, default=4, help="forward mode: processes per setting")
    parser.add_argument("--pairs", type=int, default=6, help="--cli: keep/default pairs (at least 5)")
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--context", type=int, default=2048)
    args = parser.parse_args()
    if args.cli is None:
        forward_mode(args)
    else:
        cli_mode(args)


if __name__ == "__main__":
    main()
