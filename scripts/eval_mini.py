"""Quick out-of-sample check of a Chronos-2 checkpoint against the naive baseline.

For each hourly series (default: ETHUSDT and BTCUSDT of ``../shared/data/ohlc``) the script cuts
non-overlapping windows whose forecast origin is at or after ``--cutoff`` (every forecast target lies
after the cutoff), forecasts open/high/low/close jointly as one 4-variate task with the pipeline's
``predict`` on a ``[windows, 4, context]`` array, and reports on the close:

* MASE of the median (scale: mean |one-step change| of that window's close context), model and naive
  (last value), and their ratio;
* weighted quantile loss over the levels 0.1..0.9, model and naive (naive quantiles:
  ``last + sigma * sqrt(k) * z_q``, sigma the sd of one-step changes in the context);
* 80% interval (0.1-0.9) coverage.

Example::

    python3 scripts/eval_mini.py --model chronobt/assets/chronos2-mini --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

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


def naive_quantiles(context: np.ndarray, horizon: int, levels: np.ndarray) -> np.ndarray:
    """``[windows, Q, horizon]`` random-walk quantiles from ``context [windows, time]``."""
    sigma = np.diff(context, axis=-1).std(axis=-1)
    k = np.arange(1, horizon + 1)
    z = np.array([NormalDist().inv_cdf(float(q)) for q in levels])
    return context[:, -1, None, None] + sigma[:, None, None] * np.sqrt(k)[None, None, :] * z[None, :, None]


def close_metrics(
    q: np.ndarray, levels: np.ndarray, context: np.ndarray, future: np.ndarray
) -> dict[str, float]:
    """Metrics of quantile forecasts ``q [windows, Q, horizon]`` for ``future [windows, horizon]``."""
    scale = np.abs(np.diff(context, axis=-1)).mean(axis=-1)  # [windows]
    median = q[:, int(np.argmin(np.abs(levels - 0.5)))]
    mase = float((np.abs(future - median).mean(axis=-1) / scale).mean())
    sel = [int(np.argmin(np.abs(levels - lv))) for lv in WQL_LEVELS]
    qs = q[:, sel]  # [windows, 9, horizon]
    err = future[:, None, :] - qs
    pinball = np.maximum(WQL_LEVELS[None, :, None] * err, (WQL_LEVELS[None, :, None] - 1) * err)
    wql = float(2 * pinball.sum(axis=(0, 2)).mean() / np.abs(future).sum())
    lo, hi = q[:, int(np.argmin(np.abs(levels - 0.1)))], q[:, int(np.argmin(np.abs(levels - 0.9)))]
    coverage = float(((future >= lo) & (future <= hi)).mean())
    return {"mase": mase, "wql": wql, "coverage80": coverage}


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
    levels = np.asarray(pipeline.quantiles, dtype=np.float64)
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
    if args.json:
        args.json.write_text(
            json.dumps(
                {"model": args.model, "args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2
            )
        )


if __name__ == "__main__":
    main()
