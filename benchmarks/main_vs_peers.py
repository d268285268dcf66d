"""The main command as whole processes against its peers, the import floor and an hourly forecast.

Contenders (each a fresh process, interleaved, ``--pairs`` rounds, medians), all on the same windows:
the last ``--windows`` origins of ``--symbol`` that have a horizon (24 bars) after them, 24 bars apart,
open/high/low/close forecast jointly, contexts of ``--context`` bars capped at the model's maximum.

* ``chronobt``: ``chronobt backtest SYMBOL --preaug P --windows W --context C --model M`` exactly as the
  command line runs it (a cache folder shared by the rounds, so the view checks' verdicts are stored by
  the first run and reused after, as on a user's machine); its manifest gives the stage timings, so the
  *fixed cost* (wall less forward, inversion, scoring and writing) is reported;
* ``chronos``: chronos' own batched ``Chronos2Pipeline.predict`` (its default batch size) on the same
  pre-augmented windows (cut with chronobt's data helpers; bars missing from the data file, which
  chronobt forward-fills at load, are missing values as in the backtest's model input), then, for
  differencing, the same sample-path inversion in plain numpy with independent steps
  (``numpy_inversion.py``);
* ``import``: ``python -c "import torch, chronos"``, the floor any chronos user pays;
* ``forecast``: ``chronobt forecast SYMBOL --preaug P``, the hourly cron job;
* ``darts`` (``--darts``): Darts' ``Chronos2Model.historical_forecasts`` (retrain=False, stride 24,
  Darts' default prediction batch) from the same local model folder (``local_dir``: no download), on the
  series Darts would difference itself (``TimeSeries.diff()``) and with the model's quantiles as the
  output (``QuantileRegression`` with the model's levels, ``predict_likelihood_parameters=True``);
  bars missing from the data file are missing values (NaN: chronobt also keeps them so, except the run
  of them that ends at a window's origin, which keeps the last price, a one-window difference). The
  differenced quantiles are cumulated to prices by the same numpy sample-path inversion as the chronos
  peer. Darts' own probabilistic route (``num_samples=4096`` sample paths, then ``cumsum``) is no fair
  peer: Darts runs one forward pass per sample (5 windows took 125 s on the loaded 2-core VM). Darts
  gets 512 differences where chronobt's differenced context has 511 (its first step is missing): over
  200 windows the medians agreed to 2e-3 of the price at most, 6e-5 typically. Install:
  ``pip install "darts[torch]==0.48.1"`` (adds darts, pytorch-lightning, torchmetrics, scikit-learn,
  xarray, shap and a few more; leaves torch, numpy, pandas and transformers as they are, checked with
  ``pip install --dry-run``).
* ``numba``: the same backtest with the inversion's numba loops instead of its C ones (as on a machine
  where no C compiler built them; the same numbers): what the C loops save a whole process.

``--model`` is ``bundled`` (chronos2-mini, context 512), ``small`` (a random ~7M-parameter Chronos-2 at
context 2048, built once in a temporary folder by ``engine_vs_predict.model_paths``) or a model folder.
One untimed warm-up round comes first (``--warmup``, default 1): chronobt's first run in a cache folder
checks its native forward against chronos and stores the verdict, a once-per-machine cost (it imports
chronos; its time is printed), and every contender's files reach the page cache. Each peer saves its
median price forecasts, which are compared with the backtest's ``forecasts.parquet``
(largest and median relative difference). Prints the table, the ratios the targets are stated in
(chronos / chronobt, darts / chronobt, the fixed cost above the import, forecast / import) and the load
average before and after.

    # bundled model, differencing, 200 windows: against chronos + numpy inversion, the import floor,
    # the hourly forecast and Darts (targets 1.6x, 2.5x, +0.5 s, 1.5x)
    PYTHONPATH=$PWD python3 benchmarks/main_vs_peers.py --pairs 5 --windows 200 --darts
    # the ~7M model at context 2048, 200 windows, no pre-augmentation, against chronos' predict (1.2x)
    PYTHONPATH=$PWD python3 benchmarks/main_vs_peers.py --pairs 5 --windows 200 --model small \\
        --preaug none --context 2048 --peers chronos
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_vs_predict import model_paths
from whole_process import Runs, header, interleaved, load, report

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
STAGES = ("invert", "metrics", "write")
PEERS = ("chronos", "import", "forecast", "darts", "numba")
#: The issue's targets, peer wall / chronobt wall, by (model, preaug).
TARGETS = {("bundled", "differencing"): {"chronos": 1.6, "darts": 2.5}, ("small", "none"): {"chronos": 1.2}}


def chronobt_child(args: argparse.Namespace, rest: list[str]) -> int:
    """The command line in this process (as ``python -m chronobt``), then its stage timings."""
    from chronobt.cli import main as cli_main

    if args.numba_loops:  # the inversion's numba loops, as where no C compiler built the C ones
        from chronobt.augment import sampling

        sampling.PREFER_C = False
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


def peer_windows(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The run's options, the symbol's prices and its windows, cut as the backtest cuts them."""
    from chronobt.config import BacktestConfig
    from chronobt.data import load_ohlc
    from chronobt.pipeline.jobs import prepare_windows

    config = BacktestConfig(
        symbols=(args.symbol,),
        preaug=args.preaug,
        windows=args.windows,
        context=args.context,
        data_dir=DATA,
    )
    model = json.loads((Path(args.model_path) / "config.json").read_text())["chronos_config"]
    context = min(config.context, int(model["context_length"]))
    ohlc = load_ohlc(args.symbol, DATA)
    sw = prepare_windows(ohlc, config, windows=args.windows, context=context, log_notes=False)
    return config, ohlc, sw


def to_prices(args: argparse.Namespace, config: Any, sw: Any, q: np.ndarray, levels: Any) -> np.ndarray:
    """Median price forecasts ``[w, v, h]`` from the model's quantiles ``q`` ``[w, v, Q, h]``: read off
    (``none``) or by the numpy sample-path inversion with independent steps (``differencing``)."""
    levels = np.asarray(levels, dtype=np.float64)
    if args.preaug == "none":  # sorted over levels as the backtest writes them (a random model's cross)
        return np.sort(q, axis=2)[:, :, int(np.argmin(np.abs(levels - 0.5)))]
    from numpy_inversion import numpy_inverse_quantiles

    from chronobt.augment import get_augmentation

    aug = get_augmentation(args.preaug)
    state = aug.fit(sw.contexts)
    out_levels = np.asarray(config.quantiles, dtype=np.float64)
    prices = numpy_inverse_quantiles(aug, q, levels=levels, state=state, out_levels=out_levels)
    return prices[:, :, int(np.argmin(np.abs(out_levels - 0.5)))]


def chronos_child(args: argparse.Namespace) -> int:
    """chronos' batched predict on the pre-augmented windows, then the numpy inversion."""
    import torch
    from chronos import Chronos2Pipeline

    from chronobt.augment import get_augmentation
    from chronobt.pipeline.jobs import _mask_filled

    config, _, sw = peer_windows(args)
    pipeline = Chronos2Pipeline.from_pretrained(args.model_path)
    started = time.perf_counter()
    aug = get_augmentation(args.preaug)
    # the backtest's model input: forward-filled bars (missing from the file) as NaN, but the run that
    # ends at the origin, which keeps the last price
    tasks = [torch.as_tensor(c) for c in _mask_filled(sw, aug.transform(sw.contexts, aug.fit(sw.contexts)))]
    out = pipeline.predict(tasks, prediction_length=config.horizon)  # chronos' default batch size
    q = np.stack([t.float().numpy() for t in out]).astype(np.float64)  # [w, v, Q, h]
    predicted = time.perf_counter()
    median = to_prices(args, config, sw, q, pipeline.quantiles)
    done = time.perf_counter()
    np.save(args.save, median)
    times = {"forward_s": round(predicted - started, 3), "invert": round(done - predicted, 3)}
    print("RESULT " + json.dumps(times))
    return 0


def darts_child(args: argparse.Namespace) -> int:
    """Darts' Chronos-2 historical forecasts of the same windows, differenced by Darts, then inverted."""
    from darts import TimeSeries
    from darts.models import Chronos2Model
    from darts.utils.likelihood_models.torch import QuantileRegression

    config, ohlc, sw = peer_windows(args)
    targets, h = list(config.targets), config.horizon
    levels = [
        float(x)
        for x in json.loads((Path(args.model_path) / "config.json").read_text())["chronos_config"][
            "quantiles"
        ]
    ]
    series = TimeSeries.from_values(ohlc.values(config.targets).astype(np.float32), columns=targets)
    target = series.diff() if args.preaug == "differencing" else series
    filled = ohlc.filled[len(series) - len(target) :]
    if filled.any():  # bars missing from the file, forward-filled at load: missing values for Darts
        values = target.values(copy=True)
        values[filled] = np.nan
        target = target.with_values(values)
    model = Chronos2Model(
        input_chunk_length=sw.contexts.shape[-1],
        output_chunk_length=h,
        local_dir=args.model_path,
        likelihood=QuantileRegression(levels),
        pl_trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False},
    )
    model.fit(target)  # a foundation model: loads the weights, trains nothing
    started = time.perf_counter()
    forecasts = model.historical_forecasts(
        target,
        start=int(sw.origins[0]) + 1,  # the first forecast bar, an index value of the (diff) series
        start_format="value",
        forecast_horizon=h,
        stride=config.effective_stride,
        retrain=False,
        last_points_only=False,
        predict_likelihood_parameters=True,
    )
    predicted = time.perf_counter()
    by_start = {int(f.start_time()): f for f in forecasts}
    names = [f"{t}_q{level:.3f}" for t in targets for level in levels]
    q = np.stack([by_start[int(o) + 1][names].values() for o in sw.origins])  # [w, h, v * Q]
    q = q.reshape(len(q), h, len(targets), len(levels)).transpose(0, 2, 3, 1).astype(np.float64)
    median = to_prices(args, config, sw, q, levels)
    done = time.perf_counter()
    np.save(args.save, median)
    times = {"forward_s": round(predicted - started, 3), "invert": round(done - predicted, 3)}
    print("RESULT " + json.dumps(times))
    return 0


def backtest_medians(out: Path, targets: tuple[str, ...]) -> np.ndarray:
    """The backtest's raw median forecasts ``[w, v, h]`` from its ``forecasts.parquet``, by origin."""
    import pandas as pd

    frame = pd.read_parquet(
        next(out.rglob("forecasts.parquet")), columns=["origin", "step", "target", "median"]
    )
    table = frame.pivot_table(index="origin", columns=["target", "step"], values="median")
    return np.stack([table[t].to_numpy() for t in targets], axis=1)


def agreement(name: str, mine: np.ndarray, path: Path) -> str:
    """One line: how far a peer's median forecasts lie from the backtest's (relative to the price)."""
    theirs = np.load(path)
    if theirs.shape != mine.shape:
        return f"{name} medians: shape {theirs.shape}, the backtest's {mine.shape}: not the same windows"
    rel = np.abs(theirs - mine) / np.abs(mine)
    return (
        f"{name} medians vs the backtest's: largest relative |difference| {np.nanmax(rel):.2g}, "
        f"median {np.nanmedian(rel):.2g}"
    )


def contenders_for(args: argparse.Namespace, folder: Path, model_path: str) -> list[Runs]:
    """chronobt's backtest first, then the peers asked for, as command lines."""
    me = [sys.executable, __file__]
    run = ["--preaug", args.preaug, "--context", str(args.context), "--model", model_path]
    cache = [*run, "--cache-dir", str(folder / "cache"), "--data-dir", str(DATA), "--quiet"]
    out_b, out_f = str(folder / "backtest"), str(folder / "forecast")

    # after "--": the command line's own options, never read by this script's parser
    def backtest_into(out: str) -> list[str]:
        return ["--", "backtest", args.symbol, "--windows", str(args.windows), "--output-dir", out, *cache]

    backtest = backtest_into(out_b)
    forecast = ["--", "forecast", args.symbol, "--output-dir", out_f, *cache]
    out_n = str(folder / "backtest_numba")
    backtest_n = backtest_into(out_n)
    common = ["--symbol", args.symbol, "--windows", str(args.windows), "--preaug", args.preaug]
    common += ["--context", str(args.context), "--model-path", model_path]
    commands = {
        "chronos": ("chronos predict", [*me, "--child", "chronos", *common]),
        "import": ('python -c "import torch, chronos"', [sys.executable, "-c", "import torch, chronos"]),
        "forecast": (
            "chronobt forecast (hourly job)",
            [*me, "--child", "chronobt", "--out", out_f, *forecast],
        ),
        "darts": ("darts historical_forecasts", [*me, "--child", "darts", *common]),
        "numba": (
            "chronobt backtest, numba loops",
            [*me, "--child", "chronobt", "--numba-loops", "--out", out_n, *backtest_n],
        ),
    }
    if args.preaug != "none":
        commands["chronos"] = ("chronos predict + numpy inversion", commands["chronos"][1])
    contenders = [Runs("chronobt backtest", [*me, "--child", "chronobt", "--out", out_b, *backtest])]
    for peer in args.peers:
        name, command = commands[peer]
        if peer in ("chronos", "darts"):
            command = [*command, "--save", str(folder / f"{peer}.npy")]
        contenders.append(Runs(name, command))
    return contenders


def summary(args: argparse.Namespace, contenders: list[Runs], folder: Path) -> list[str]:
    """The lines under the table: the target ratios, the fixed cost, the stages and the agreement."""
    runs = dict(zip(["chronobt", *args.peers], contenders, strict=True))
    main_cmd = runs["chronobt"]
    targets = TARGETS.get((args.model, args.preaug), {})
    lines = []
    for peer in ("chronos", "darts"):
        if peer in runs:
            goal = f"target >= {targets[peer]}" if peer in targets else "no stated target for this setting"
            lines.append(f"{peer} / chronobt wall: {runs[peer].median / main_cmd.median:.2f} ({goal})")
    if "import" in runs:
        work = statistics.median(r["work_s"] for r in main_cmd.results)
        fixed = main_cmd.median - work
        lines.append(
            f"fixed cost (wall - forward - invert - metrics - write): {fixed:.2f} s, "
            f"{fixed - runs['import'].median:+.2f} s above the import (target <= +0.5 s)"
        )
        if "forecast" in runs:
            ratio = runs["forecast"].median / runs["import"].median
            lines.append(f"forecast / import: {ratio:.2f} (target <= 1.5)")
    for name, r in runs.items():
        if name in ("chronobt", "chronos", "darts"):
            lines.append(f"{name} stages (last run): {json.dumps(r.results[-1])}")
    mine = backtest_medians(folder / "backtest", ("open", "high", "low", "close"))
    lines += [agreement(p, mine, folder / f"{p}.npy") for p in ("chronos", "darts") if p in runs]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first (chronobt stores its checks' verdicts)"
    )
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--symbol", default="BTCUSD", help="a symbol in data/ (BTCUSD: hourly)")
    parser.add_argument("--model", default="bundled", help="bundled, small (random ~7M) or a folder")
    parser.add_argument("--preaug", default="differencing", choices=["differencing", "none"])
    parser.add_argument("--context", type=int, default=2048, help="--context (capped at the model's)")
    parser.add_argument("--peers", nargs="+", default=["chronos", "import", "forecast"], choices=PEERS)
    parser.add_argument("--darts", action="store_true", help="also run Darts (same as adding darts)")
    parser.add_argument("--child", choices=["chronobt", "chronos", "darts"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--numba-loops", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    if args.child == "chronobt":
        return chronobt_child(args, argv[split + 1 :])
    if args.child == "chronos":
        return chronos_child(args)
    if args.child == "darts":
        return darts_child(args)
    if args.darts and "darts" not in args.peers:
        args.peers.append("darts")
    if "darts" in args.peers:
        try:
            import darts  # noqa: F401
        except ImportError:
            parser.error('darts is not installed: pip install "darts[torch]==0.48.1"')
    before = load()
    print(
        header(
            f"main command vs peers, {args.symbol}, {args.windows} windows, {args.preaug}, "
            f"model {args.model}, context {args.context}"
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_path = model_paths([args.model], folder).get(args.model, args.model)
        contenders = contenders_for(args, folder, model_path)
        interleaved(contenders, pairs=args.pairs, warmup=args.warmup)
        report(contenders, before=before, extra=summary(args, contenders, folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
