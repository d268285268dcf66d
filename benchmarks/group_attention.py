"""Dense vs block-diagonal (per-task) group attention, whole batches or task chunks: time per window.

Workload: rolling windows of a synthetic OHLC random walk (4 variates), context 2048, horizon 24, on a
random-init Chronos-2 (default ``small``, ~7M parameters), CPU float32 eager. Runs are interleaved
(every configuration once per round, ``--rounds`` rounds) and the medians reported, with the ratio of
each batch's time per window to the 16-series one. Wall time and the process's CPU time are both
reported: on a shared machine the CPU time is less sensitive to other jobs.

    python benchmarks/group_attention.py --windows 64 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from chronobt.engine.checkpoints import random_model
from chronobt.engine.core import Chronos2Engine, EngineConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_gpu import rolling_ohlc

#: Group attention dense across the batch (chronos'), per task over whole batches, per task over
#: cache-sized chunks of tasks in every encoder block (the engine's CPU default).
KINDS = ("dense", "block", "block, task chunks")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="small")
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--series", default="16,64,256", help="series per forward, comma list")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    contexts = rolling_ohlc(args.windows, args.context)
    sizes = [int(s) for s in args.series.split(",")]
    times: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / args.arch
        random_model(args.arch, seed=0).save_pretrained(model_dir)
        engines: dict[tuple[str, int], Chronos2Engine] = {}
        for kind in KINDS:
            for size in sizes:
                config = EngineConfig(  # chronos' model and its views: what this compares
                    model=str(model_dir), device=args.device, compile="off", batch_size=size, native=False
                )
                engine = Chronos2Engine(config)
                engine.views.block_diagonal_layout = kind != "dense"
                engine.views.task_chunk_layout = kind == "block, task chunks"
                engine.predict(contexts[:1], args.horizon)  # checks and warm-up outside the timings
                engines[kind, size] = engine
        for _ in range(args.rounds):
            for key, engine in engines.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                engine.predict(contexts, args.horizon)
                times.setdefault(key, []).append(time.perf_counter() - started)
                cpu.setdefault(key, []).append(time.process_time() - cpu_started)
                print(f"{key}: {times[key][-1]:.2f} s, cpu {cpu[key][-1]:.2f} s", file=sys.stderr, flush=True)
        records = {key: engine.record() for key, engine in engines.items()}
    header = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "arch": args.arch,
        "context": args.context,
        "horizon": args.horizon,
        "windows": args.windows,
        "rounds": args.rounds,
    }
    print(json.dumps(header))
    print(
        "| group attention | series/forward | median wall s | wall ms/window | wall vs 16 | "
        "median CPU s | CPU vs 16 | block-diagonal used | tasks per chunk |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in KINDS:
        base = statistics.median(times[kind, sizes[0]])
        cpu_base = statistics.median(cpu[kind, sizes[0]])
        for size in sizes:
            med, cpu_med = statistics.median(times[kind, size]), statistics.median(cpu[kind, size])
            cells = [kind, size, f"{med:.2f}", f"{1000 * med / args.windows:.1f}", f"{med / base:.2f}x"]
            record = records[kind, size]
            cells += [f"{cpu_med:.2f}", f"{cpu_med / cpu_base:.2f}x", record["block_diagonal_groups"]]
            cells += [record["task_chunks"] or "-"]
            print("| " + " | ".join(str(c) for c in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
