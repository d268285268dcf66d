"""Time the pure evaluation blocks of a backtest (windows, metrics, baselines, trading) at backtest scale.

Usage: python benchmarks/bench_evaluation_blocks.py [--windows 200] [--context 2048] [--horizon 24]
Synthetic random-walk OHLC-like data; no model. Prints one line per block (best of 15, milliseconds).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from chronobt.data.windows import cut_windows, plan_origins
from chronobt.evaluation import baselines, metrics, trading

LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def best_ms(fn: Callable[[], object], repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--horizon", type=int, default=24)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_bars = args.context + args.windows * args.horizon + args.horizon
    values = 1000 * np.exp(rng.normal(scale=0.01, size=(n_bars, 4)).cumsum(axis=0))
    plan = plan_origins(n_bars, horizon=args.horizon, context=args.context, windows=args.windows)
    contexts, futures = cut_windows(values, plan.origins, context=plan.context, horizon=args.horizon)
    assert futures is not None
    last = contexts[:, :, -1]
    quantiles = np.sort(futures[:, :, None, :] * rng.normal(1, 0.01, size=(1, 1, len(LEVELS), 1)), axis=2)
    median = quantiles[:, :, 4]
    scale = metrics.naive_scale(contexts)
    blocks: dict[str, Callable[[], object]] = {
        "cut_windows": lambda: cut_windows(values, plan.origins, context=plan.context, horizon=args.horizon),
        "naive_scale": lambda: metrics.naive_scale(contexts),
        "summarize (model)": lambda: metrics.summarize(
            actual=futures,
            median=median,
            quantiles=quantiles,
            levels=LEVELS,
            last=last,
            scale=scale,
            targets=["open", "high", "low", "close"],
        ),
        "run_baselines (3)": lambda: baselines.run_baselines(
            contexts, horizon=args.horizon, levels=LEVELS, season=24
        ),
        "trading.simulate": lambda: trading.simulate(
            last_close=last[:, 3],
            forecast_close=median[:, 3, -1],
            realized_close=futures[:, 3, -1],
            horizon=args.horizon,
            bars_per_year=8760,
            origins=plan.origins,
        ),
    }
    shape = f"windows={len(plan.origins)} context={plan.context} horizon={args.horizon}"
    print(f"{shape} variates=4 Q={len(LEVELS)}")
    for name, fn in blocks.items():
        print(f"{name:20s} {best_ms(fn):8.2f} ms")


if __name__ == "__main__":
    main()
