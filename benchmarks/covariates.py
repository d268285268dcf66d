"""Covariates on real hourly data: close MASE / WQL per covariate set, DM p-value vs none, inference cost.

For each symbol the same rolling windows (same origins) are forecast with the bundled model under each
covariate set (``none``, ``volume``, ``calendar``, ``volume+calendar``, and one other symbol's close where
given, e.g. BTC for ETH); target ``close`` only, ``--preaug none``. Scores are pooled over the windows;
the Diebold-Mariano p-value compares each set's per-window losses with ``none``'s
(:func:`chronobt.evaluation.significance.comparison`, MASE: per-window MAE of the median over the naive
scale; WQL:
per-window mean pinball loss). Cost: engine seconds per window (the forecast call alone).

Usage::

    python benchmarks/covariates.py --ohlc-dir DIR [--windows 200] [--horizon 24] [--context 512]

``DIR`` holds hourly ``<NAME>_1h_*.parquet`` files; they are linked (not copied) into a temporary data
folder under short names (``BTCUSDT``...) beside the repository's ``data/BTCUSD.parquet``. Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from chronobt.config import EvaluationOptions
from chronobt.data.windows import MIN_CONTEXT
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.evaluation.metrics import naive_scale, wql
from chronobt.evaluation.significance import comparison, window_mae, window_quantile_loss
from chronobt.pipeline.jobs import forecast_jobs, load_symbol, make_job, prepare_windows
from chronobt.pipeline.uncertainty import invert_job

REPO = Path(__file__).resolve().parents[1]
SETS: tuple[tuple[str, ...], ...] = ((), ("volume",), ("calendar",), ("volume", "calendar"))
#: symbol -> other symbols whose close is tried as a covariate
CROSS = {"ETHUSDT": ("BTCUSDT",), "BTCUSDT": ("ETHUSDT",)}
#: last origin for every symbol of the shared folder, so BTC and ETH overlap (BTCUSDT ends 2025-11-12)
END = "2025-11-01"


def link_data(ohlc_dir: Path, folder: Path) -> list[str]:
    symbols = ["BTCUSD"]
    (folder / "BTCUSD.parquet").symlink_to(REPO / "data" / "BTCUSD.parquet")
    for path in sorted(ohlc_dir.glob("*_1h_*.parquet")):
        name = path.name.split("_")[0].upper()
        (folder / f"{name}.parquet").symlink_to(path)
        symbols.append(name)
    return symbols


def label(covariates: tuple[str, ...]) -> str:
    return "+".join(covariates) if covariates else "none"


def run(args: argparse.Namespace) -> None:
    engine = Chronos2Engine(EngineConfig(model="bundled", device="cpu", compile="off"))
    context = min(args.context, engine.max_context)
    print(
        f"model {engine.model_info.get('id')}, {args.windows} windows, horizon {args.horizon}, "
        f"context {context}, target close, preaug none\n"
    )
    print("| symbol | covariates | rows | MASE | WQL | p (MASE vs none) | p (WQL vs none) | ms/window |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        symbols = link_data(Path(args.ohlc_dir), data_dir)
        for symbol in symbols:
            sets = [*SETS, *((c,) for c in CROSS.get(symbol, ()) if c in symbols)]
            base: dict[str, np.ndarray] = {}
            for covariates in sets:
                options = EvaluationOptions(
                    horizon=args.horizon,
                    context=max(context, MIN_CONTEXT),
                    targets=("close",),
                    data_dir=data_dir,
                    covariates=covariates,
                )
                ohlc = load_symbol(symbol, options)
                end = END if symbol != "BTCUSD" else None
                sw = prepare_windows(ohlc, options, windows=args.windows, context=context, end=end)
                job = make_job(sw, "none")
                started = time.perf_counter()
                forecast_jobs(engine, [job], args.horizon)
                seconds = time.perf_counter() - started
                price_q = invert_job(job, engine.quantile_levels, options).price_q
                levels = list(options.quantiles)
                median = price_q[:, :, levels.index(0.5), :]
                scale = naive_scale(sw.contexts)  # [w, v], lag-1 naive MAE of the context
                losses = {
                    "mase": (window_mae(actual=sw.futures, median=median) / scale)[:, 0],
                    "wql": window_quantile_loss(actual=sw.futures, quantiles=price_q, levels=levels)[:, 0],
                }
                mase = float(np.nanmean(losses["mase"]))
                score = float(wql(actual=sw.futures, quantiles=price_q, levels=levels))
                if not covariates:
                    base = losses
                    p = {"mase": None, "wql": None}
                else:
                    p = {
                        k: comparison(
                            loss_model=losses[k],
                            loss_baseline=base[k],
                            horizon=args.horizon,
                            stride=options.effective_stride,
                        )["p_value"]
                        for k in losses
                    }
                rows = 1 + len(sw.covariate_names)
                ps = [f"{v:.3f}" if v is not None else "-" for v in (p["mase"], p["wql"])]
                print(
                    f"| {symbol} | {label(covariates)} | {rows} | {mase:.4f} | {score:.5f} | "
                    f"{ps[0]} | {ps[1]} | {1000 * seconds / len(sw.origins):.1f} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ohlc-dir", required=True)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--context", type=int, default=512)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
