"""Backtest Chronos-2 from Python with chronobt's public API.

    python examples/api_backtest.py ETHUSD --model auto --preaug differencing

The model is ``--model`` or ``$CHRONOBT_MODEL`` (``auto``: amazon/chronos-2 when available, else the
bundled mini model; or a folder saved with ``save_pretrained``); data and results folders default to
``$CHRONOBT_DATA_DIR`` / ``$CHRONOBT_OUTPUT_DIR`` (else the clone's ``data/`` beside this folder, so it
runs from any working directory, and ``./results``). The library prints nothing itself; this script prints
its results. The CI runs this file with a tiny random checkpoint (tests/test_examples.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import chronobt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("symbol", nargs="?", default="ETHUSD")
    parser.add_argument("--model", default=os.environ.get("CHRONOBT_MODEL", "auto"))
    clone_data = Path(__file__).resolve().parents[1] / "data"
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("CHRONOBT_DATA_DIR", clone_data))
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path(os.environ.get("CHRONOBT_OUTPUT_DIR", "results"))
    )
    parser.add_argument("--preaug", default="differencing")
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    # 1. Data: validated OHLC with its frequency and calendar.
    ohlc = chronobt.load_ohlc(args.symbol, args.data_dir)
    first, last = ohlc.frame.index[0], ohlc.frame.index[-1]
    print(f"{ohlc.symbol}: {len(ohlc.frame)} bars, {first} .. {last} ({ohlc.freq})")

    # 2. One engine (the model is loaded once) shared by every call below.
    engine = chronobt.Chronos2Engine(
        chronobt.EngineConfig(model=args.model, device=args.device, compile="off")
    )
    print(f"model: {engine.model_info['id']} on {engine.record()['device']}")

    # 3. A batched rolling-origin backtest; results land in <output-dir>/backtest/<SYMBOL>/<preaug>/.
    config = chronobt.BacktestConfig(
        symbols=(ohlc.symbol,),
        preaug=args.preaug,
        horizon=args.horizon,
        context=args.context,
        windows=args.windows,
        data_dir=args.data_dir,
        output_dir=args.output_dir,
    )
    report = chronobt.run_backtest(config, engine=engine)
    for symbol, message in report.failures.items():
        print(f"{symbol} failed: {message}", file=sys.stderr)
    for result in report.results:
        summary = result.summary
        model = summary["metrics"]["close"]
        naive = summary["baselines"]["naive"]["close"]
        which = "calibrated" if summary["calibrated"] else "raw"  # --calibrate auto: calibrated when it can
        print(
            f"{result.symbol} [{result.preaug}] {summary['windows']} windows: "
            f"close MASE {model['mase']:.3f} (naive {naive['mase']:.3f}), "
            f"80% coverage {summary.coverage_80('close'):.2f} {which} (raw {model['coverage_80']:.2f}) "
            f"-> {result.folder}"
        )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
