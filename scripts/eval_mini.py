"""Quick out-of-sample check of a Chronos-2 checkpoint against the naive baseline.

For each hourly series (default: ETHUSDT and BTCUSDT of ``../shared/data/ohlc``) the script cuts
non-overlapping windows whose forecast origin is at or after ``--cutoff`` (every forecast target lies
after the cutoff), forecasts open/high/low/close jointly as one 4-variate task with the pipeline's
``predict`` on a ``[windows, 4, context]`` array, and reports on the close:

* MASE of the median (``chronobt.evaluation.metrics.mase``, scale ``naive_scale``: mean |one-step change| of
  that
  window's close context), model and naive (last value), and their ratio;
* weighted quantile loss over the levels 0.1..0.9 (``chronobt.evaluation.metrics.wql``), model and naive (the
  quantiles of ``chronobt.evaluation.baselines.naive``: ``last + sigma * sqrt(k) * z_q``, the FPP3 random-walk
  interval, as ``chronobt backtest`` scores it);
* 80% interval (0.1-0.9) coverage (``chronobt.evaluation.metrics.coverage``).

It also runs the sine/trend check (no data files needed): three clean series (trend plus sine, periods
24, 12 and 48) of 480 bars, 24 steps ahead; it prints each series' MAE of the median divided by the MAE
of the last value (< 1: better than naive; a model that extrapolates seasonality gets well below 0.8).

Example::

    python3 scripts/eval_mini.py --model chronobt/assets/chronos2-mini --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from chronobt.evaluation import baselines, metrics

REPO_ROOT = Path(__file__).resolve().parents[1]
OHLC_DIR = REPO_ROOT.parent / "shared" / "data" / "ohlc"
DEFAULT_FILES = ("ETHUSDT_1h__binance-spot_stitched.parquet", "BTCUSDT_1h__binance-spot_stitched.parquet")
WQL_LEVELS = np.round(np.arange(0.1, 0.91, 0.1), 2)


def cut_windows(
    values: np.ndarray,
    timestamps: pd.DatetimeIndex,
    *,
    cutoff: pd.Timestamp,
    context: int,
    horizon: int,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows with origins (last observed bar) at or after ``cutoff``.

    Parameters
    ----------
    values
        ``[time, 4]`` OHLC.

    Returns
    -------
    contexts, futures
        ``[windows, 4, context]`` and ``[windows, 4, horizon]``; at most ``n`` windows, spread evenly.
    """
    first = max(int(np.searchsorted(timestamps, cutoff)), context - 1)
    origins = np.arange(first, len(values) - horizon, horizon)
    if len(origins) > n:
        origins = origins[np.linspace(0, len(origins) - 1, n).round().astype(int)]
    ctx_idx = origins[:, None] + np.arange(-context + 1, 1)[None, :]
    fut_idx = origins[:, None] + np.arange(1, horizon + 1)[None, :]
    return values[ctx_idx].transpose(0, 2, 1), values[fut_idx].transpose(0, 2, 1)


def close_metrics(
    q: np.ndarray, levels: np.ndarray, context: np.ndarray, future: np.ndarray
) -> dict[str, float]:
    """Metrics of quantile forecasts ``q [windows, Q, horizon]`` for ``future [windows, horizon]``.

    ``context`` ``[windows, time]`` gives the MASE scale; ``levels`` ``[Q]`` must contain 0.1..0.9.
    """
    actual = future[:, None, :]  # [windows, 1, horizon]
    quantiles = q[:, None]  # [windows, 1, Q, horizon]
    at = {float(lv): metrics.quantile_at(quantiles=quantiles, levels=levels, level=lv) for lv in WQL_LEVELS}
    scale = metrics.naive_scale(context[:, None, :])  # [windows, 1]
    wql_quantiles = np.stack([at[float(lv)] for lv in WQL_LEVELS], axis=-2)  # [windows, 1, 9, horizon]
    return {
        "mase": float(metrics.mase(actual=actual, forecast=at[0.5], scale=scale)),
        "wql": float(metrics.wql(actual=actual, quantiles=wql_quantiles, levels=list(WQL_LEVELS))),
        "coverage80": float(metrics.coverage(actual=actual, lower=at[0.1], upper=at[0.9])),
    }


def naive_quantiles(context: np.ndarray, horizon: int, levels: np.ndarray) -> np.ndarray:
    """``[windows, Q, horizon]``: :func:`chronobt.evaluation.baselines.naive` on ``context [windows,
    time]``."""
    return baselines.naive(context[:, None, :], horizon=horizon, levels=list(levels)).quantiles[:, 0]


def sine_check(pipeline: Any, levels: np.ndarray) -> list[float]:
    """MAE of the median / MAE of the last value on three clean sine/trend series (< 1: beats naive)."""
    horizon, length = 24, 480
    t = np.arange(length + horizon, dtype=np.float64)
    series = np.stack(
        [
            100.0 + 0.05 * t + 5.0 * np.sin(2 * np.pi * t / 24),
            20.0 + 2.0 * np.sin(2 * np.pi * t / 12 + 1.0),
            -0.02 * t + 3.0 * np.cos(2 * np.pi * t / 48),
        ]
    )  # [series, time]
    context, future = series[:, :length], series[:, length:]
    preds = pipeline.predict(context[:, None, :].astype(np.float32), prediction_length=horizon)
    q = np.stack([p.numpy()[0] for p in preds]).astype(np.float64)  # [series, Q, horizon]
    median = metrics.quantile_at(quantiles=q, levels=levels, level=0.5)  # [series, horizon]
    model = metrics.mae(actual=future, forecast=median, axis=1)
    last = metrics.mae(actual=future, forecast=np.repeat(context[:, -1:], horizon, axis=1), axis=1)
    return [float(r) for r in model / last]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO_ROOT / "chronobt" / "assets" / "chronos2-mini"))
    p.add_argument("--files", nargs="*", default=[str(OHLC_DIR / f) for f in DEFAULT_FILES])
    p.add_argument("--cutoff", default="2024-07-01")
    p.add_argument("--context", type=int, default=2048)
    p.add_argument("--horizon", type=int, default=24)
    p.add_argument("--windows", type=int, default=250, help="windows per series (non-overlapping)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)

    import torch
    from chronos import BaseChronosPipeline

    torch.set_num_threads(args.threads)
    pipeline = BaseChronosPipeline.from_pretrained(args.model, device_map="cpu")
    levels = np.round(np.asarray(pipeline.quantiles, dtype=np.float64), 6)  # float32 0.1 -> 0.1
    sine = sine_check(pipeline, levels)
    cutoff = pd.Timestamp(args.cutoff, tz="UTC")
    rows = []
    for file in args.files:
        frame = pd.read_parquet(file)
        ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True))
        values = frame[["open", "high", "low", "close"]].to_numpy(np.float64)
        ctx, fut = cut_windows(
            values, ts, cutoff=cutoff, context=args.context, horizon=args.horizon, n=args.windows
        )
        t0 = time.time()
        preds = pipeline.predict(
            ctx.astype(np.float32), prediction_length=args.horizon, batch_size=args.batch_size
        )
        q = np.stack([x.numpy() for x in preds]).astype(np.float64)  # [windows, 4, Q, horizon]
        seconds = time.time() - t0
        model = close_metrics(q[:, 3], levels, ctx[:, 3], fut[:, 3])
        naive = close_metrics(naive_quantiles(ctx[:, 3], args.horizon, levels), levels, ctx[:, 3], fut[:, 3])
        rows.append(
            {
                "series": Path(file).name.split("__")[0],
                "windows": len(ctx),
                "first_origin": str(ts[int(np.searchsorted(ts, cutoff))]),
                "model": model,
                "naive": naive,
                "mase_ratio": model["mase"] / naive["mase"],
                "wql_ratio": model["wql"] / naive["wql"],
                "predict_seconds": round(seconds, 1),
            }
        )
    header = ["series", "windows", "MASE model", "MASE naive", "ratio", "WQL model", "WQL naive", "ratio"]
    header += ["cov80 model", "cov80 naive"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        m, n = r["model"], r["naive"]
        cells = [
            r["series"],
            str(r["windows"]),
            f"{m['mase']:.4f}",
            f"{n['mase']:.4f}",
            f"{r['mase_ratio']:.3f}",
        ]
        cells += [f"{m['wql']:.5f}", f"{n['wql']:.5f}", f"{r['wql_ratio']:.3f}"]
        cells += [f"{m['coverage80']:.3f}", f"{n['coverage80']:.3f}"]
        print("| " + " | ".join(cells) + " |")
    print(
        "sine/trend check, MAE of the median / MAE of the last value (periods 24, 12, 48; < 1 beats naive): "
        + " / ".join(f"{r:.2f}" for r in sine)
    )
    if args.json:
        payload = {"model": args.model, "args": vars(args) | {"json": str(args.json)}, "rows": rows}
        args.json.write_text(json.dumps(payload | {"sine_mae_ratio": sine}, indent=2))


if __name__ == "__main__":
    main()
