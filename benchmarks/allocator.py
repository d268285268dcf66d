"""CPU forecasts with glibc's allocator as it is vs ``chronobt.allocator.keep_freed_memory`` (the CLI's).

Each measurement is a fresh process (the allocator setting is per process), alternating the two modes
``--rounds`` times so both see the same drift of the shared VM; each process warms the engine up on one
batch, then times ``Chronos2Engine.predict`` on ``--windows`` windows of four random-walk series and
counts its minor page faults and its system (kernel) CPU time, where page faults are paid.

Usage::

    python benchmarks/allocator.py [--rounds 4] [--windows 40] [--context 2048]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL = dict(d_model=256, d_kv=32, d_ff=1024, num_layers=6, num_heads=8, context_length=2048)

_CHILD = """
import json, resource, sys, time
import numpy as np
from chronobt.allocator import keep_freed_memory
from chronobt.engine import Chronos2Engine, EngineConfig

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--context", type=int, default=2048)
    args = parser.parse_args()
    from chronobt.checkpoints import ArchSpec, save_random_checkpoint

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


if __name__ == "__main__":
    main()
