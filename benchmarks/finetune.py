"""Does walk-forward fine-tuning pay? Zero-shot vs LoRA vs full fine-tuning on the same windows.

Backtests each symbol file over the last ``--windows`` windows, zero-shot and fine-tuned (trained once on
every symbol's bars before the first evaluated origin), and prints a markdown table of the close
target's MASE, WQL and 80% coverage, the Diebold-Mariano p-value of fine-tuned vs zero-shot (per-window
MAE) and the training time::

    python benchmarks/finetune.py DATA/ETHUSDT_1h.parquet DATA/BTCUSDT_1h.parquet --steps 200

Results go to a temporary folder (``--output-dir`` to keep them; fine-tuned weights are cached there).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from chronobt.config import BacktestConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.runs.backtest import run_backtest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--modes", default="lora,full")
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr-full", type=float, default=None)
    parser.add_argument("--lr-lora", type=float, default=None)
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args()

    engine = Chronos2Engine(EngineConfig(model=args.model, device="cpu", compile="off"))
    out = args.output_dir or Path(tempfile.mkdtemp(prefix="finetune-bench-"))
    rows: list[dict[str, Any]] = []
    zero_done = False
    for mode in args.modes.split(","):
        lr = {"full": args.lr_full, "lora": args.lr_lora}[mode]
        config = BacktestConfig(
            symbols=tuple(str(f) for f in args.files),
            horizon=args.horizon,
            context=args.context,
            windows=args.windows,
            data_dir=args.files[0].parent,
            output_dir=out,
            finetune=mode,
            finetune_steps=args.steps,
            finetune_batch=args.batch,
            finetune_lr=lr,
        )
        t0 = time.perf_counter()
        report = run_backtest(config, engine=engine)
        wall = time.perf_counter() - t0
        if report.failures:
            raise SystemExit(f"failures: {report.failures}")
        for result in report.results:
            if result.finetune is None and zero_done:
                continue
            rows.append(_row(result, mode, wall))
        zero_done = True
    print(f"output: {out}")
    print(
        "| symbol | model | close MASE | close WQL | cov80 | DM p vs zero-shot | MAE skill | train s "
        "| loss first/last |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["symbol"], r["model"])):
        print(
            f"| {row['symbol']} | {row['model']} | {row['mase']:.4f} | {row['wql']:.5f} | "
            f"{row['cov80']:.3f} | {row['p']} | {row['skill']} | {row['train']} | {row['loss']} |"
        )


def _row(result: Any, mode: str, wall: float) -> dict[str, Any]:
    s = result.summary
    close = s["metrics"]["close"]
    row: dict[str, Any] = {
        "symbol": result.symbol.split("_")[0],
        "model": "zero-shot" if result.finetune is None else f"{mode} ({s['finetune']['steps']} steps)",
        "mase": close["mase"],
        "wql": close["wql"],
        "cov80": close["coverage_80"],
        "p": "-",
        "skill": "-",
        "train": "-",
        "loss": "-",
    }
    if result.finetune is not None:
        versus = s["finetune"]["versus_zero_shot"]["close"]["mae"]
        refit = s["finetune"]["refits"][0]
        row["p"] = "-" if versus["p_value"] is None else f"{versus['p_value']:.3f}"
        row["skill"] = "-" if versus["skill"] is None else f"{versus['skill']:+.4f}"
        row["train"] = "cached" if refit["cached"] else f"{refit['train_seconds']:.0f}"
        loss = refit["loss"]
        row["loss"] = f"{loss['first']:.3f}/{loss['last']:.3f}" if loss["first"] is not None else "-"
    return row


if __name__ == "__main__":
    main()
