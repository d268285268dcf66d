"""The full Chronos-2 forward vs the engine's output-only last block, same model, same batch.

Times ``model(...)`` and ``lastblock.output_only_view(model, n)(...)`` in one process, interleaved
``--repeats`` times, on one engine-shaped CPU batch (``--series`` random-walk series in groups of four,
context ``--context``, 24-step horizon), and prints medians, the speed-up, the largest difference
between the two forecasts and the verdict of the engine's run-time check
(:func:`chronobt.engine.views.check.check_view`). Results go to ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/last_block.py [--arch small|tiny|mini] [--series 16] [--context 2048] [--repeats 9]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from chronobt.engine.allocator import keep_freed_memory
from chronobt.engine.checkpoints import ArchSpec, random_model
from chronobt.engine.views.check import check_view
from chronobt.engine.views.lastblock import output_only_view

ARCHS = {
    "small": ArchSpec(d_model=256, d_kv=32, d_ff=1024, num_layers=6, num_heads=8, context_length=2048),
    "mini": ArchSpec(
        d_model=128, d_kv=32, d_ff=512, num_layers=4, num_heads=4, context_length=2048
    ),  # chronos2-mini shape
    "tiny": ArchSpec(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, context_length=512),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), default="small")
    parser.add_argument("--series", type=int, default=16)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    keep_freed_memory()  # as the CLI does
    spec = ARCHS[args.arch]
    context_len = min(args.context, spec.context_length)
    model = random_model(spec, seed=0)
    n_out = 2  # 24 steps at output patch 16
    view = output_only_view(model, n_out)
    gen = torch.Generator().manual_seed(0)
    context = 100 + torch.randn(args.series, context_len, generator=gen).cumsum(-1)
    group_ids = torch.arange(args.series).div(4, rounding_mode="floor")
    times: dict[str, list[float]] = {"full": [], "output-only": []}
    with torch.inference_mode():
        outputs = {
            name: fn(context=context, group_ids=group_ids, num_output_patches=n_out).quantile_preds
            for name, fn in (("full", model), ("output-only", view))
        }
        for _ in range(args.repeats):
            for name, fn in (("full", model), ("output-only", view)):
                started = time.perf_counter()
                fn(context=context, group_ids=group_ids, num_output_patches=n_out)
                times[name].append(time.perf_counter() - started)
    diff = (outputs["full"] - outputs["output-only"]).abs().max().item()
    scale = outputs["full"].abs().max().item()
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"# {time.strftime('%Y-%m-%d')} · {platform.processor() or platform.machine()} · "
        f"{torch.get_num_threads()} threads · {args.arch} ({n_params / 1e6:.2f}M params, "
        f"{spec.num_layers} layers) · {args.series} series x context {context_len} · "
        f"medians of {args.repeats} interleaved runs"
    )
    full, fast = statistics.median(times["full"]), statistics.median(times["output-only"])
    print("| forward | ms/series (median) | ms/series (min) |")
    print("|---|---|---|")
    for name, values in times.items():
        print(
            f"| {name} | {1000 * statistics.median(values) / args.series:.2f} | "
            f"{1000 * min(values) / args.series:.2f} |"
        )
    print(f"speed-up {full / fast:.2f}x; largest difference {diff:.2e} (forecasts up to {scale:.1f})")
    check = check_view(model, view, n_out=n_out, n_variates=4, context_length=context_len)
    print(f"engine check: {'passed' if check.passed else 'FAILED'}: {check.reason}")


if __name__ == "__main__":
    main()
