"""Sample-path inversion vs the model: ``inverse_quantiles`` (CPU, torch) against ``engine.predict``.

Workload: 200 windows of hourly BTCUSD (``data/BTCUSD.parquet``, OHLC, one window every 24
bars), context 512, horizon 24, ``differencing`` (path-dependent: 4,096 sample paths per window), the
bundled chronos2-mini on the CPU, the default 9 output quantiles. Each round times the model, the
library's CPU inversion (its compiled loops), the same inversion in plain numpy
(``benchmarks/numpy_inversion.py``: fancy indexing and a full sort) and the torch inversion (on
``--device``) once, interleaved; medians over ``--rounds``.

    python benchmarks/inversion_speed.py --rounds 3 [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from numpy_inversion import numpy_inverse_quantiles

from chronobt.augment import get_augmentation, inverse_quantiles
from chronobt.config import DEFAULT_QUANTILES
from chronobt.engine.core import Chronos2Engine, EngineConfig

DATA = Path(__file__).resolve().parents[1] / "data" / "BTCUSD.parquet"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="where the engine and the torch inversion run")
    parser.add_argument("--preaug", default="differencing")
    args = parser.parse_args(argv)
    prices = pd.read_parquet(DATA)[["open", "high", "low", "close"]].to_numpy(dtype=np.float64).T
    starts = np.arange(args.windows) * 24
    contexts = np.stack([prices[:, s : s + args.context] for s in starts])  # [w, 4, C]
    aug = get_augmentation(args.preaug)
    state = aug.fit(contexts)
    model_input = aug.transform(contexts, state)
    engine = Chronos2Engine(EngineConfig(model="bundled", device=args.device, compile="off"))
    engine.predict(model_input[:4], args.horizon)  # warm-up and the views' checks
    kwargs = {"levels": engine.quantile_levels, "state": state, "out_levels": DEFAULT_QUANTILES}
    times: dict[str, list[float]] = {"model": [], "cpu": [], "numpy": [], "torch": []}
    results = {}
    for _ in range(args.rounds):
        started = time.perf_counter()
        q = engine.predict(model_input, args.horizon).astype(np.float64)
        times["model"].append(time.perf_counter() - started)
        for name in ("cpu", "numpy", "torch"):
            started = time.perf_counter()
            if name == "numpy":
                results[name] = numpy_inverse_quantiles(aug, q, **kwargs)
            else:
                device = torch.device(args.device) if name == "torch" else None
                results[name] = inverse_quantiles(aug, q, device=device, **kwargs)
            times[name].append(time.perf_counter() - started)
    spread = results["cpu"][:, :, -1:] - results["cpu"][:, :, :1]  # q0.9 - q0.1 per window, variate, step
    med = {k: statistics.median(v) for k, v in times.items()}
    header = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "windows": args.windows,
        "context": args.context,
        "preaug": args.preaug,
        "rounds": args.rounds,
        "max_abs_diff_cpu_vs_numpy": float(np.max(np.abs(results["cpu"] - results["numpy"]))),
        "max_torch_vs_cpu_over_spread": float(np.max(np.abs(results["torch"] - results["cpu"]) / spread)),
    }
    print(json.dumps(header))
    print("| step | median s | vs model | all s |")
    print("|---|---|---|---|")
    for name, label in (
        ("model", "engine.predict"),
        ("cpu", "inversion CPU (compiled loops)"),
        ("numpy", "inversion in plain numpy"),
        ("torch", "inversion torch"),
    ):
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"| {label} | {med[name]:.2f} | {med[name] / med['model']:.2f}x | {runs} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
