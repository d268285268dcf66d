"""The main command end to end against chronos' own batched ``predict`` plus the same numpy inversion.

The CPU ratio: ``chronobt backtest BTCUSD --preaug differencing`` (``run_backtest``: data file,
windows, augmentation, the engine, the sample-path inversion with ``--dependence auto``, metrics,
baselines, significance, writing) in windows/s, against the bare reference on the same windows: the
differenced contexts through ``Chronos2Pipeline.predict`` (chronos' batching, at the engine's batch size)
followed by the same inversion in plain numpy with independent steps (``benchmarks/numpy_inversion.py``:
the library's draws, inverse and exact quantiles with numpy's fancy indexing and a full sort; no
dependence fit, no scoring, no files). Both on the bundled chronos2-mini, hourly
``data/BTCUSD.parquet``, in the same process, one of each per round, interleaved; medians over
``--rounds``.

    python benchmarks/main_command.py --windows 200 --rounds 5
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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numpy_inversion import numpy_inverse_quantiles

from chronobt.augment import get_augmentation
from chronobt.config import BacktestConfig
from chronobt.data import load_ohlc
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.pipeline.jobs import model_context, prepare_windows
from chronobt.runs.backtest import run_backtest

DATA = Path(__file__).resolve().parents[1] / "data"


def reference(engine: Chronos2Engine, contexts: np.ndarray, config: BacktestConfig) -> tuple[float, float]:
    """Seconds for chronos' batched ``predict`` and for the numpy inversion of the same windows."""
    aug = get_augmentation(config.preaug)
    started = time.perf_counter()
    state = aug.fit(contexts)
    tasks = [torch.as_tensor(c) for c in aug.transform(contexts, state)]
    batch = engine.record()["batch_size"]
    out = engine.pipeline.predict(tasks, prediction_length=config.horizon, batch_size=batch)
    q = np.stack([t.float().numpy() for t in out]).astype(np.float64)  # [w, v, Q, h]
    predicted = time.perf_counter()
    numpy_inverse_quantiles(
        aug, q, levels=engine.quantile_levels, state=state, out_levels=config.quantiles, seed=config.seed
    )
    return predicted - started, time.perf_counter() - predicted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--symbol", default="BTCUSD", help="a symbol in data/ (BTCUSD: hourly)")
    parser.add_argument("--preaug", default="differencing")
    args = parser.parse_args(argv)
    engine = Chronos2Engine(EngineConfig(model="bundled", device="cpu", compile="off"))
    times: dict[str, list[float]] = {"chronobt": [], "reference": [], "predict": [], "invert": []}
    with tempfile.TemporaryDirectory() as tmp:
        config = BacktestConfig(
            symbols=(args.symbol,),
            preaug=args.preaug,
            windows=args.windows,
            data_dir=DATA,
            output_dir=Path(tmp),
        )
        sw = prepare_windows(
            load_ohlc(args.symbol, DATA), config, windows=args.windows, context=model_context(config, engine)
        )
        run_backtest(config, engine=engine)  # warm-up: first forwards, the views' checks
        reference(engine, sw.contexts, config)
        timings = {}
        for _ in range(args.rounds):
            started = time.perf_counter()
            report = run_backtest(config, engine=engine)
            times["chronobt"].append(time.perf_counter() - started)
            timings = report.results[0].summary["timings"]
            predict_s, invert_s = reference(engine, sw.contexts, config)
            times["predict"].append(predict_s)
            times["invert"].append(invert_s)
            times["reference"].append(predict_s + invert_s)
    n = len(sw.origins)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} torch threads",
                "torch": torch.__version__,
                "symbol": args.symbol,
                "preaug": args.preaug,
                "windows": n,
                "context": int(sw.contexts.shape[-1]),
                "rounds": args.rounds,
                "batch_size": engine.record()["batch_size"],
                "last_chronobt_timings_s": timings,
            }
        )
    )
    print("| run | median s | windows/s | all s |")
    print("|---|---|---|---|")
    for name, label in (
        ("chronobt", "chronobt backtest, end to end"),
        ("reference", "chronos predict + numpy inversion"),
        ("predict", "- of which chronos predict"),
        ("invert", "- of which numpy inversion (independent steps)"),
    ):
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {label} | {med[name]:.2f} | {n / med[name]:.1f} | {runs} |")
    print(f"ratio (chronobt windows/s / reference windows/s): {med['reference'] / med['chronobt']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
