"""One table of every GPU measurement (run by ``benchmarks/gpu_checks.sh``; ``--device cpu`` rehearses it).

Rows, on rolling windows of a synthetic OHLC random walk (4 variates), random-init Chronos-2:

* ``loop``: chronos ``predict_df`` once per window (fewer windows, rate scaled);
* ``chronos-batch fp32 / bf16``: chronos ``Chronos2Pipeline.predict`` on the whole array, batch 256;
* ``engine eager fp32 / bf16``: Chronos2Engine (bf16 at each of ``--batches``; the best one is kept);
* ``engine compiled bf16``: ``--compile on`` at the best eager bf16 batch (steady-state rate; compile s);
* ``backtest differencing``: ``run_backtest`` end to end (data file, windows, augmentation, model,
  inversion, metrics, files) with ``--compile auto`` at the best batch; its stage timings in the note;
* ``inversion host / torch``: the path-sampling inversion of that backtest's quantiles, on the host (the
  compiled CPU loops) and on the engine's device;
* ``compile process 1 / 2``: a fresh process compiling the engine with an empty, then the same, cache
  folder (``EngineConfig.cache_dir``): compile seconds and inductor's cache hits;
* ``lora steps``: ``Chronos2Pipeline.fit(finetune_mode="lora")`` on the windows' contexts,
  timed and given as seconds per 1,000 steps (200 steps on CUDA, batch 32; 3 in the rehearsal).

Full size on CUDA (``full`` config, 512 windows, context 2048, horizon 24); ``--device cpu`` runs the same
code at tiny sizes, with the ``aot_eager`` backend (inductor needs minutes on a small CPU).

``--out DIR`` writes the table as ``DIR/gpu_table.json`` (the folder is made when missing); without it the
table is only printed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_gpu import rolling_ohlc, run_chronos_batch, run_loop

from chronobt.engine.checkpoints import random_model
from chronobt.engine.core import Chronos2Engine, EngineConfig, load_pipeline

SIZES = {
    "cuda": {
        "arch": "full",
        "windows": 512,
        "loop": 32,
        "context": 2048,
        "batches": "256,512,1024",
        "lora": 200,
    },
    "cpu": {"arch": "tiny", "windows": 16, "loop": 2, "context": 512, "batches": "16,32", "lora": 3},
}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def row(mode: str, windows: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "mode": mode,
        "windows": windows,
        "s": round(seconds, 3),
        "windows_per_s": windows / seconds,
        **extra,
    }


def timed(device: str, fn: Any) -> tuple[Any, float]:
    sync(device)
    started = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - started


def compile_probe(args: argparse.Namespace) -> int:
    """(child process) compile the engine once with ``--cache-dir``; print its compile record as JSON."""
    config = EngineConfig(
        model=args.model_dir,
        device=args.device,
        dtype="bfloat16",
        compile="on",
        compile_backend=args.backend,
        batch_size=args.batch,
        cache_dir=Path(args.cache_dir),
    )
    engine = Chronos2Engine(config)
    contexts = rolling_ohlc(max(1, args.batch // 4), args.context)
    _, seconds = timed(args.device, lambda: engine.predict(contexts, args.horizon))
    print(json.dumps({"first_call_s": seconds, **engine.record()["compile"]}))
    return 0


def write_ohlc(data_dir: Path, n_bars: int) -> None:
    rng = np.random.default_rng(1)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n_bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.004, n_bars)) * close
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2020-01-01", periods=n_bars, freq="h", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.uniform(1, 10, n_bars),
        }
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(data_dir / "SYN.parquet", index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--windows", type=int, default=None)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_table.json (default: none)")
    parser.add_argument("--compile-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--context", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    on_cuda = args.device.startswith("cuda")
    size = SIZES["cuda" if on_cuda else "cpu"]
    args.context = args.context or size["context"]
    args.backend = args.backend or ("inductor" if on_cuda else "aot_eager")
    if args.compile_probe:
        return compile_probe(args)
    n_windows, horizon, device = args.windows or size["windows"], args.horizon, args.device
    contexts = rolling_ohlc(n_windows, args.context)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / size["arch"]
        model = random_model(size["arch"], seed=0)
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(model_dir)
        del model

        def engine(dtype: str, compile_: str, batch: int | None = None, **kw: Any) -> Chronos2Engine:
            config = EngineConfig(
                model=str(model_dir), device=device, dtype=dtype, compile=compile_, batch_size=batch, **kw
            )
            return Chronos2Engine(config)

        def attempt(mode: str, fn: Any) -> Any:
            print(f"running {mode} ...", file=sys.stderr, flush=True)
            reset_peak(device)
            try:
                return fn()
            except Exception as exc:  # a mode that cannot run is a row with its error, not a failed run
                rows.append({"mode": mode, "note": f"{type(exc).__name__}: {str(exc)[:160]}"})
                return None
            finally:  # each row as it comes, so a run stopped at its time limit still reports
                print(json.dumps(rows[-1] if rows else {}, default=str), file=sys.stderr, flush=True)

        base = engine("float32", "off")
        reference, _ = base.predict(contexts, horizon), None
        rel = lambda got: float(np.nanmax(np.abs(got - reference[: len(got)])) / np.nanmax(np.abs(reference)))  # noqa: E731

        def loop() -> None:
            out, s = run_loop(base, contexts, horizon, size["loop"], device)
            rows.append(row("loop fp32", size["loop"], s, peak_gb=peak_gb(device), rel_err=rel(out)))

        def chronos_batch(dtype: torch.dtype) -> None:
            owner: Any = base
            if dtype != torch.float32:  # its own copy: casting back would change the reference's weights
                pipeline = load_pipeline(model_dir)
                pipeline.model.to(device=device, dtype=dtype)
                owner = SimpleNamespace(pipeline=pipeline)
            out, s = run_chronos_batch(owner, contexts, horizon, device)
            name = "chronos-batch " + ("bf16" if dtype == torch.bfloat16 else "fp32")
            rows.append(row(name, n_windows, s, peak_gb=peak_gb(device), rel_err=rel(out.astype(np.float32))))

        def eager(dtype: str, batch: int | None) -> float:
            eng = base if dtype == "float32" and batch is None else engine(dtype, "off", batch)
            eng.predict(contexts[:2], horizon)
            out, s = timed(device, lambda: eng.predict(contexts, horizon))
            name = f"engine eager {'bf16' if dtype == 'bfloat16' else 'fp32'}"
            note = f"batch {eng.record()['batch_size']}, dtype ran {eng.record()['dtype']}"
            rows.append(row(name, n_windows, s, peak_gb=peak_gb(device), rel_err=rel(out), note=note))
            return s

        attempt("loop fp32", loop)
        attempt("chronos-batch fp32", lambda: chronos_batch(torch.float32))
        attempt("chronos-batch bf16", lambda: chronos_batch(torch.bfloat16))
        attempt("engine eager fp32", lambda: eager("float32", None))
        bf16 = {
            b: attempt(f"engine eager bf16 {b}", lambda b=b: eager("bfloat16", b))
            for b in _ints(size["batches"])
        }
        best = min((s, b) for b, s in bf16.items() if s is not None)[1] if any(bf16.values()) else 256

        def compiled() -> None:
            eng = engine("bfloat16", "on", best, compile_backend=args.backend, cache_dir=Path(tmp) / "cache0")
            _, first = timed(device, lambda: eng.predict(contexts, horizon))
            out, s = timed(device, lambda: eng.predict(contexts, horizon))
            record = eng.record()["compile"]
            note = f"batch {best}, first call {first:.1f} s, fallback {record['fallback_reason']}"
            rows.append(
                row(
                    "engine compiled bf16",
                    n_windows,
                    s,
                    compile_s=record["compile_seconds"],
                    peak_gb=peak_gb(device),
                    rel_err=rel(out),
                    note=note,
                )
            )

        attempt("engine compiled bf16", compiled)
        quantiles: dict[str, Any] = {}

        def backtest() -> None:
            from chronobt.config import BacktestConfig
            from chronobt.runs.backtest import run_backtest

            data_dir = Path(tmp) / "data"
            write_ohlc(data_dir, args.context + n_windows + horizon + 8)
            eng = engine(
                "bfloat16", "auto", best, compile_backend=args.backend, cache_dir=Path(tmp) / "cache0"
            )
            config = BacktestConfig(
                symbols=("SYN",),
                preaug="differencing",
                horizon=horizon,
                context=args.context,
                windows=n_windows,
                stride=1,
                data_dir=data_dir,
                output_dir=Path(tmp) / "out",
                dependence="independent",  # "auto" learns a copula with scipy (absent on the GPU machine?)
            )
            report, s = timed(device, lambda: run_backtest(config, engine=eng))
            timings = report.results[0].summary["timings"]
            decision = eng.record()["compile"]["decision"]
            note = "stages " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()) + f"; {decision}"
            rows.append(row("backtest differencing", n_windows, s, peak_gb=peak_gb(device), note=note))
            quantiles["q"] = eng.predict(contexts, horizon)

        attempt("backtest differencing", backtest)

        def inversion(on_device: bool) -> None:
            from chronobt.augment import get_augmentation, inverse_quantiles

            aug = get_augmentation("differencing")
            state = aug.fit(contexts)
            q = quantiles.get("q")
            q = base.predict(aug.transform(contexts, state), horizon) if q is None else q
            dev = torch.device(device) if on_device else None
            kwargs = {
                "levels": base.quantile_levels,
                "state": state,
                "out_levels": (0.1, 0.5, 0.9),
                "device": dev,
            }
            _, s = timed(device, lambda: inverse_quantiles(aug, q.astype(np.float64), **kwargs))
            rows.append(row(f"inversion {'torch ' + device if on_device else 'host'}", n_windows, s))

        attempt("inversion host", lambda: inversion(False))
        attempt("inversion torch", lambda: inversion(True))

        cache = Path(tmp) / "cache-probe"
        for process in (1, 2):

            def probe(process: int = process) -> None:
                command = [
                    sys.executable,
                    __file__,
                    "--compile-probe",
                    "--device",
                    device,
                    "--model-dir",
                    str(model_dir),
                    "--cache-dir",
                    str(cache),
                    "--batch",
                    str(best),
                    "--context",
                    str(args.context),
                    "--backend",
                    args.backend,
                ]
                done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
                record = json.loads(done.stdout.strip().splitlines()[-1])
                note = (
                    f"cache hits {record['cache_hits']}, misses {record['cache_misses']}, "
                    f"first call {record['first_call_s']:.1f} s"
                )
                rows.append(
                    {
                        "mode": f"compile process {process}",
                        "compile_s": record["compile_seconds"],
                        "note": note,
                    }
                )

            attempt(f"compile process {process}", probe)

        def lora() -> None:
            steps = size["lora"]
            pipeline = engine("float32", "off").pipeline
            series = [c[:, ~np.isnan(c).any(axis=0)] for c in contexts]
            t0 = time.perf_counter()
            pipeline.fit(
                series, prediction_length=horizon, finetune_mode="lora", context_length=args.context,
                num_steps=steps, batch_size=32, output_dir=Path(tmp) / "lora", disable_tqdm=True,
            )  # fmt: skip
            sync(device)
            s = time.perf_counter() - t0
            per_1000 = s / steps * 1000
            note = f"{steps} steps in {s:.1f} s, batch 32: {per_1000:.0f} s per 1,000 steps"
            rows.append({"mode": "lora steps", "s": round(s, 3), "peak_gb": peak_gb(device), "note": note})

        attempt("lora steps", lora)

    header = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": torch.cuda.get_device_name()
        if on_cuda
        else f"{platform.processor() or 'cpu'} (rehearsal)",
        "torch": torch.__version__,
        "arch": size["arch"],
        "params_m": round(n_params / 1e6, 1),
        "context": args.context,
        "horizon": horizon,
        "windows": n_windows,
        "best_bf16_batch": best,
    }
    print(json.dumps(header))
    print("| mode | windows | s | windows/s | compile s | peak GB | rel. error vs engine fp32 | note |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [
            r.get("mode"),
            r.get("windows"),
            r.get("s"),
            _f(r.get("windows_per_s")),
            r.get("compile_s"),
            r.get("peak_gb"),
            _f(r.get("rel_err"), 7),
            r.get("note"),
        ]
        print("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_table.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    return 0


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",")]


def _f(value: float | None, digits: int = 1) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return f"{value:.{digits}g}" if digits > 4 else f"{value:.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
