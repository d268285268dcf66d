"""How the engine sizes its CPU work: series per forward, tasks per block chunk, batches side by side.

Pure functions of the model's dimensions, the context and the thread count, so the rules can be read and
tested without a model. The measurements behind the constants are in ``benchmarks/RESULTS.md`` (sections
on the CPU batch and on CPU batches side by side; ``benchmarks/cpu_parallel_batches.py``).
"""

from __future__ import annotations

import math

#: Series x tokens x d_model of one CPU forward that keeps the activations in cache: the measured best
#: batch of a 7M-parameter Chronos-2 (d_model 256) at context 2048 and a 24-step horizon, 16 series of
#: 128 context patches + [REG] + 2 output patches. Larger activations fall out of cache; smaller ones are
#: overhead-bound.
CPU_ACTIVATION_BUDGET = 16 * 131 * 256
#: Fewest and most series per CPU forward (before the cap at the model's d_ff with dense group attention).
CPU_BATCH_RANGE = (4, 256)
#: Models at least this wide run their CPU batches in turn: their matrix products already use every core.
CPU_PARALLEL_MAX_D_MODEL = 256


def tokens_per_series(*, context_length: int, patch_size: int, n_output_patches: int) -> int:
    """Tokens one series puts through the encoder: context patches, the [REG] token, output patches."""
    return math.ceil(context_length / patch_size) + 1 + n_output_patches


def cpu_series_per_forward(
    *,
    context_length: int,
    patch_size: int,
    n_output_patches: int,
    d_model: int,
    d_ff: int,
    dense_groups: bool = True,
    workers: int = 1,
) -> int:
    """Default series per forward on a CPU.

    The series that keep ``series x tokens x d_model`` near :data:`CPU_ACTIVATION_BUDGET` divided among
    the ``workers`` batches that run side by side (they share the cache), clipped to
    :data:`CPU_BATCH_RANGE`. With dense group attention (chronos' own, across the whole batch) never above
    ``d_ff``: its cost per series grows with the series per forward and passes the feed-forward layers'
    beyond ``d_ff``. Block-diagonal group attention (:mod:`chronobt.engine.views.group_attention`) costs the
    same per
    series at any batch, so there is no cap.

    Parameters
    ----------
    context_length : time steps per series in the batch (the engine's fixed ``C``).
    patch_size : the model's input patch size.
    n_output_patches : output patches forecast per series (``ceil(horizon / output_patch_size)``).
    d_model, d_ff : the model's hidden and feed-forward widths.
    dense_groups : whether group attention runs dense across the batch (``False``: per task).
    workers : batches run side by side (:func:`cpu_workers`; the bundled model's 200-window main command
        ran its forward in 0.54 s at 32 series per batch against 0.75 s at the whole budget's 119,
        ``benchmarks/RESULTS.md``).

    Returns
    -------
    int
        Series per forward, at least ``min(CPU_BATCH_RANGE[0], d_ff)`` (``CPU_BATCH_RANGE[0]`` per task).
    """
    tokens = tokens_per_series(
        context_length=context_length, patch_size=patch_size, n_output_patches=n_output_patches
    )
    series = CPU_ACTIVATION_BUDGET // (tokens * d_model * max(1, workers))
    low, high = CPU_BATCH_RANGE
    cap = min(high, d_ff) if dense_groups else high
    return int(min(cap, max(low, series)))


def cpu_workers(*, n_batches: int, d_model: int, threads: int, free_cores: float | None = None) -> int:
    """Batches to forecast at once on a CPU, one thread each (1: in turn, every thread on each batch).

    A small model's forward is a chain of small operations that intra-op threads share badly; whole
    batches on separate threads keep every core busy. A model at least :data:`CPU_PARALLEL_MAX_D_MODEL`
    wide already uses every core in its matrix products and runs its batches in turn on an idle
    machine. When other processes hold some of the cores (``free_cores < threads``) every model runs its
    batches side by side: intra-op threads wait for each other at every operation, and a thread the
    scheduler pauses stalls the others (on a loaded 2-core machine one batch on 2 threads took 3-6x as
    long as two batches on one thread each, ``benchmarks/RESULTS.md``).

    Parameters
    ----------
    n_batches : batches the call needs.
    d_model : the model's hidden width.
    threads : intra-op threads available (``torch.get_num_threads()``).
    free_cores : cores not busy with other processes
        (:attr:`chronobt.engine.config.EngineConfig.cpu_free_cores`); ``None``: unknown, sized as idle.
    """
    busy = free_cores is not None and free_cores < threads
    if n_batches < 2 or (d_model >= CPU_PARALLEL_MAX_D_MODEL and not busy):
        return 1
    return max(1, min(threads, n_batches))


def cpu_tasks_per_chunk(*, series: int, n_variates: int, tasks_per_batch: int) -> int | None:
    """Tasks an encoder block runs at once within a CPU forward of ``tasks_per_batch`` tasks.

    ``series`` is :func:`cpu_series_per_forward` without the dense-attention cap (the series whose
    activations stay in cache), in whole tasks (at least one); ``None`` when the batch is no larger.
    Only with block-diagonal group attention (:mod:`chronobt.engine.views.task_chunks`).
    """
    per_chunk = max(1, series // max(n_variates, 1))
    return per_chunk if per_chunk < tasks_per_batch else None
