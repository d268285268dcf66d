"""Engine throughput: chronos' per-window loop and batched predict vs Chronos2Engine eager/bf16/compiled.

Workload: rolling windows of a synthetic OHLC random walk (4 variates forecast jointly), context
2048, horizon 24, on a random-init Chronos-2 of the chosen size (``full`` = amazon/chronos-2 compute).

    python benchmarks/engine_gpu.py                 # CUDA if present (full, 512 windows), else CPU mode
    python benchmarks/engine_gpu.py --device cpu    # CPU mode: "small" (~7M params), 64 windows
    python benchmarks/engine_gpu.py --modes engine-bf16,compiled-bf16 --json-out results.json

Modes
-----
loop            chronos ``predict_df`` once per window (the slow reference path; fewer windows, rate scaled)
chronos-batch   chronos ``Chronos2Pipeline.predict`` on the whole array, float32, batch 256
engine-fp32     Chronos2Engine eager float32
engine-bf16     Chronos2Engine eager bfloat16 (CUDA only)
compiled-fp32   Chronos2Engine + torch.compile (inductor, static shapes)
compiled-bf16   the same in bfloat16 (CUDA only)
compiled-bf16-cg  bfloat16 + compile mode reduce-overhead (CUDA graphs; CUDA only)

Each engine mode runs the workload twice: the first call includes compilation, the second is the
steady-state rate reported as windows/s. Every mode is checked against engine-fp32: max |diff| over all
quantiles divided by max |reference| (tolerance 1e-4 for float32 modes, 3e-2 for bfloat16).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from chronobt.engine.checkpoints import random_model
from chronobt.engine.core import Chronos2Engine, EngineConfig

CUDA_MODES = (
    "loop",
    "chronos-batch",
    "engine-fp32",
    "engine-bf16",
    "compiled-fp32",
    "compiled-bf16",
    "compiled-bf16-cg",
)
# inductor on a small CPU compiles for minutes (RESULTS.md, engine_gpu.py): compiled modes opt-in there
CPU_MODES = ("loop", "chronos-batch", "engine-fp32")
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2}


@dataclass
class Row:
    mode: str
    windows: int
    seconds: float
    windows_per_s: float
    first_call_s: float | None = None
    compile_s: float | None = None
    compilations: int | None = None
    fallback: str | None = None
    peak_gpu_gb: float | None = None
    rel_error: float | None = None
    reference_ok: bool | None = None
    error: str | None = None


def rolling_ohlc(n_windows: int, context: int, *, seed: int = 0) -> np.ndarray:
    """[n_windows, 4, context] rolling windows (stride 1) of a synthetic OHLC random walk."""
    rng = np.random.default_rng(seed)
    n_bars = context + n_windows - 1
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n_bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.004, n_bars)) * close
    ohlc = np.stack([open_, np.maximum(open_, close) + spread, np.minimum(open_, close) - spread, close])
    windows = np.lib.stride_tricks.sliding_window_view(ohlc, context, axis=1)  # [4, n_windows, context]
    return np.ascontiguousarray(windows.transpose(1, 0, 2))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gb(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_loop(engine: Chronos2Engine, contexts: np.ndarray, horizon: int, n_loop: int, device: str) -> tuple:
    """chronos predict_df once per window on the first ``n_loop`` windows."""
    pipeline = engine.pipeline
    levels = list(engine.quantile_levels)
    timestamps = pd.date_range("2024-01-01", periods=contexts.shape[2], freq="h")
    targets = ["open", "high", "low", "close"]
    out = np.empty((n_loop, 4, len(levels), horizon), dtype=np.float32)
    sync(device)
    started = time.perf_counter()
    for i in range(n_loop):
        frame = pd.DataFrame(
            {"item_id": "w", "timestamp": timestamps, **dict(zip(targets, contexts[i], strict=True))}
        )
        pred = pipeline.predict_df(
            frame, target=targets, prediction_length=horizon, quantile_levels=levels, freq="h"
        )
        values = pred[[str(q) for q in levels]].to_numpy(dtype=np.float32)  # [(variate, step), Q]
        out[i] = values.reshape(4, horizon, len(levels)).transpose(0, 2, 1)
    sync(device)
    return out, time.perf_counter() - started


def run_chronos_batch(engine: Chronos2Engine, contexts: np.ndarray, horizon: int, device: str) -> tuple:
    sync(device)
    started = time.perf_counter()
    preds = engine.pipeline.predict(contexts, prediction_length=horizon, batch_size=256)
    out = torch.stack(preds).numpy()
    sync(device)
    return out, time.perf_counter() - started


def rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--arch", default=None, help="checkpoint size: tiny, small, full (default by device)")
    parser.add_argument("--windows", type=int, default=None, help="rolling windows (512 CUDA, 64 CPU)")
    parser.add_argument("--loop-windows", type=int, default=None, help="windows for the predict_df loop")
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=None, help="engine series per forward")
    parser.add_argument("--modes", default=None, help=f"comma list from {','.join(CUDA_MODES)}")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    on_cuda = device.startswith("cuda")
    arch = args.arch or ("full" if on_cuda else "small")
    n_windows = args.windows or (512 if on_cuda else 64)
    n_loop = min(args.loop_windows or (64 if on_cuda else 8), n_windows)
    modes = args.modes.split(",") if args.modes else list(CUDA_MODES if on_cuda else CPU_MODES)
    contexts = rolling_ohlc(n_windows, args.context)
    horizon = args.horizon

    with tempfile.TemporaryDirectory() as tmp:
        model = random_model(arch, seed=0)
        n_params = sum(p.numel() for p in model.parameters())
        model_dir = Path(tmp) / arch
        model.save_pretrained(model_dir)
        del model

        def engine(dtype: str, compile_: str, mode: str | None = None) -> Chronos2Engine:
            config = EngineConfig(
                model=str(model_dir),
                device=device,
                dtype=dtype,
                compile=compile_,
                compile_mode=mode,
                batch_size=args.batch_size,
            )
            return Chronos2Engine(config)

        reference: np.ndarray | None = None
        rows: list[Row] = []
        base = engine("float32", "off")
        spec = {
            "engine-fp32": ("float32", "off", None),
            "engine-bf16": ("bfloat16", "off", None),
            "compiled-fp32": ("float32", "on", None),
            "compiled-bf16": ("bfloat16", "on", None),
            "compiled-bf16-cg": ("bfloat16", "on", "reduce-overhead"),
        }
        ordered = ["engine-fp32"] + [m for m in modes if m != "engine-fp32"]
        for mode in ordered:
            print(f"running {mode} ...", file=sys.stderr, flush=True)
            reset_peak(device)
            row = Row(mode=mode, windows=n_windows, seconds=math.nan, windows_per_s=math.nan)
            try:
                if mode == "loop":
                    out, seconds = run_loop(base, contexts, horizon, n_loop, device)
                    row.windows, row.seconds = n_loop, seconds
                elif mode == "chronos-batch":
                    out, seconds = run_chronos_batch(base, contexts, horizon, device)
                    row.seconds = seconds
                else:
                    dtype, compile_, cmode = spec[mode]
                    eng = base if mode == "engine-fp32" else engine(dtype, compile_, cmode)
                    sync(device)
                    started = time.perf_counter()
                    eng.predict(contexts, horizon)
                    sync(device)
                    row.first_call_s = time.perf_counter() - started
                    started = time.perf_counter()
                    out = eng.predict(contexts, horizon)
                    sync(device)
                    row.seconds = time.perf_counter() - started
                    record = eng.record()["compile"]
                    if compile_ == "on":
                        row.compile_s = record["compile_seconds"]
                        row.compilations = record["compilations"]
                        row.fallback = record["fallback_reason"]
                    if eng.record()["dtype"] != dtype:
                        row.error = f"ran {eng.record()['dtype']} instead of {dtype}"
                row.windows_per_s = row.windows / row.seconds
                row.peak_gpu_gb = peak_gb(device)
                if mode == "engine-fp32":
                    reference = out
                if reference is not None:
                    row.rel_error = rel_error(out, reference[: len(out)])
                    tol = TOLERANCE["bfloat16" if "bf16" in mode else "float32"]
                    row.reference_ok = row.rel_error <= tol
            except Exception as exc:  # a mode that cannot run is reported, not fatal
                row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            rows.append(row)

    header = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": torch.cuda.get_device_name()
        if on_cuda
        else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads, no GPU",
        "torch": torch.__version__,
        "arch": arch,
        "params_m": round(n_params / 1e6, 1),
        "context": args.context,
        "horizon": horizon,
        "windows": n_windows,
        "batch_size": base.batch_size,
    }
    print(json.dumps(header))
    print(
        "| mode | windows | s | windows/s | first call s | compile s | compilations | fallback | "
        "peak GPU GB | rel. error vs fp32 | ok |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [
            r.mode,
            r.windows,
            _f(r.seconds),
            _f(r.windows_per_s, 1),
            _f(r.first_call_s),
            _f(r.compile_s),
            r.compilations,
            r.fallback or r.error,
            _f(r.peak_gpu_gb),
            _f(r.rel_error, 7),
            r.reference_ok,
        ]
        print("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    if args.json_out:
        args.json_out.write_text(json.dumps({"header": header, "rows": [asdict(r) for r in rows]}, indent=2))
    return 0


def _f(value: float | None, digits: int = 2) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return f"{value:.{digits}g}" if digits > 4 else f"{value:.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
