"""Batched `run_backtest` vs one chronos `predict_df` call per window, on the same model and windows.

Two regimes (issue 5's acceptance goals on a 2-core CPU, 200 windows, horizon 24):

* overhead-bound: tiny random Chronos-2 at context 512  -> goal: backtest >= 8x the loop
* compute-bound: ~7M-parameter Chronos-2 at context 2048 -> goal: backtest >= 1.4x the loop

and in both, time spent outside the model (prepare, augment, invert, metrics, write) under 10% of the total.

Usage::

    python benchmarks/backtest_speed.py [--windows 200] [--regime tiny|small|both] [--loop-windows N]

The loop is timed on ``--loop-windows`` windows (default: all) and scaled to the full count when fewer, so
the compute-bound case stays within a few minutes. Data: hourly ETHUSDT from ../shared/data/ohlc (a real
24/7 series long enough for 200 windows at context 2048), copied to a temp data dir as a parquet file.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from chronobt.backtest import BacktestConfig, prepare_symbol, run_backtest
from chronobt.checkpoints import ArchSpec, save_random_checkpoint
from chronobt.engine import Chronos2Engine, EngineConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ohlc"
HORIZON = 24


def loop_predict_df(pipeline, contexts: np.ndarray, index: list[pd.DatetimeIndex], horizon: int) -> float:
    """Seconds for one ``predict_df`` call per window (the per-window pattern the engine replaces)."""
    t0 = time.perf_counter()
    for w in range(len(contexts)):
        valid = ~np.isnan(contexts[w, 0])
        df = pd.DataFrame(
            {"item_id": "w", "timestamp": index[w].tz_localize(None)}
            | {name: contexts[w, v, valid] for v, name in enumerate(("open", "high", "low", "close"))}
        )
        pipeline.predict_df(df, target=["open", "high", "low", "close"], prediction_length=horizon)
    return time.perf_counter() - t0


def run_regime(
    name: str, spec: ArchSpec, context: int, windows: int, loop_windows: int, data_dir: Path
) -> dict:
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
        # warm-up (first forward allocates), then the timed run
        run_backtest(BacktestConfig(**{**config.__dict__, "windows": 2}), engine=engine)
        t0 = time.perf_counter()
        report = run_backtest(config, engine=engine)
        total = time.perf_counter() - t0
        summary = report.results[0].summary
        timings = summary["timings"]
        inference = timings["inference"]

        sw = prepare_symbol("ETHUSDT", config)
        times = sw.ohlc.frame.index
        n_loop = min(loop_windows, len(sw.origins))
        idx = [times[max(0, o - sw.contexts.shape[-1] + 1) : o + 1] for o in sw.origins[:n_loop]]
        ctx = sw.contexts[:n_loop]
        # align each index to its valid (non-padded) part
        idx = [ix[-int((~np.isnan(c[0])).sum()) :] for ix, c in zip(idx, ctx, strict=True)]
        loop = loop_predict_df(engine.pipeline, ctx, idx, HORIZON) * len(sw.origins) / n_loop
    n_params = sum(p.numel() for p in engine.pipeline.model.parameters())
    return {
        "regime": name,
        "params": n_params,
        "context": context,
        "windows": len(sw.origins),
        "loop_s": loop,
        "loop_windows_timed": n_loop,
        "backtest_s": total,
        "ratio": loop / total,
        "inference_s": inference,
        "outside_model_share": (total - inference) / total,
        "timings": timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--regime", choices=["tiny", "small", "both"], default="both")
    parser.add_argument("--loop-windows", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    src = SHARED / "ETHUSDT_1h__binance-spot_stitched.parquet"
    if not src.exists():
        raise SystemExit(f"{src} not found: this benchmark reads ../shared/data")
    rows = []
    with tempfile.TemporaryDirectory() as data_tmp:
        data_dir = Path(data_tmp)
        frame = pd.read_parquet(src)
        frame.iloc[-(args.windows * HORIZON + 2048 + 500) :].to_parquet(
            data_dir / "ETHUSDT.parquet", index=False
        )
        if args.regime in ("tiny", "both"):
            spec = ArchSpec(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, context_length=512)
            rows.append(
                run_regime("tiny", spec, 512, args.windows, args.loop_windows or args.windows, data_dir)
            )
        if args.regime in ("small", "both"):
            spec = ArchSpec(d_model=256, d_kv=32, d_ff=1024, num_layers=6, num_heads=8, context_length=2048)
            rows.append(run_regime("small", spec, 2048, args.windows, args.loop_windows or 40, data_dir))
    print(
        f"# {time.strftime('%Y-%m-%d')} · {platform.processor() or platform.machine()} · "
        f"{torch.get_num_threads()} torch threads · torch {torch.__version__}"
    )
    header = (
        "regime",
        "params",
        "context",
        "windows",
        "loop s",
        "backtest s",
        "speed-up",
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
            f"{r['loop_s']:.1f}",
            f"{r['backtest_s']:.1f}",
            f"{r['ratio']:.1f}x",
            f"{r['inference_s']:.1f}",
            f"{r['outside_model_share']:.1%}",
        )
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for r in rows:
        print(f"{r['regime']} stage timings (s): {json.dumps(r['timings'])}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
