"""Coverage, width, WQL and MASE of the close forecast by step: --dependence auto vs independent vs
comonotonic, raw vs --calibrate conformal, on real hourly series, with the naive random walk's MASE.

For each hourly series in ``../shared/data/ohlc`` (or the files given), the latest ``--windows``
non-overlapping windows (horizon 24) with origins at or after ``--start`` (default 2024-07-01, the
bundled model's training cutoff: every window is out of sample for it) are forecast once per augmentation
with the bundled model; every inversion mode reads the same model output. Prints one markdown table
(pooled over the windows and over all series, and per series with ``--per-series``) for steps 1, 6, 12
and 24; ``MASE / naive`` above 1 means the random walk was better.

Usage::

    python benchmarks/calibration_table.py [--windows 200] [--preaugs differencing,rolling_norm]
        [--modes auto] [--start 2024-07-01] [--per-series]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from chronobt.config import EvaluationOptions
from chronobt.data import load_ohlc
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.evaluation import metrics
from chronobt.pipeline.jobs import forecast_jobs, make_job, model_context, prepare_windows
from chronobt.pipeline.uncertainty import calibrate, invert_job

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ohlc"
STEPS = (1, 6, 12, 24)
MODES = ("auto", "independent", "comonotonic")


def scores(
    actual: np.ndarray, price_q: np.ndarray, scale: np.ndarray, last: np.ndarray, levels: list[float]
) -> dict:
    """Close only: 80% coverage and width (% of the last close) per step, pooled WQL and MASE."""
    c = 3  # close
    lo, hi = price_q[:, c, levels.index(0.1)], price_q[:, c, levels.index(0.9)]
    a = actual[:, c]
    inside = (a >= lo) & (a <= hi)
    return {
        "coverage": {s: float(np.nanmean(inside[:, s - 1])) for s in STEPS},
        "width": {s: float(np.nanmean((hi[:, s - 1] - lo[:, s - 1]) / last[:, c]) * 100) for s in STEPS},
        "wql": float(metrics.wql(actual=actual[:, [c]], quantiles=price_q[:, [c]], levels=levels)),
        "mase": float(
            metrics.mase(
                actual=actual[:, [c]],
                forecast=price_q[:, [c], levels.index(0.5)],
                scale=scale[:, [c]],
            )
        ),
        "naive_mase": float(
            metrics.mase(
                actual=actual[:, [c]],
                forecast=np.broadcast_to(last[:, [c], None], actual[:, [c]].shape),
                scale=scale[:, [c]],
            )
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--preaugs", default="differencing,rolling_norm")
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--modes", default=",".join(MODES), help="step-dependence modes to compare")
    parser.add_argument("--start", default="2024-07-01", help="earliest origin (the model's cutoff)")
    parser.add_argument("--per-series", action="store_true", help="also one row per series")
    args = parser.parse_args()
    files = args.files or sorted(SHARED.glob("*_1h_*.parquet"))  # every hourly series there
    engine = Chronos2Engine(EngineConfig(model=args.model, device="cpu", compile="off"))
    options = EvaluationOptions(horizon=24, context=2048)
    context = model_context(options, engine)
    levels = list(options.quantiles)
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, torch {torch.__version__}, "
        f"model {engine.model_info['id']}, {args.windows} windows x {len(files)} series, horizon 24, "
        f"origins from {args.start}\n"
    )
    rows: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for path in files:
        ohlc = load_ohlc(path)
        sw = prepare_windows(ohlc, options, windows=args.windows, context=context, start=args.start)
        scale = metrics.naive_scale(sw.contexts)
        jobs = [make_job(sw, spec) for spec in args.preaugs.split(",")]
        forecast_jobs(engine, jobs, options.horizon)
        for job in jobs:
            for mode in args.modes.split(","):
                opts = EvaluationOptions(horizon=24, context=2048, dependence=mode)
                inversion = invert_job(job, engine.quantile_levels, opts)
                price_q, record = inversion.price_q, inversion.dependence
                rows.setdefault((job.spec, mode), []).append(
                    (path.stem.split("_")[0], scores(sw.futures, price_q, scale, sw.last, levels))
                )
                if mode == "auto":
                    cal, _ = calibrate(sw, price_q, opts)
                    rows.setdefault((job.spec, "auto + conformal"), []).append(
                        (path.stem.split("_")[0], scores(sw.futures, cal, scale, sw.last, levels))
                    )
                    latest = record.get("latest", {})
                    print(f"{path.stem} {job.spec} auto: {latest.get('method', record.get('method'))} "
                          f"rho={latest.get('rho')} mean_offdiag={latest.get('mean_offdiag')} "
                          f"windows_per_method={record.get('windows_per_method')}")  # fmt: skip
    head = " | ".join(f"cov80 s{s}" for s in STEPS) + " | " + " | ".join(f"width% s{s}" for s in STEPS)
    print(f"\n| preaug | dependence | {head} | WQL | MASE | MASE / naive |")
    print("|---|---|" + "---|" * (2 * len(STEPS) + 3))
    for (spec, mode), named in rows.items():
        groups = [("all", [p for _, p in named])]
        if args.per_series:
            groups += [(name, [p]) for name, p in named]
        for label, parts in groups:
            cov = [np.mean([p["coverage"][s] for p in parts]) for s in STEPS]
            wid = [np.mean([p["width"][s] for p in parts]) for s in STEPS]
            wql = np.mean([p["wql"] for p in parts])
            mase = np.mean([p["mase"] for p in parts])
            ratio = np.mean([p["mase"] / p["naive_mase"] for p in parts])
            cells = " | ".join(f"{x:.3f}" for x in cov) + " | " + " | ".join(f"{x:.2f}" for x in wid)
            name = mode if label == "all" else f"{mode} ({label})"
            print(f"| {spec} | {name} | {cells} | {wql:.5f} | {mase:.4f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
