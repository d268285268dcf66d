"""Fixed-shape batches: the plan of one engine call, its context length and its batch arrays.

Every forward of a call has the shape ``[tasks_per_batch * variates, C]``: ``C`` is the longest observed
context, capped at the model's maximum context and rounded up to a multiple of the patch size; shorter
contexts are left-padded with NaN (Chronos-2 treats NaN as missing) and the last batch is topped up with
all-NaN dummy tasks, dropped afterwards. A task's variates always share one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plan:
    """The shapes of one :meth:`chronobt.engine.core.Chronos2Engine.predict` call.

    Attributes
    ----------
    n_tasks, n_variates, horizon : the call's ``[tasks, variates, time]`` contexts and steps to forecast.
    context_length : ``C``, time steps of every batch row (multiple of the patch size).
    output_patches : ``ceil(horizon / output_patch_size)``.
    series_per_forward : the batch size in series (rows) the call was sized for.
    tasks_per_batch : tasks per forward (``series_per_forward // n_variates``, at least 1).
    workers : CPU batches forecast side by side (1: in turn).
    long_horizon : ``output_patches`` exceeds the model's ``max_output_patches`` (chronos' unrolling).
    compile : whether the call runs compiled; ``compile_reason``: why (one line).
    tasks_per_chunk : tasks each encoder block runs at once within a forward (CPU, when fewer than
        ``tasks_per_batch``: :mod:`chronobt.engine.views.task_chunks`); ``None``: the whole batch.
    native : the call runs the native forward (:mod:`chronobt.engine.native`; its check passed for
        these output patches and variates), else chronos' model with its checked views.
    """

    n_tasks: int
    n_variates: int
    horizon: int
    context_length: int
    output_patches: int
    series_per_forward: int
    tasks_per_batch: int
    workers: int
    long_horizon: bool
    compile: bool = False
    compile_reason: str = ""
    tasks_per_chunk: int | None = None
    native: bool = False

    @property
    def n_batches(self) -> int:
        return math.ceil(self.n_tasks / self.tasks_per_batch)


@dataclass
class RunTotals:
    """What every call of one engine did (the engine's record describes the whole run)."""

    calls: int = 0
    tasks: int = 0
    batches: int = 0
    tasks_per_batch: int | None = None  # the last batch's
    tasks_per_batch_min: int | None = None
    workers_max: int = 1
    long_horizon_calls: int = 0
    oom_retries: int = 0
    forward_seconds: float = 0.0

    def add_batch(self, tasks: int, tasks_per_batch: int) -> None:
        self.tasks += tasks
        self.batches += 1
        self.tasks_per_batch = tasks_per_batch
        self.tasks_per_batch_min = min(self.tasks_per_batch_min or tasks_per_batch, tasks_per_batch)


def context_length(contexts: np.ndarray, *, patch_size: int, max_context: int) -> int:
    """``C`` for ``contexts`` ``[tasks, variates, time]``: longest observed context, capped, rounded up."""
    observed = ~np.isnan(contexts).all(axis=1)  # [tasks, time]
    any_obs = observed.any(axis=1)
    first = np.where(any_obs, observed.argmax(axis=1), contexts.shape[2])
    needed = int(contexts.shape[2] - first.min()) if any_obs.any() else 1
    return min(math.ceil(max(needed, 1) / patch_size) * patch_size, max_context)


def batch_array(contexts: np.ndarray, start: int, stop: int, tasks_per_batch: int, length: int) -> np.ndarray:
    """Tasks ``start:stop`` of ``contexts`` as a float32 ``[tasks_per_batch * variates, length]`` array.

    Contexts are cut to their last ``length`` steps or left-padded with NaN; missing tasks (the last
    batch) are all-NaN dummies, which the model turns into finite, discarded forecasts.
    """
    _, n_variates, n_time = contexts.shape
    batch = np.full((tasks_per_batch, n_variates, length), np.nan, dtype=np.float32)
    take = min(length, n_time)
    batch[: stop - start, :, length - take :] = contexts[start:stop, :, n_time - take :]
    return batch.reshape(tasks_per_batch * n_variates, length)


def future_array(future: np.ndarray, start: int, stop: int, tasks_per_batch: int, width: int) -> np.ndarray:
    """Known future values of tasks ``start:stop`` as a float32 ``[tasks_per_batch * variates, width]`` array.

    ``future`` is ``[tasks, variates, horizon]`` (NaN = unknown: targets, past-only covariates); steps past
    the horizon up to ``width`` (whole output patches) and dummy tasks are NaN, as chronos pads them.
    """
    _, n_variates, horizon = future.shape
    batch = np.full((tasks_per_batch, n_variates, width), np.nan, dtype=np.float32)
    take = min(width, horizon)
    batch[: stop - start, :, :take] = future[start:stop, :, :take]
    return batch.reshape(tasks_per_batch * n_variates, width)
