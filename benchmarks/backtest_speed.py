"""Batched `run_backtest` vs one chronos `predict_df` call per window, on the same model and windows.

Two regimes (the acceptance goals on a 2-core CPU, 200 windows, horizon 24):

* overhead-bound: tiny random Chronos-2 at context 512  -> goal: backtest >= 8x the loop
* compute-bound: ~7M-parameter Chronos-2 at context 2048 -> goal: backtest >= 1.4x the loop

and in both, time spent outside the model (prepare, augment, invert, metrics, write) under 10% of the total.

Usage::

    python benchmarks/backtest_speed.py [--windows 200] [--regime tiny|small|both] [--loop-windows N]
                                        [--repeats 3] [--malloc keep|default]

The loop is timed on ``--loop-windows`` windows (default: all) and scaled to the full count when fewer, so
the compute-bound case stays within a few minutes. Both sides are timed ``--repeats`` times, interleaved, and
the medians are compared (the shared 2-core VMs drift by 20-30% between runs); ``both`` runs each regime
in a fresh process, as two CLI runs would be. ``--malloc keep`` (default) sets glibc's allocator as the
CLI does (``CHRONOBT_MALLOC``, see ``chronobt.engine.allocator``); the loop and the backtest share the
process.
Data: hourly ETHUSDT from ../shared/data/ohlc (a real 24/7 series long enough for 200 windows at context
2048), copied to a temp data dir as a parquet file.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from chronobt.config import BacktestConfig
from chronobt.data import load_ohlc
from chronobt.engine.allocator import keep_freed_memory
from chronobt.engine.checkpoints import ArchSpec, save_random_checkpoint
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.pipeline.jobs import model_context, prepare_windows
from chronobt.runs.backtest import run_backtest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ohlc"
HORIZON = 24


def loop_predict_df(pipeline, contexts: np.ndarray, index: list[pd.Index], horizon: int) -> float:
    """Seconds for one ``predict_df`` call per window (the per-window pattern the engine replaces)."""
    t0 = time.perf_counter()
    for w in range(len(contexts)):
        valid = ~np.isnan(contexts[w, 0])
        df = pd.DataFrame(
            {"item_id": "w", "timestamp": pd.DatetimeIndex(index[w]).tz_localize(None)}
            | {name: contexts[w, v, valid] for v, name in enumerate(("open", "high", "low", "close"))}
        )
        pipeline.predict_df(df, target=["open", "high", "low", "close"], prediction_length=horizon)
    return time.perf_counter() - t0


def run_regime(
    name: str, spec: ArchSpec, context: int, windows: int, loop_windows: int, data_dir: Path, repeats: int
) -> dict:
    """Time the backtest and the loop ``repeats`` times each, interleaved; report medians and minima.

    The machines these goals are set for are shared VMs whose speed drifts by 20-30% between runs, so a
    single timing of either side decides nothing; interleaving makes both sides see the same drift.
    """
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_random_checkpoint(Path(tmp) / name, spec, seed=0)
        engine = Chronos2Engine(EngineConfig(model=str(model_dir), device="cpu", compile="off"))
        config = BacktestConfig(
            symbols=("ETHUSDT",),
            preaug="none",
            horizon=HORIZON,
            context=context,
            windows=windows,
            data_dir=data_dir,
            output_dir=Path(tmp) / "out",
        )
        # warm-up (first forward allocates), then the timed runs
        run_backtest(BacktestConfig(**{**config.__dict__, "windows": 2}), engine=engine)
        sw = prepare_windows(
            load_ohlc("ETHUSDT", data_dir), config, windows=windows, context=model_context(config, engine)
        )
        times = sw.ohlc.frame.index
        n_loop = min(loop_windows, len(sw.origins))
        idx = [times[max(0, o - sw.contexts.shape[-1] + 1) : o + 1] for o in sw.origins[:n_loop]]
        ctx = sw.contexts[:n_loop]
        # align each index to its valid (non-padded) part
        idx = [ix[-int((~np.isnan(c[0])).sum()) :] for ix, c in zip(idx, ctx, strict=True)]
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            report = run_backtest(config, engine=engine)
            total = time.perf_counter() - t0
            timings = report.results[0].summary["timings"]
            loop = loop_predict_df(engine.pipeline, ctx, idx, HORIZON) * len(sw.origins) / n_loop
            t1 = time.perf_counter()  # chronos' own batching, same windows and series per forward
            engine.pipeline.predict(
                sw.contexts, prediction_length=HORIZON, batch_size=engine.record()["batch_size"]
            )
            chronos_s = time.perf_counter() - t1
            runs.append(
                {"backtest_s": total, "loop_s": loop, "chronos_batch_s": chronos_s, "timings": timings}
            )
    n_params = sum(p.numel() for p in engine.pipeline.model.parameters())
    backtest = [r["backtest_s"] for r in runs]
    loops = [r["loop_s"] for r in runs]
    chronos = [r["chronos_batch_s"] for r in runs]
    median_run = runs[int(np.argsort(backtest)[len(runs) // 2])]
    total, inference = median_run["backtest_s"], median_run["timings"]["inference"]
    return {
        "regime": name,
        "params": n_params,
        "context": context,
        "windows": len(sw.origins),
        "repeats": repeats,
        "loop_s": float(np.median(loops)),
        "loop_s_all": loops,
        "loop_windows_timed": n_loop,
        "backtest_s": float(np.median(backtest)),
        "backtest_s_all": backtest,
        "ratio": float(np.median(loops) / np.median(backtest)),
        "ratio_best": min(loops) / min(backtest),
        "chronos_batch_s": float(np.median(chronos)),
        "chronos_batch_s_all": chronos,
        "chronos_ratio": float(np.median(loops) / np.median(chronos)),
        "inference_s": inference,
        "outside_model_share": (total - inference) / total,
        "timings": median_run["timings"],
    }


REGIMES = {
    # overhead-bound: the test-suite's tiny model
    "tiny": (ArchSpec(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, context_length=512), 512),
    # compute-bound: ~7M parameters
    "small": (
        ArchSpec(d_model=256, d_kv=32, d_ff=1024, num_layers=6, num_heads=8, context_length=2048),
        2048,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--regime", choices=["tiny", "small", "both"], default="both")
    parser.add_argument("--loop-windows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timings of each side")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument(
        "--malloc",
        choices=["keep", "default"],
        default="keep",
        help="glibc allocator setting as CHRONOBT_MALLOC gives the CLI (both sides share the process)",
    )
    args = parser.parse_args()
    tuned = keep_freed_memory({"CHRONOBT_MALLOC": args.malloc})
    src = SHARED / "ETHUSDT_1h__binance-spot_stitched.parquet"
    if not src.exists():
        raise SystemExit(f"{src} not found: this benchmark reads ../shared/data")
    if args.regime == "both":  # one fresh process per regime, as separate CLI runs would be
        rows = []
        for regime in ("tiny", "small"):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                argv = [sys.executable, __file__, "--regime", regime, "--windows", str(args.windows)]
                argv += ["--repeats", str(args.repeats), "--json", out.name, "--malloc", args.malloc]
                if args.loop_windows:
                    argv += ["--loop-windows", str(args.loop_windows)]
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
                rows.extend(json.loads(Path(out.name).read_text()))
    else:
        with tempfile.TemporaryDirectory() as data_tmp:
            data_dir = Path(data_tmp)
            frame = pd.read_parquet(src)
            frame.iloc[-(args.windows * HORIZON + 2048 + 500) :].to_parquet(
                data_dir / "ETHUSDT.parquet", index=False
            )
            spec, context = REGIMES[args.regime]
            loop_windows = args.loop_windows or (args.windows if args.regime == "tiny" else 40)
            row = run_regime(args.regime, spec, context, args.windows, loop_windows, data_dir, args.repeats)
            rows = [row]
    print(
        f"# {time.strftime('%Y-%m-%d')} · {platform.processor() or platform.machine()} · "
        f"{torch.get_num_threads()} torch threads · torch {torch.__version__} · medians of "
        f"{args.repeats} interleaved runs · allocator: "
        + ("kept freed memory (CLI default)" if tuned else "glibc defaults")
    )
    header = (
        "regime",
        "params",
        "context",
        "windows",
        "loop s",
        "backtest s",
        "speed-up (median)",
        "speed-up (best vs best)",
        "chronos predict s",
        "chronos speed-up",
        "inference s",
        "outside model",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        cells = (
            r["regime"],
            f"{r['params'] / 1e6:.2f}M",
            r["context"],
            r["windows"],
            f"{r['loop_s']:.2f}",
            f"{r['backtest_s']:.2f}",
            f"{r['ratio']:.2f}x",
            f"{r['ratio_best']:.2f}x",
            f"{r['chronos_batch_s']:.2f}",
            f"{r['chronos_ratio']:.2f}x",
            f"{r['inference_s']:.2f}",
            f"{r['outside_model_share']:.1%}",
        )
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for r in rows:
        print(f"{r['regime']} stage timings of the median run (s): {json.dumps(r['timings'])}")
        print(f"{r['regime']} all runs: backtest {r['backtest_s_all']} loop {r['loop_s_all']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
