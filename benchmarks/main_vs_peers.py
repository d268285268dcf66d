"""The main command as whole processes against its peers, the import floor and an hourly forecast.

Contenders (each a fresh process, interleaved, ``--pairs`` rounds, medians):

* ``chronobt``: ``chronobt backtest SYMBOL --preaug differencing --windows W`` exactly as the command
  line runs it (bundled model, a cache folder shared by the rounds, so the view checks' verdicts are
  stored by the first run and reused after, as on a user's machine); its manifest gives the stage
  timings, so the *fixed cost* (wall less forward, inversion, scoring and writing) is reported;
* ``chronos``: chronos' own batched ``Chronos2Pipeline.predict`` (default batch size) on the same
  differenced windows, then the same sample-path inversion in plain numpy with independent steps
  (``numpy_inversion.py``); windows are cut with chronobt's data helpers so both forecast the same ones;
* ``import``: ``python -c "import torch, chronos"``, the floor any chronos user pays;
* ``forecast``: ``chronobt forecast SYMBOL --preaug differencing``, the hourly cron job;
* ``darts`` (``--darts``, when darts is installed): Darts' ``Chronos2Model.historical_forecasts`` on the
  same series and windows. ``pip install darts`` (0.48.1 at the time of writing) adds darts,
  scikit-learn, xarray, shap and a few more, and leaves torch as it is (``pip install --dry-run``).

Prints the table, the ratios the targets are stated in (chronos / chronobt, darts / chronobt, the fixed
cost above the import, forecast / import) and the load average before and after.

    python benchmarks/main_vs_peers.py --pairs 5
    python benchmarks/main_vs_peers.py --pairs 5 --windows 800 --darts
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_process import Runs, header, interleaved, load, report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
STAGES = ("invert", "metrics", "write")


def chronobt_child(args: argparse.Namespace, rest: list[str]) -> int:
    """The command line in this process (as ``python -m chronobt``), then its stage timings."""
    from chronobt.cli import main as cli_main

    sys.argv = ["chronobt", *rest]
    try:
        cli_main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    if rest[0] == "backtest":
        manifest = next(Path(args.out).rglob("manifest.json"))
        record = json.loads(manifest.read_text())
        timings, engine = record["timings"], record["engine"]
        work = engine["forward_seconds"] + sum(float(timings.get(k, 0.0)) for k in STAGES)
        result = {"work_s": round(work, 3), "forward_s": engine["forward_seconds"], **timings}
        result["import_s"] = engine.get("import_seconds")
        result["view_checks"] = engine.get("view_checks")
        print("RESULT " + json.dumps(result))
    return 0


def chronos_child(args: argparse.Namespace) -> int:
    """chronos' batched predict on the differenced windows, then the numpy inversion."""
    import numpy as np
    import torch
    from chronos import Chronos2Pipeline
    from numpy_inversion import numpy_inverse_quantiles

    from chronobt.augment import get_augmentation
    from chronobt.config import BacktestConfig
    from chronobt.data import load_ohlc
    from chronobt.pipeline.jobs import prepare_windows

    config = BacktestConfig(
        symbols=(args.symbol,), preaug="differencing", windows=args.windows, data_dir=DATA
    )
    pipeline = Chronos2Pipeline.from_pretrained(str(REPO / "chronobt" / "assets" / "chronos2-mini"))
    context = min(config.context, int(pipeline.model.chronos_config.context_length))
    sw = prepare_windows(load_ohlc(args.symbol, DATA), config, windows=args.windows, context=context)
    aug = get_augmentation("differencing")
    started = time.perf_counter()
    state = aug.fit(sw.contexts)
    tasks = [torch.as_tensor(c) for c in aug.transform(sw.contexts, state)]
    out = pipeline.predict(tasks, prediction_length=config.horizon)  # chronos' default batch size
    q = np.stack([t.float().numpy() for t in out]).astype(np.float64)  # [w, v, Q, h]
    predicted = time.perf_counter()
    levels = np.asarray(pipeline.quantiles, dtype=np.float64)
    numpy_inverse_quantiles(aug, q, levels=levels, state=state, out_levels=np.asarray(config.quantiles))
    done = time.perf_counter()
    print(
        "RESULT "
        + json.dumps({"forward_s": round(predicted - started, 3), "invert": round(done - predicted, 3)})
    )
    return 0


def darts_child(args: argparse.Namespace) -> int:
    """Darts' Chronos-2 historical forecasts of the same windows (the close, differenced by Darts)."""
    import numpy as np
    from darts import TimeSeries
    from darts.models import Chronos2Model  # type: ignore[attr-defined]

    from chronobt.config import BacktestConfig
    from chronobt.data import load_ohlc

    config = BacktestConfig(
        symbols=(args.symbol,), preaug="differencing", windows=args.windows, data_dir=DATA
    )
    frame = load_ohlc(args.symbol, DATA).frame
    series = TimeSeries.from_values(np.asarray(frame[["open", "high", "low", "close"]], dtype=np.float32))
    model = Chronos2Model(input_chunk_length=512, output_chunk_length=config.horizon)
    model.fit(series)
    start = len(series) - args.windows * config.horizon
    model.historical_forecasts(
        series, start=start, forecast_horizon=config.horizon, stride=config.horizon, retrain=False
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--symbol", default="BTCUSD", help="a symbol in data/ (BTCUSD: hourly)")
    parser.add_argument("--darts", action="store_true", help="also run Darts (when installed)")
    parser.add_argument("--child", choices=["chronobt", "chronos", "darts"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child == "chronobt":
        return chronobt_child(args, rest)
    if args.child == "chronos":
        return chronos_child(args)
    if args.child == "darts":
        return darts_child(args)
    before = load()
    print(header(f"main command vs peers, {args.symbol}, {args.windows} windows, differencing"))
    me = [sys.executable, __file__]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cache = ["--cache-dir", str(folder / "cache"), "--data-dir", str(DATA), "--quiet"]
        backtest = ["backtest", args.symbol, "--preaug", "differencing", "--windows", str(args.windows)]
        forecast = ["forecast", args.symbol, "--preaug", "differencing"]
        out_b, out_f = str(folder / "backtest"), str(folder / "forecast")
        common = ["--symbol", args.symbol, "--windows", str(args.windows)]
        contenders = [
            Runs(
                "chronobt backtest",
                [*me, "--child", "chronobt", "--out", out_b, *backtest, "--output-dir", out_b, *cache],
            ),
            Runs("chronos predict + numpy inversion", [*me, "--child", "chronos", *common]),
            Runs('python -c "import torch, chronos"', [sys.executable, "-c", "import torch, chronos"]),
            Runs(
                "chronobt forecast (hourly job)",
                [*me, "--child", "chronobt", "--out", out_f, *forecast, "--output-dir", out_f, *cache],
            ),
        ]
        if args.darts:
            try:
                import darts  # noqa: F401
            except ImportError:
                print("darts is not installed: pip install darts (it leaves torch as it is); skipped")
            else:
                contenders.append(Runs("darts historical_forecasts", [*me, "--child", "darts", *common]))
        interleaved(contenders, pairs=args.pairs)
        main_cmd, peer, floor, hourly = contenders[:4]
        work = statistics.median(r["work_s"] for r in main_cmd.results)
        fixed = main_cmd.median - work
        lines = [
            f"chronos / chronobt wall: {peer.median / main_cmd.median:.2f} (target >= 1.6)",
            f"fixed cost (wall - forward - invert - metrics - write): {fixed:.2f} s, "
            f"{fixed - floor.median:+.2f} s above the import (target <= +0.5 s)",
            f"forecast / import: {hourly.median / floor.median:.2f} (target <= 1.5)",
            f"chronobt stages (last run): {json.dumps(main_cmd.results[-1])}",
            f"chronos stages (last run): {json.dumps(peer.results[-1])}",
        ]
        if len(contenders) > 4:
            lines.insert(
                1, f"darts / chronobt wall: {contenders[4].median / main_cmd.median:.2f} (target >= 2.5)"
            )
        report(contenders, before=before, extra=lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
