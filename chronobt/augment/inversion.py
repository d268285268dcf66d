"""Price quantiles from an augmentation's quantile forecasts: :func:`inverse_quantiles`.

A pointwise augmentation maps each quantile exactly through its (increasing) inverse. A path-dependent
one (differencing, rolling_norm) has no per-step inverse of a quantile: :func:`inverse_quantiles` draws
``n_paths`` sample paths per window from the step distributions (:mod:`chronobt.augment.sampling`),
inverts them to prices with the augmentation and reads the quantiles off the prices, over cache-sized
window chunks (:func:`chronobt.augment.base.window_chunks`) run by one thread per core (fewer where their
chunks would not fit in memory; more paths than fit with one are refused: :mod:`chronobt.augment.memory`).
The draws and the quantile reads run on the host (the compiled loops: :mod:`chronobt.augment.loops` in
C, :mod:`chronobt.augment.kernels` in numba) or, given a torch device, in torch there
(:mod:`chronobt.augment.inversion_torch`, imported only then).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from chronobt.augment.base import Augmentation, AugmentationState, window_chunks
from chronobt.augment.memory import InversionMemory, check_inversion_memory
from chronobt.augment.pit import sorted_quantiles
from chronobt.augment.sampling import (
    check_correlation,
    check_levels,
    copula_draws,
    interpolate_quantiles,
    read_quantiles,
    running_sum_quantiles,
    sample_steps,
    stratified_draws,
)
from chronobt.errors import AugmentationError, ConfigError

Dependence = Literal["independent", "comonotonic", "copula"]

#: Default number of sample paths for path-dependent quantile inversion. With the Latin hypercube
#: sampler the Monte Carlo standard error of the 10%, 50% and 90% price quantiles is at most ~1% of
#: the 80% interval width at every horizon step (1-step quantiles are exact to interpolation);
#: ``tests/test_augment.py::test_default_n_paths_gives_quantiles_stable_to_one_percent_of_interval``
#: measures it across seeds.
DEFAULT_N_PATHS = 4096
#: Most sample paths ``--paths`` takes (``n_paths``): 1,000,000 paths of a 24-step horizon hold 192 MB per
#: window and variate; the memory check (:func:`check_inversion_memory`) bounds what a run can hold.
MAX_PATHS = 1_000_000

#: Upper bound on threads inverting sample-path chunks in parallel (each holds a few chunk arrays).
MAX_INVERSION_THREADS = 16

#: One chunk of work: the windows (a slice or an index array) and their draws' segments and fractions.
Task = tuple[slice | np.ndarray, np.ndarray, np.ndarray]


def inversion_device(device: Any) -> Any:
    """The torch device the inversion should run on for an engine on ``device``: CUDA only, else ``None``.

    ``None`` (or any device that is not CUDA) gives ``None`` without importing torch.
    """
    if device is None or not str(getattr(device, "type", device)).startswith("cuda"):
        return None
    from chronobt.augment import inversion_torch

    return inversion_torch.inversion_device(device)


def inverse_quantiles(
    aug: Augmentation,
    q: np.ndarray,
    *,
    levels: Sequence[float],
    state: AugmentationState,
    out_levels: Sequence[float],
    dependence: Dependence = "independent",
    n_paths: int = DEFAULT_N_PATHS,
    seed: int = 0,
    correlation: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    device: Any = None,
) -> np.ndarray:
    """Price quantiles [w, v, len(out_levels), h] from ``aug``'s augmented quantiles ``q`` [w, v, Q, h].

    Crossing predicted quantiles are first sorted. Each step's predictive distribution is the
    inverse-CDF interpolation of ``q`` over ``levels`` (see :mod:`chronobt.augment.sampling` for
    the tails beyond the outermost levels), so ``out_levels`` may be any levels in (0, 1).

    - Pointwise augmentations: each out-level quantile maps exactly through the (increasing)
      inverse; ``dependence``, ``n_paths`` and ``seed`` are unused.
    - Path-dependent, ``"comonotonic"``: one shared uniform per path, i.e. the trajectory at each
      out-level is inverted exactly (per-quantile inversion), then sorted per step.
    - Path-dependent, ``"independent"``: ``n_paths`` Latin-hypercube paths with independent steps
      (seeded by ``seed``) are inverted and the quantiles read off the prices, chunked over windows.
    - Path-dependent, ``"copula"``: as ``"independent"``, but the paths' steps are coupled by a
      Gaussian copula with ``correlation`` (``[h, h]`` shared, or ``[w, h, h]`` per window; see
      :func:`chronobt.augment.sampling.copula_draws` and :mod:`chronobt.augment.dependence`). Windows with
      equal matrices share their draws, so a window's result depends only on its own matrix. With
      ``groups`` ``[w]`` (ints), ``correlation`` is ``[m, h, h]`` and window ``i`` uses
      ``correlation[groups[i]]``: the same numbers as those matrices passed per window, without the
      ``[w, h, h]`` array (each matrix is checked once).

    ``device``: ``None`` (default) runs the sample-path steps on the host (compiled loops, C or numba,
    :func:`chronobt.augment.sampling.compiled`: the exact sort's quantiles); a torch device draws the
    step values and reads the quantiles in torch there (:mod:`chronobt.augment.inversion_torch`: off 16-bit
    keys, within 1/8,192 of the spread of the order statistics needed). Pass :func:`inversion_device`
    of the engine's device: CUDA, else ``None`` (the host loops are faster on a CPU).

    Raises
    ------
    AugmentationError
        ``q`` is not 4-D, or ``state`` is not ``aug``'s fitted state for these windows.
    ConfigError
        Bad levels, dependence, correlation, ``groups`` or ``n_paths``, or more sample paths than memory holds
        (:func:`chronobt.augment.memory.check_inversion_memory`).
    """
    qa = np.asarray(q, dtype=np.float64)
    if qa.ndim != 4:
        raise AugmentationError(f"{aug.spec}: quantiles must be [w, v, Q, h], got {qa.shape}")
    st = aug.check_state(state, qa.shape)
    lv = check_levels(levels, qa.shape[2])
    out_lv = check_levels(out_levels, what="out_levels")
    if dependence not in ("independent", "comonotonic", "copula"):
        raise ConfigError(f"dependence must be 'independent', 'comonotonic' or 'copula', got {dependence!r}")
    if (correlation is not None) != (dependence == "copula"):
        raise ConfigError("a step correlation is needed with dependence='copula' and only there")
    if groups is not None and correlation is None:
        raise ConfigError("groups index a step correlation [m, h, h]: pass one with dependence='copula'")
    corr = None if correlation is None else _correlation_sets(correlation, groups, qa.shape[3], qa.shape[0])
    qs = sorted_quantiles(qa)  # crossing quantiles sorted
    if not aug.path_dependent or dependence == "comonotonic":
        prices = aug.inverse(interpolate_quantiles(qs, lv, out_lv), st)
        if aug.path_dependent:
            order = np.argsort(out_lv, kind="stable")
            prices[:, :, order] = np.sort(prices[:, :, order], axis=2)
        return prices
    if int(n_paths) < 2:
        raise ConfigError(f"n_paths must be an integer >= 2, got {n_paths!r}")
    n_w, n_v, _, h = qs.shape
    sets = len(corr[0]) if isinstance(corr, tuple) else 1
    need = InversionMemory.of(aug, windows=n_w, variates=n_v, horizon=h, n_paths=int(n_paths), draw_sets=sets)
    limit = check_inversion_memory(need)
    tasks = _tasks(lv, qs.shape, int(n_paths), seed, corr)
    return _sampled_quantiles(aug, qs, out_lv, st, int(n_paths), tasks, device, need.workers_within(limit))


def _correlation_sets(
    correlation: object, groups: object, h: int, n_w: int
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The checked step correlation as :func:`_tasks` takes it: ``[h, h]`` shared by every window, or the
    distinct matrices (by value) the windows use, flattened ``[m, h * h]`` in the order of first use, and
    each window's index among them ``[w]``.

    Each distinct matrix is checked (:func:`chronobt.augment.sampling.check_correlation`) and compared
    once: per-window matrices ``[w, h, h]`` are compared in runs of equal neighbours (windows sharing a
    matrix are mostly adjacent); with ``groups`` the ``[m, h, h]`` matrices are checked as given.
    """
    r = np.asarray(correlation, dtype=np.float64)
    if groups is None:
        if r.shape != (n_w, h, h) or n_w == 0:
            r = check_correlation(r, h, n_w)
            if r.ndim == 2:
                return r
            return np.zeros((0, h * h)), np.zeros(0, dtype=np.intp)
        starts = np.flatnonzero(np.concatenate([[True], (r[1:] != r[:-1]).any(axis=(1, 2))]))
        matrices = check_correlation(r[starts], h, starts.size)
        of = np.repeat(np.arange(starts.size), np.diff(np.append(starts, n_w)))
    else:
        of = np.asarray(groups)
        if of.shape != (n_w,) or not (of.dtype.kind in "iu" or of.size == 0) or r.ndim != 3:
            raise ConfigError(
                f"groups must be [{n_w}] integers (one per window) indexing a correlation [m, {h}, {h}], "
                f"got groups {list(of.shape)} and correlation {list(r.shape)}"
            )
        if of.size and (of.min() < 0 or of.max() >= r.shape[0]):
            raise ConfigError(f"groups must lie in 0..{r.shape[0] - 1} (one per correlation matrix)")
        matrices = check_correlation(r, h, r.shape[0])
        used, of = np.unique(of.astype(np.intp), return_inverse=True)
        matrices = matrices[used]  # only the matrices some window uses are drawn from
    flat = matrices.reshape(matrices.shape[0], -1)
    index: dict[bytes, int] = {}  # distinct by value: + 0.0 turns -0.0 into 0.0 (NaN was refused)
    firsts: list[int] = []
    at = np.empty(flat.shape[0], dtype=np.intp)
    for i, row in enumerate(flat):
        key = (row + 0.0).tobytes()
        if key not in index:
            index[key] = len(firsts)
            firsts.append(i)
        at[i] = index[key]
    return flat[firsts], at[of.reshape(-1)]


def _tasks(
    levels: np.ndarray,
    shape: tuple[int, ...],
    n_paths: int,
    seed: int,
    correlation: np.ndarray | tuple[np.ndarray, np.ndarray] | None,
) -> list[Task]:
    """The chunks of windows to invert with their draws: one set of draws for all windows (``correlation``
    ``None`` or ``[h, h]``), or one per distinct correlation matrix (``correlation``: the distinct
    flattened matrices and each window's index among them, as :func:`_correlation_sets` gives them; all
    drawn in one :func:`~chronobt.augment.sampling.copula_draws` call), inverted over the windows that
    use it."""
    n_w, n_v, _, h = shape
    per_window = n_v * n_paths * h
    if not isinstance(correlation, tuple):
        seg, frac = (
            stratified_draws(levels, n_paths, h, seed)
            if correlation is None
            else copula_draws(levels, n_paths, correlation, seed)
        )  # [h, P] each
        seg, frac = _contiguous(seg, frac)
        return [(rows, seg, frac) for rows in window_chunks(n_w, per_window)]
    tasks: list[Task] = []
    unique, group = correlation
    segs, fracs = copula_draws(levels, n_paths, unique.reshape(-1, h, h), seed)  # [m, h, P] each
    for g in range(unique.shape[0]):
        seg, frac = _contiguous(segs[g], fracs[g])
        idx = np.flatnonzero(group.reshape(-1) == g)
        tasks += [(idx[part], seg, frac) for part in window_chunks(idx.size, per_window)]
    return tasks


def _contiguous(seg: np.ndarray, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The draws as the compiled loops take them (C order: one copy per call, not one per chunk)."""
    return np.ascontiguousarray(seg, dtype=np.int64), np.ascontiguousarray(frac, dtype=np.float64)


def _sampled_quantiles(
    aug: Augmentation,
    qs: np.ndarray,
    out_levels: np.ndarray,
    state: AugmentationState,
    n_paths: int,
    tasks: list[Task],
    device: Any,
    max_workers: int = MAX_INVERSION_THREADS,
) -> np.ndarray:
    """Invert ``tasks``' sample paths of the sorted quantiles ``qs`` ``[w, v, Q, h]`` to price quantiles."""
    n_w, n_v, n_q, h = qs.shape
    out = np.empty((n_w, n_v, out_levels.size, h))
    if device is not None:
        from chronobt.augment import inversion_torch

        torch_device = inversion_torch.torch.device(device)

    local = threading.local()  # per worker: a chunk-sized buffer reused from chunk to chunk
    # differencing: the paths summed from each window's first values as they are read (a per-window array)
    starts = None if device is not None else aug.running_sum_from(state)

    def buffer(shape: tuple[int, ...]) -> np.ndarray:
        # A fresh chunk-sized array would fault its pages in again at every chunk (glibc hands large
        # blocks back to the kernel); the page faults and their cost: benchmarks/RESULTS.md, section
        # ``inversion_speed.py``.
        held = getattr(local, "held", None)
        if held is None or held.shape != shape:
            held = local.held = np.empty(shape)
        return held

    def invert_chunk(task: Task) -> None:
        rows, seg, frac = task
        with np.errstate(over="ignore", invalid="ignore"):  # thread-local: set in the worker
            chunk = qs[rows]
            q_tf = chunk.transpose(3, 0, 1, 2).reshape(h, -1, n_q)  # [h, w*v, Q]
            if starts is not None:  # differencing: the paths summed step by step as they are read
                sums = buffer((q_tf.shape[1], n_paths))
                read = running_sum_quantiles(q_tf, seg, frac, starts[rows], out_levels, sums=sums)
                out[rows] = read.reshape(h, chunk.shape[0], n_v, -1).transpose(1, 2, 3, 0)
                return
            if device is None:
                drawn = sample_steps(q_tf, seg, frac, out=buffer((h, q_tf.shape[1], n_paths)))
            else:
                drawn = inversion_torch.sample_steps(q_tf, seg, frac, torch_device)
            steps = drawn.reshape(h, chunk.shape[0], n_v, n_paths)
            prices = aug.inverse_tf_owned(steps, state.take(rows))  # [h, w, v, P]
            if device is None:
                read = read_quantiles(prices, out_levels)
            else:
                read = inversion_torch.path_quantiles(prices, out_levels, torch_device)
            out[rows] = read.transpose(1, 2, 3, 0)

    # Chunks are independent and the compiled loops release the GIL: one thread per core (the torch
    # path runs its chunks in turn: the device serialises them anyway).
    workers = 1 if device is not None else min(len(tasks), os.cpu_count() or 1, max_workers)
    if workers <= 1:
        for task in tasks:
            invert_chunk(task)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(invert_chunk, tasks))
    return out
