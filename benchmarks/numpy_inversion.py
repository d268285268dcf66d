"""The sample-path inversion in plain numpy: the reference the compiled CPU path is timed against.

The same draws (:func:`chronobt.augment.sampling.stratified_draws`), the same inverse (the
augmentation's public ``inverse`` of the paths) and the exact quantile read
(:func:`chronobt.augment.sampling.path_quantiles`: a full sort), with numpy's fancy indexing for the
draws, chunked over windows and spread over one thread per core as the library does (numpy's sort
releases the GIL). Gives the library's numbers for independent steps (the benchmarks check it).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from chronobt.augment import sampling
from chronobt.augment.base import Augmentation, AugmentationState, window_chunks
from chronobt.augment.inversion import DEFAULT_N_PATHS


def numpy_inverse_quantiles(
    aug: Augmentation,
    q: np.ndarray,
    *,
    levels: np.ndarray,
    state: AugmentationState,
    out_levels: np.ndarray,
    n_paths: int = DEFAULT_N_PATHS,
    seed: int = 0,
) -> np.ndarray:
    """Price quantiles ``[w, v, K, h]`` from augmented quantiles ``q`` ``[w, v, Q, h]``, independent steps."""
    qs = np.sort(np.asarray(q, dtype=np.float64), axis=2)
    n_w, n_v, _, h = qs.shape
    lv, out_lv = np.asarray(levels, dtype=np.float64), np.asarray(out_levels, dtype=np.float64)
    seg, frac = sampling.stratified_draws(lv, n_paths, h, seed)  # [h, P]
    out = np.empty((n_w, n_v, out_lv.size, h))
    steps = np.arange(h)[:, None]

    def invert(rows: slice) -> None:
        chunk = qs[rows]  # [w, v, Q, h]
        lo, hi = chunk[:, :, seg, steps], chunk[:, :, seg + 1, steps]  # [w, v, h, P]
        paths = np.swapaxes(lo + (hi - lo) * frac, 2, 3)  # [w, v, P, h]
        with np.errstate(over="ignore", invalid="ignore"):
            prices = aug.inverse(paths, state.take(rows))
            out[rows] = np.swapaxes(sampling.path_quantiles(np.swapaxes(prices, 2, 3), out_lv), 2, 3)

    chunks = list(window_chunks(n_w, n_v * n_paths * h))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(invert, chunks))
    return out
