"""Time the trading view (every strategy's decisions, bar-by-bar fills, costs, tables) beside the scoring.

Usage: python benchmarks/trading_speed.py [--windows 10000] [--horizon 24] [--context 512] [--repeat 3]

Synthetic hourly random-walk OHLC bars (a few forward-filled), cut into ``--windows`` non-overlapping
rolling windows as a backtest cuts them; random monotone price quantiles around the realised bars stand
in for the model (no model is loaded). Times, best of ``--repeat``:

- ``evaluate``: the whole scoring of the backtest (metrics, baselines, Diebold-Mariano tests, the trading
  view of the four strategies), what a backtest spends after inference;
- ``trading_view`` with the four strategies (sign, band, kelly, range), and each strategy alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from chronobt.config import EvaluationOptions
from chronobt.data import load_ohlc
from chronobt.evaluation.evaluate import evaluate, trading_view
from chronobt.pipeline.jobs import prepare_windows

LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
STRATEGIES = ("sign", "band", "kelly", "range")


def best_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bars(n: int, rng: np.random.Generator) -> pd.DataFrame:
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2000-01-01", periods=n, freq="h", tz="UTC"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
        }
    )
    return frame.drop(index=rng.choice(np.arange(100, n - 100), size=n // 2000, replace=False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=10_000)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    options = EvaluationOptions(
        horizon=args.horizon,
        context=args.context,
        quantiles=LEVELS,
        strategies=STRATEGIES,
        max_gap=10,
        slippage_bps=2.0,
        borrow_rate=0.05,
        allow_short=True,
    )
    n_bars = args.context + (args.windows + 2) * args.horizon
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "SYN.parquet"
        bars(n_bars, rng).to_parquet(path, index=False)
        ohlc = load_ohlc(path, max_gap=10)
        sw = prepare_windows(ohlc, options, windows=args.windows, context=args.context, log_notes=False)
    futures = np.where(np.isnan(sw.futures), sw.last[:, :, None], sw.futures)
    noise = np.sort(rng.normal(0, 0.01, (1, 1, len(LEVELS), 1)), axis=2)
    price_q = futures[:, :, None, :] * np.exp(noise + rng.normal(0, 0.005, (len(sw.origins), 4, 1, 1)))
    w = len(sw.origins)
    print(
        f"{date()} · {platform.node()} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.2f} · "
        f"windows={w} horizon={args.horizon} context={sw.context_length} Q={len(LEVELS)}"
    )
    r = args.repeat
    rows = [("evaluate (whole scoring, 4 strategies)", best_s(lambda: evaluate(sw, price_q, options), r))]
    rows.append(("trading_view (4 strategies)", best_s(lambda: trading_view(sw, price_q, options), r)))
    for name in STRATEGIES:
        one = EvaluationOptions(**{**vars(options), "strategies": (name,)})
        rows.append((f"trading_view ({name})", best_s(lambda o=one: trading_view(sw, price_q, o), r)))
    for label, seconds in rows:
        print(f"{label:42s} {seconds:8.3f} s  {1e6 * seconds / w:8.1f} us/window")


def date() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


if __name__ == "__main__":
    main()
