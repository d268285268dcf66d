"""Sweep wall time: ``--executor ray`` (CPU actors) against ``local``, and the driver's cell write rate.

    python benchmarks/ray_sweep.py                 # 4 synthetic symbols, bundled chronos2-mini, 3 rounds
    python benchmarks/ray_sweep.py --rounds 5 --bars 4000
    python benchmarks/ray_sweep.py --write-rate    # only: cells/s the driver stores (write_json_atomic)

Each round runs the same sweep (``force``: every cell recomputed) once per mode, interleaved: ``local``
(one engine, every thread), ``ray warm`` (one executor kept across rounds: actors already hold the
model) and, in the first round only, ``ray cold`` (starts Ray and the actors, loads the model in each).
Prints each mode's median seconds and the ratio to local, the bytes of one shipped chunk, and the
driver's write rate. The machine may be shared: read the spread between rounds before the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import chronobt
from chronobt.atomic import write_json_atomic
from chronobt.config import SweepConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.runs.executors import RayExecutor
from chronobt.runs.sweep import run_sweep

PREAUGS = "none,differencing,log_returns"


def write_symbols(folder: Path, n_symbols: int, bars: int) -> tuple[str, ...]:
    folder.mkdir(parents=True, exist_ok=True)
    symbols = []
    for k in range(n_symbols):
        rng = np.random.default_rng(k)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
        open_ = np.concatenate([[100.0], close[:-1]])
        spread = np.abs(rng.normal(0, 0.004, bars)) * close
        pd.DataFrame(
            {
                "timestamp": pd.date_range("2020-01-01", periods=bars, freq="h", tz="UTC"),
                "open": open_,
                "high": np.maximum(open_, close) + spread,
                "low": np.minimum(open_, close) - spread,
                "close": close,
                "volume": rng.uniform(1, 10, bars),
            }
        ).to_parquet(folder / f"SYM{k}.parquet", index=False)
        symbols.append(f"SYM{k}")
    return tuple(symbols)


def write_rate(cell: dict[str, Any], folder: Path, n: int = 2000) -> float:
    """Cells per second ``write_json_atomic`` stores (one file each, fsync'd, as the driver does)."""
    t0 = time.perf_counter()
    for i in range(n):
        write_json_atomic(folder / f"SYM{i % 50}" / f"none__{i:016x}.json", cell)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--bars", type=int, default=3000)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-rate", action="store_true", help="only measure the driver's write rate")
    args = parser.parse_args()
    model = str(Path(chronobt.__file__).parent / "assets" / "chronos2-mini")
    engine_config = EngineConfig(model=model, device="cpu", compile="off")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        symbols = write_symbols(root / "data", args.symbols, args.bars)
        config = SweepConfig(
            symbols=symbols,
            preaugs=(PREAUGS,),
            horizon=24,
            context=args.context,
            validation_windows=30,
            test_windows=20,
            data_dir=root / "data",
            output_dir=root / "out",
            force=True,
        )
        engine = Chronos2Engine(engine_config)
        if not args.write_rate:
            seconds = sweep_rounds(config, engine, engine_config, args.rounds)
            local = statistics.median(seconds["local"])
            for mode, values in seconds.items():
                ratio = statistics.median(values) / local
                runs = ", ".join(f"{v:.1f}" for v in values)
                print(f"{mode:>9}: median {statistics.median(values):6.1f} s ({runs}); {ratio:.2f}x local")
        else:
            stamps: list[float] = []

            def on_progress(stage: str, done: int, total: int) -> None:
                if stage == "prepare":
                    stamps.append(time.perf_counter())

            t0 = time.perf_counter()
            run_sweep(config, engine=engine, progress=on_progress)
            per_symbol = (stamps[-1] - t0) / len(symbols)
            print(f"driver prepares a symbol (load, cut windows, keys) in {per_symbol:.3f} s")
        cell = json.loads(next((root / "out" / "sweep" / "cells").rglob("*.json")).read_text())
        print(f"one cell: {len(json.dumps(cell))} bytes of JSON")
        print(f"driver writes {write_rate(cell, root / 'rate'):,.0f} cells/s (write_json_atomic, fsync)")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, load average {load}")


def sweep_rounds(
    config: SweepConfig, engine: Chronos2Engine, engine_config: EngineConfig, rounds: int
) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {"local": [], "ray cold": [], "ray warm": []}
    t0 = time.perf_counter()
    with RayExecutor(engine_config) as cold:
        run_sweep(config, engine=engine, executor=cold)
    seconds["ray cold"].append(time.perf_counter() - t0)
    warm = RayExecutor(engine_config)
    with warm:
        run_sweep(config, engine=engine, executor=warm)  # starts the actors
        for _ in range(rounds):
            for mode in ("local", "ray warm"):
                t0 = time.perf_counter()
                run_sweep(config, engine=engine, executor=warm if mode == "ray warm" else None)
                seconds[mode].append(time.perf_counter() - t0)
        shipped = len(pickle.dumps(chunk_example(config, engine)))
    print(f"one shipped chunk (a symbol's windows, 3 specs): {shipped / 1e6:.2f} MB pickled")
    return seconds


def chunk_example(config: SweepConfig, engine: Chronos2Engine) -> Any:
    """The chunk the driver ships for the first symbol (as :func:`chronobt.runs.sweep.run_sweep` builds
    it)."""
    from chronobt.augment import candidate_specs
    from chronobt.pipeline.covariates import RunLabel
    from chronobt.pipeline.jobs import load_symbol, model_context, prepare_windows
    from chronobt.runs.cells import SymbolSweep, cell_key, model_identity
    from chronobt.runs.chunks import SweepChunk
    from chronobt.runs.sweep import split_windows

    ohlc = load_symbol(config.symbols[0], config)
    sw = prepare_windows(ohlc, config, windows=config.windows, context=model_context(config, engine))
    split = split_windows(sw.origins, validation=30, test=20, horizon=config.horizon, label=sw.symbol)
    specs = [RunLabel(s) for s in candidate_specs(config.preaugs)]
    plan = SymbolSweep(sw, split, {s: cell_key(sw, s, config, model_identity(engine)) for s in specs})
    return SweepChunk(plan, tuple(specs), config).shipped()


if __name__ == "__main__":
    main()
