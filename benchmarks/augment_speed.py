"""Speed of the pre-augmentations on a backtest-sized batch.

For each augmentation: ``fit`` + ``transform`` of [windows, 4, 2048] contexts, then ``inverse_quantiles``
of [windows, 4, 21, horizon] forecasts to the 21 model levels (path-dependent ones: Latin-hypercube
sample paths, ``--n-paths``). Prints one JSON line per augmentation: seconds, windows/s and the peak
resident memory so far.

    python benchmarks/augment_speed.py --windows 10000
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from chronobt.augment import AVAILABLE_AUGMENTATIONS, DEFAULT_N_PATHS, get_augmentation, inverse_quantiles
from chronobt.engine.checkpoints import STANDARD_QUANTILES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=10_000)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--n-paths", type=int, default=DEFAULT_N_PATHS)
    parser.add_argument("--only", nargs="*", default=list(AVAILABLE_AUGMENTATIONS))
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    contexts = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (args.windows, 4, args.context)), axis=-1))
    contexts[::7, :, : args.context // 4] = np.nan  # some left-padded windows
    levels = np.array(STANDARD_QUANTILES)
    for name in args.only:
        aug = get_augmentation(name)
        t0 = time.perf_counter()
        state = aug.fit(contexts)
        model_input = aug.transform(contexts, state)
        t1 = time.perf_counter()
        future = aug.transform_future(contexts[..., -args.horizon :] * 1.01, state)
        q = (
            future[:, :, None, :]
            + 0.05
            * np.nanstd(model_input[:, :, -64:], axis=-1)[..., None, None]
            * (np.array([np.float64(z) for z in np.linspace(-2.3, 2.3, levels.size)])[None, None, :, None])
        )
        del model_input
        t2 = time.perf_counter()
        grid = levels.tolist()
        prices = inverse_quantiles(aug, q, levels=grid, state=state, out_levels=grid, n_paths=args.n_paths)
        t3 = time.perf_counter()
        assert np.isfinite(prices).all()
        record = {
            "augmentation": str(aug.spec),
            "windows": args.windows,
            "fit_transform_s": round(t1 - t0, 2),
            "inverse_quantiles_s": round(t3 - t2, 2),
            "n_paths": args.n_paths if aug.path_dependent else None,
            "windows_per_s_inverse": round(args.windows / (t3 - t2)),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
