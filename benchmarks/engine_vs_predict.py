"""chronobt's engine against chronos' own ``Chronos2Pipeline.predict`` (default batch), whole processes.

Each run is a fresh process that imports, loads the model, forecasts N univariate random-walk series
(context 2048, horizon 24) and exits: ``engine`` through ``Chronos2Engine`` at its defaults (sized for
the free cores the command line would pass, :func:`chronobt.cli.engine_options.free_cpu_cores`, and
with a cache folder shared by the runs, so the view checks run in the first and are reused after),
``predict`` through plain chronos (``Chronos2Pipeline.from_pretrained(...).predict(...)`` at its default
batch size). Both run on ``--threads`` torch threads. The models: a random ~7M-parameter Chronos-2 at
context 2048 (``small``, built once in a temporary folder) and the bundled chronos2-mini (``bundled``).
Pairs are interleaved; the table gives median wall seconds, the ratio predict / engine (above 1: the
engine is faster), each side's median forward seconds and CPU seconds, and the largest difference of
their median forecasts. ``--hog K`` runs K busy-looping processes beside both (a loaded machine).

    python benchmarks/engine_vs_predict.py --pairs 5
    python benchmarks/engine_vs_predict.py --pairs 5 --hog 2 --models small --series 256
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from whole_process import Runs, header, hogs, interleaved, load, report

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "chronobt" / "assets" / "chronos2-mini"
CONTEXT = 2048
HORIZON = 24


def model_paths(models: list[str], folder: Path) -> dict[str, str]:
    """Model folders by name: ``bundled`` (chronos2-mini) and ``small`` (a random ~7M-parameter
    Chronos-2 at context 2048, saved with ``save_pretrained`` under ``folder`` when asked for)."""
    from chronobt.engine.checkpoints import save_random_checkpoint

    paths = {"bundled": str(BUNDLED)}
    if "small" in models:
        paths["small"] = str(save_random_checkpoint(folder / "small", "small", seed=0))
    return paths


def contexts(series: int) -> np.ndarray:
    """``[series, 1, CONTEXT]`` float32 random walks (the same in both children)."""
    rng = np.random.default_rng(0)
    return (100 + rng.normal(size=(series, 1, CONTEXT)).cumsum(-1)).astype(np.float32)


def child(args: argparse.Namespace) -> int:
    """One whole run; prints ``RESULT {json}`` and saves the median forecast ``[series, horizon]``."""
    started = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    data = contexts(args.series)
    if args.child == "engine":
        from chronobt.cli.engine_options import free_cpu_cores
        from chronobt.engine.core import Chronos2Engine, EngineConfig

        config = EngineConfig(
            model=args.model,
            device="cpu",
            compile="off",
            cpu_free_cores=free_cpu_cores(),
            cache_dir=Path(args.cache_dir),  # as the command line: view checks stored once, then reused
        )
        engine = Chronos2Engine(config)
        loaded = time.perf_counter()
        preds = engine.predict(data, HORIZON)  # [series, 1, Q, h]
        forward = time.perf_counter() - loaded
        median = preds[:, 0, engine.median_index]
        record = engine.record()
        extra = {k: record[k] for k in ("batch_size", "cpu_workers", "task_chunks", "cpu_free_cores")}
    else:
        from chronos import Chronos2Pipeline

        pipeline = Chronos2Pipeline.from_pretrained(args.model)
        loaded = time.perf_counter()
        out = pipeline.predict(torch.as_tensor(data), prediction_length=HORIZON)  # default batch size
        forward = time.perf_counter() - loaded
        levels = list(pipeline.quantiles)
        mid = int(np.argmin(np.abs(np.asarray(levels) - 0.5)))
        median = np.stack([t[0, mid].float().numpy() for t in out])
        extra = {}
    np.save(args.save, median)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "forward_s": round(forward, 3),
        "load_s": round(loaded - started, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        **extra,
    }
    print("RESULT " + json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["small", "bundled"], choices=["small", "bundled"])
    parser.add_argument("--series", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hog", type=int, default=0, help="busy-looping processes beside the runs")
    parser.add_argument("--child", choices=["engine", "predict"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.series = args.series[0]
        return child(args)
    before = load()
    print(header(f"engine vs chronos predict, {args.threads} threads, {args.hog} hog process(es)"))
    with tempfile.TemporaryDirectory() as tmp, hogs(args.hog):
        folder = Path(tmp)
        paths = model_paths(args.models, folder)
        for name in args.models:
            for series in args.series:
                runs = []
                for side in ("engine", "predict"):
                    command = [sys.executable, __file__, "--child", side, "--model", paths[name]]
                    command += ["--series", str(series), "--threads", str(args.threads)]
                    command += ["--save", str(folder / f"{side}.npy"), "--cache-dir", str(folder / "cache")]
                    runs.append(Runs(side, command))
                print(f"\n### {name} model, {series} series, context {CONTEXT}, horizon {HORIZON}")
                interleaved(runs, pairs=args.pairs)
                diff = float(
                    np.nanmax(np.abs(np.load(folder / "engine.npy") - np.load(folder / "predict.npy")))
                )
                lines = [
                    f"predict / engine wall: {runs[1].median / runs[0].median:.2f} (above 1: engine faster)",
                    *(
                        f"{r.name}: forward {r.median_of('forward_s')} s, cpu {r.median_of('cpu_s')} s, "
                        f"peak rss {r.median_of('peak_rss_mb')} MB; {json.dumps(r.results[-1])}"
                        for r in runs
                    ),
                    f"largest |difference| of the median forecasts: {diff:.3g}",
                ]
                report(runs, before=before, extra=lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
