"""CPU engine: batches in turn (all threads each) vs in parallel (one thread each), same windows.

    python benchmarks/cpu_parallel_batches.py mini 200    # bundled chronos2-mini, context 2048 (uses 512)
    python benchmarks/cpu_parallel_batches.py tiny 200    # the test-suite's tiny model, context 512
    python benchmarks/cpu_parallel_batches.py small 48    # ~7M parameters, context 2048

Prints the median ms/window of four interleaved runs of each mode and the largest difference between
their forecasts. ``chronobt.engine.core.CPU_PARALLEL_MAX_D_MODEL`` is switched to force each mode.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import chronobt
import chronobt.engine.core as engine_module
from chronobt.engine.checkpoints import ArchSpec, save_random_checkpoint
from chronobt.engine.core import Chronos2Engine, EngineConfig

SMALL = ArchSpec(d_model=256, d_kv=32, d_ff=1024, num_layers=6, num_heads=8, context_length=2048)


def model_and_context(arch: str, folder: Path) -> tuple[str, int]:
    if arch == "mini":
        return str(Path(chronobt.__file__).parent / "assets" / "chronos2-mini"), 2048
    if arch == "tiny":
        return str(save_random_checkpoint(folder / "tiny", "tiny")), 512
    return str(save_random_checkpoint(folder / "small", SMALL)), 2048


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", choices=["mini", "tiny", "small"])
    parser.add_argument("windows", type=int)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, length = model_and_context(args.arch, Path(tmp))
        engine = Chronos2Engine(EngineConfig(model=model, device="cpu", compile="off"))
        rng = np.random.default_rng(0)
        contexts = (100 + rng.normal(size=(args.windows, 4, length)).cumsum(-1)).astype(np.float32)
        engine.predict(contexts, 24)  # warm-up
        seconds: dict[str, list[float]] = {"in turn": [], "parallel": []}
        forecasts: dict[str, np.ndarray] = {}
        for _ in range(4):
            for mode in seconds:
                engine_module.CPU_PARALLEL_MAX_D_MODEL = 0 if mode == "in turn" else 10**6
                t0 = time.perf_counter()
                forecasts[mode] = engine.predict(contexts, 24)
                seconds[mode].append(time.perf_counter() - t0)
    per_window = {mode: round(float(np.median(s)) / args.windows * 1000, 2) for mode, s in seconds.items()}
    diff = float(np.abs(forecasts["in turn"] - forecasts["parallel"]).max())
    threads = torch.get_num_threads()
    print(f"{args.arch}: ms/window {per_window}; max |difference| {diff}; torch threads after {threads}")


if __name__ == "__main__":
    main()
