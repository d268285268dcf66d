"""torch.compile (inductor) on a CPU: compile seconds, forward speed-up, break-even windows, a warm cache.

For each model (the bundled chronos2-mini and a random ~7M-parameter Chronos-2 at context 2048) and each
round, three fresh processes forecast the same W windows of V random-walk variates (context 2048,
horizon 24) with ``Chronos2Engine`` on the CPU:

* ``eager``: ``--compile off``; a first call (view checks, warm-up), then the timed call;
* ``cold``: ``--compile on`` with an empty cache folder; the first call compiles (``compile_seconds``
  from the engine record), the second is the compiled forward;
* ``warm``: ``--compile on`` in a new process reading the cache the cold run filled (inductor's FX
  graph cache: ``cache_hits`` in the record); its first call's compile seconds.

Per model: median eager and compiled seconds per window, the speed-up, the break-even windows
``compile_seconds / (eager - compiled per window)`` cold and warm (none when compiled is not faster), the
largest difference between eager and compiled forecasts, and whether compile fell back.

    python benchmarks/cpu_compile.py --pairs 3
    python benchmarks/cpu_compile.py --pairs 3 --models bundled --windows 64
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_process import header, load, run_once

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "chronobt" / "assets" / "chronos2-mini"
CONTEXT = 2048
HORIZON = 24


def child(args: argparse.Namespace) -> int:
    """One process: two calls on the same windows; prints ``RESULT {json}``, saves the forecasts."""
    import torch

    from chronobt.engine.core import Chronos2Engine, EngineConfig

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    data = (100 + rng.normal(size=(args.windows, args.variates, CONTEXT)).cumsum(-1)).astype(np.float32)
    compile_choice = "off" if args.child == "eager" else "on"
    engine = Chronos2Engine(
        EngineConfig(model=args.model, device="cpu", compile=compile_choice, cache_dir=Path(args.cache_dir))
    )
    seconds = []
    preds = None
    for _ in range(2):
        started = time.perf_counter()
        preds = engine.predict(data, HORIZON)
        seconds.append(time.perf_counter() - started)
    np.save(args.save, preds)
    record = engine.record()["compile"]
    result = {
        "first_s": round(seconds[0], 3),
        "second_s": round(seconds[1], 3),
        "compile_seconds": record["compile_seconds"],
        "used": record["used"],
        "fallback_reason": record["fallback_reason"],
        "cache_hits": record["cache_hits"],
        "cache_misses": record["cache_misses"],
    }
    print("RESULT " + json.dumps(result))
    return 0


def _break_even(compile_s: float, eager_pw: float, compiled_pw: float) -> str:
    saving = eager_pw - compiled_pw
    return f"{compile_s / saving:.0f}" if saving > 0 else "never (compiled is not faster)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="rounds of the three processes per model")
    parser.add_argument("--models", nargs="+", default=["bundled", "small"], choices=["bundled", "small"])
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--variates", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=["eager", "cold", "warm"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    from chronobt.engine.checkpoints import save_random_checkpoint

    before = load()
    print(header(f"torch.compile on the CPU, {args.windows} windows x {args.variates} variates"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = {"bundled": str(BUNDLED)}
        if "small" in args.models:
            paths["small"] = str(save_random_checkpoint(folder / "small", "small", seed=0))
        print(
            "| model | eager s/window | compiled s/window | speed-up | compile s cold | compile s warm "
            "| break-even windows cold | warm | max abs diff | fallback |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in args.models:
            results: dict[str, list[dict]] = {"eager": [], "cold": [], "warm": []}
            diff = 0.0
            for k in range(args.pairs):
                cache = folder / f"cache-{name}-{k}"
                shutil.rmtree(cache, ignore_errors=True)
                for mode in ("eager", "cold", "warm"):
                    command = [sys.executable, __file__, "--child", mode, "--model", paths[name]]
                    command += ["--windows", str(args.windows), "--variates", str(args.variates)]
                    command += ["--threads", str(args.threads), "--cache-dir", str(cache)]
                    command += ["--save", str(folder / f"{mode}.npy")]
                    wall, result = run_once(command)
                    result["wall_s"] = round(wall, 2)
                    results[mode].append(result)
                    print(f"  {name} round {k + 1} {mode}: {json.dumps(result)}", file=sys.stderr, flush=True)
                eager, compiled = np.load(folder / "eager.npy"), np.load(folder / "cold.npy")
                diff = max(diff, float(np.nanmax(np.abs(eager - compiled))))

            def med(mode: str, key: str, results: dict[str, list[dict]] = results) -> float:
                values = [r[key] for r in results[mode] if isinstance(r.get(key), (int, float))]
                return statistics.median(values) if values else float("nan")

            eager_pw = med("eager", "second_s") / args.windows
            compiled_pw = med("cold", "second_s") / args.windows
            cold_s, warm_s = med("cold", "compile_seconds"), med("warm", "compile_seconds")
            fallback = next((r["fallback_reason"] for r in results["cold"] if r["fallback_reason"]), None)
            print(
                f"| {name} | {eager_pw:.4f} | {compiled_pw:.4f} | {eager_pw / compiled_pw:.2f} "
                f"| {cold_s:.1f} | {warm_s:.1f} | {_break_even(cold_s, eager_pw, compiled_pw)} "
                f"| {_break_even(warm_s, eager_pw, compiled_pw)} | {diff:.3g} | {fallback} |"
            )
    print(f"before: {before}; after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
