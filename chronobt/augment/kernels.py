"""Compiled loops of the CPU sample-path inversion (numba): drawing step values, reading order statistics.

The fallback of :mod:`chronobt.augment.loops` (the same loops in C, the same numbers, built at install
where a C compiler is present): :func:`chronobt.augment.sampling.compiled` hands these out only where the
C ones were not built.

numpy spends most of the inversion's time on passes it cannot fuse: a gather of (lower quantile, rise)
pairs per step, strided arithmetic on them, and a sort of every row of ``P`` prices to read a few
order statistics. These loops do the same work in one pass each (:func:`draw_steps`,
:func:`order_statistics`; :func:`running_sum_statistics` draws, sums and reads differencing's paths
step by step), without the GIL (the inversion's worker threads run them side by side), and give the
numpy reference's numbers: the same float64 operations in the same order (no fast-math, no contraction
into fused multiply-adds), and exact order statistics rather than an approximation (timings:
``benchmarks/RESULTS.md``, sections ``inversion_speed.py`` and ``inversion_forward.py``).

Compiled on first use and cached beside this file (numba's ``cache=True``; a read-only install caches
in the user's cache folder, and where no folder is writable every process compiles), loaded through
:func:`chronobt.augment.sampling.compiled`: one signature each, because
:mod:`chronobt.augment.sampling` passes only C-contiguous, writeable float64 and int64 arrays. numba
checks no bounds: the wrappers there check the shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

#: Most values sorted by insertion (a pilot, the values of the bins read); more go to numba's sort.
SMALL_SORT = 64


def _compiled(function: Callable[..., Any]) -> Any:
    """``numba.njit`` without the GIL, cached on disk where a cache folder is writable."""
    try:
        return numba.njit(nogil=True, cache=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(function)


@_compiled
def draw_steps(q: np.ndarray, seg: np.ndarray, frac: np.ndarray, out: np.ndarray) -> None:
    """``out[k, r, j] = q[k, r, s] + (q[k, r, s + 1] - q[k, r, s]) * frac[k, j]`` with ``s = seg[k, j]``.

    ``q`` ``[h, rows, Q]``; ``seg`` (int64, in ``0 .. Q - 2``), ``frac`` ``[h, P]``; ``out`` ``[h, rows, P]``.
    """
    h, rows, _ = q.shape
    n = seg.shape[1]
    for k in range(h):
        seg_k = seg[k]
        frac_k = frac[k]
        for r in range(rows):
            row = q[k, r]
            dest = out[k, r]
            for j in range(n):
                s = seg_k[j]
                dest[j] = row[s] + (row[s + 1] - row[s]) * frac_k[j]


@numba.njit(nogil=True, inline="always")
def _sort_small(a: np.ndarray, n: int) -> None:
    """Insertion sort of ``a[:n]`` in place, NaN last (numpy's order): faster than numba's ``sort`` on
    the few dozen values of a pilot or of the bins read."""
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and (v < a[j] or (a[j] != a[j] and v == v)):
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@_compiled
def order_statistics(
    paths: np.ndarray,
    ranks: np.ndarray,
    stride: int,
    pilot_low: int,
    pilot_high: int,
    bins: int,
    out: np.ndarray,
) -> int:
    """The ``ranks``-th smallest values (0-based, ascending) of each row of ``paths`` ``[rows, P]``.

    The values of ``np.sort(paths, axis=1)[:, ranks]`` (NaN sorting last; only the sign of a zero may
    differ), read by a histogram refined where the ranks fall rather than a full sort. Per row:

    1. A pilot of every ``stride``-th value is sorted (by insertion up to :data:`SMALL_SORT` values);
       its ``pilot_low``-th and ``pilot_high``-th values, widened by a quarter of their distance on
       each side, bracket the ranks (the caller places them with spare ranks beyond the outermost one).
    2. One pass puts every value into one of ``bins`` equal bins over the bracket, or into the "below"
       and "above" bins beyond it. The map is monotone (correctly rounded subtraction, multiplication
       and truncation never reorder two values), so bin ``b`` holds exactly the sorted positions
       ``start[b] .. start[b + 1] - 1``, and cumulative counts give the bin of every rank (one scan
       of the bins, the ranks ascending).
    3. A second pass gathers the values of the bins that hold a rank (a few dozen of ``P``), which are
       sorted, and each rank is read at its place in them.

    A row is sorted whole instead when the bracket is empty or infinite, a value is NaN, or a rank
    falls below or above the bracket (a pilot that missed); infinite values sit in the end bins. The
    values go to ``out`` ``[rows, len(ranks)]``; returns how many rows were sorted whole.
    """
    rows, n = paths.shape
    start, where, needed, rank_bin, work = _scratch(n, ranks.size, bins)
    whole = 0
    for r in range(rows):
        whole += _row_statistics(
            paths[r], ranks, stride, pilot_low, pilot_high, bins, start, where, needed, rank_bin, work, out[r]
        )
    return whole


@_compiled
def running_sum_statistics(
    q: np.ndarray,
    seg: np.ndarray,
    frac: np.ndarray,
    first: np.ndarray,
    ranks: np.ndarray,
    stride: int,
    pilot_low: int,
    pilot_high: int,
    bins: int,
    sums: np.ndarray,
    out: np.ndarray,
) -> int:
    """:func:`order_statistics` of the running sums of the steps :func:`draw_steps` draws, step by step.

    Path ``j`` of row ``r`` at step ``k`` is ``x[k] = d[k] + x[k - 1]`` from ``x[-1] = first[r]``, with
    ``d[k] = q[k, r, s] + (q[k, r, s + 1] - q[k, r, s]) * frac[k, j]`` (``s = seg[k, j]``): differencing's
    inverse (:meth:`chronobt.augment.base.Augmentation.running_sum_from`) by the same float64 operations
    in the same order as drawing all steps, summing them in place and reading each step's rows, without
    the ``[h, rows, P]`` paths: ``sums`` ``[rows, P]`` holds each row's running sums (overwritten).
    ``q`` ``[h, rows, Q]``, ``seg`` (int64) and ``frac`` ``[h, P]``, ``first`` ``[rows]``; the order
    statistics go to ``out`` ``[h, rows, len(ranks)]``. Returns how many rows were sorted whole.
    """
    h, rows, n_q = q.shape
    n = seg.shape[1]
    start, where, needed, rank_bin, work = _scratch(n, ranks.size, bins)
    rise = np.empty(n_q - 1)
    whole = 0
    for k in range(h):
        seg_k = seg[k]
        frac_k = frac[k]
        for r in range(rows):
            row = q[k, r]
            dest = sums[r]
            for i in range(n_q - 1):
                rise[i] = row[i + 1] - row[i]
            if k == 0:
                base = first[r]
                for j in range(n):
                    s = seg_k[j]
                    dest[j] = row[s] + rise[s] * frac_k[j] + base
            else:
                for j in range(n):
                    s = seg_k[j]
                    dest[j] = row[s] + rise[s] * frac_k[j] + dest[j]
            whole += _row_statistics(
                dest,
                ranks,
                stride,
                pilot_low,
                pilot_high,
                bins,
                start,
                where,
                needed,
                rank_bin,
                work,
                out[k, r],
            )
    return whole


@numba.njit(nogil=True, inline="always")
def _scratch(n: int, n_ranks: int, bins: int) -> tuple[np.ndarray, ...]:
    """Per-call work arrays of :func:`_row_statistics` (``needed`` all false between rows)."""
    start = np.empty(bins + 3, np.int64)
    where = np.empty(n, np.int32)
    needed = np.zeros(bins + 2, np.bool_)
    rank_bin = np.empty(n_ranks, np.int64)
    work = np.empty(n)
    return start, where, needed, rank_bin, work


@numba.njit(nogil=True, inline="always")
def _row_statistics(
    row: np.ndarray,
    ranks: np.ndarray,
    stride: int,
    pilot_low: int,
    pilot_high: int,
    bins: int,
    start: np.ndarray,
    where: np.ndarray,
    needed: np.ndarray,
    rank_bin: np.ndarray,
    work: np.ndarray,
    out: np.ndarray,
) -> int:
    """One row of :func:`order_statistics` into ``out`` ``[len(ranks)]``: 1 when sorted whole, else 0."""
    n = row.size
    n_ranks = ranks.size
    top = np.float64(bins + 1)
    m = 0
    for j in range(0, n, stride):
        work[m] = row[j]
        m += 1
    if m <= SMALL_SORT:
        _sort_small(work, m)
    else:
        work[:m].sort()
    if m == n:  # the pilot is the whole row (fewer than two pilots' paths): already sorted
        for u in range(n_ranks):
            out[u] = work[ranks[u]]
        return 0
    a, b = work[pilot_low], work[pilot_high]
    ok = b > a and b - a < np.inf
    if ok:
        low = a - 0.25 * (b - a)
        inv = bins / (1.5 * (b - a))
        nan = False
        for j in range(n):
            t = (row[j] - low) * inv + 1.0  # bins 1..bins; an infinite value lands beyond them
            nan |= t != t
            t = t if t > 0.0 else 0.0  # 0: below the bracket (and NaN: the row is then sorted whole)
            where[j] = np.int32(t if t < top else top)  # bins + 1: above it
        ok = not nan
    if ok:
        start[:] = 0
        for j in range(n):
            start[where[j] + 1] += 1
        u = 0
        for bin_ in range(bins + 2):  # rank u lies in the bin whose cumulative count first exceeds it
            start[bin_ + 1] += start[bin_]
            while u < n_ranks and ranks[u] < start[bin_ + 1]:
                rank_bin[u] = bin_
                u += 1
        for u in range(n_ranks):
            if rank_bin[u] == 0 or rank_bin[u] == bins + 1:
                ok = False
    if not ok:
        work[:n] = row
        work[:n].sort()
        for u in range(n_ranks):
            out[u] = work[ranks[u]]
        return 1
    for u in range(n_ranks):
        needed[rank_bin[u]] = True
    count = 0
    for j in range(n):
        if needed[where[j]]:
            work[count] = row[j]
            count += 1
    if count <= SMALL_SORT:
        _sort_small(work, count)
    else:
        work[:count].sort()
    offset, previous = 0, -1
    for u in range(n_ranks):  # ranks ascend, so their bins do: the gathered values bin by bin
        bin_ = rank_bin[u]
        if bin_ != previous:
            if previous >= 0:
                offset += start[previous + 1] - start[previous]
            previous = bin_
        out[u] = work[offset + ranks[u] - start[bin_]]
    for u in range(n_ranks):
        needed[rank_bin[u]] = False
    return 0
