"""Running one planned call's batches: in turn (staged ahead on CUDA) or, on a CPU, side by side.

The state of one :meth:`chronobt.engine.core.Chronos2Engine.predict` call lives in a :class:`Call` passed
through every step (its contexts, plan, known future, output array, progress callback and batch stager);
what outlives the call (the model's forward, the compile state, the run totals) lives in the
:class:`BatchRunner` the engine owns. After a call the engine keeps only its :class:`CallReport`.

* every batch is one fixed-shape forward ``[tasks_per_batch * variates, C]``
  (:func:`chronobt.engine.batching.batch_array`); long horizons run chronos' unrolling
  (:mod:`chronobt.engine.unrolling`);
* a compiled forward that raises, or returns non-finite values from finite inputs, falls back to eager
  for the rest of the engine's life and the batch runs again;
* an out-of-memory error halves ``tasks_per_batch`` and retries (a :class:`ModelError` at one task);
* on a CPU, eager calls of small models run ``plan.workers`` batches on one thread each; an out-of-memory
  error there runs the call in turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chronobt.engine.batching import Plan, RunTotals, batch_array, future_array
from chronobt.engine.compilation import CompileState
from chronobt.errors import ModelError, first_line

if TYPE_CHECKING:
    import torch

    from chronobt.engine.staging import Stager

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
#: ``forward(context [rows, C], group_ids [rows], num_output_patches[, future [rows, width]])`` ->
#: quantile forecasts ``[rows, Q, >= horizon]`` on the device.
Forward = Callable[..., "torch.Tensor"]
#: ``unroll(context, group_ids, horizon, future)``: chronos' long-horizon unrolling.
Unroll = Callable[["torch.Tensor", "torch.Tensor", int, "torch.Tensor | None"], "torch.Tensor"]


@dataclass
class Call:
    """One predict call.

    Attributes
    ----------
    contexts : ``[tasks, variates, time]`` float.
    plan : the call's shapes.
    out : float32 ``[tasks, variates, quantiles, horizon]``, filled batch by batch.
    future : ``[tasks, variates, horizon]`` known future values, ``None``: nothing known.
    progress : called as ``progress(done_tasks, total_tasks)`` after each batch.
    stager : the batches staged ahead (:mod:`chronobt.engine.staging`), ``None``: not staged.
    """

    contexts: np.ndarray
    plan: Plan
    out: np.ndarray
    future: np.ndarray | None = None
    progress: Progress | None = None
    stager: Stager | None = None

    def report(self) -> CallReport:
        stager = self.stager
        staged = None if stager is None else (stager.hits, stager.misses, stager.dropped)
        return CallReport(series_per_forward=self.plan.series_per_forward, staged=staged)


@dataclass(frozen=True)
class CallReport:
    """What one finished call did.

    Attributes
    ----------
    series_per_forward : the batch size in series the call ran at.
    staged : ``(hits, misses, dropped)`` of its staged batches (prepared ahead and used, prepared on
        demand, prepared ahead and dropped); ``None`` when the call was not staged.
    """

    series_per_forward: int
    staged: tuple[int, int, int] | None = None


class BatchRunner:
    """Runs the batches of one :class:`Call` after another on ``device``.

    Parameters
    ----------
    device : where the forward runs.
    forward : the eager forward (:data:`Forward`); compiled through ``compile_state`` when active.
    compile_state : the engine's :class:`CompileState`.
    totals : the engine's :class:`RunTotals`, updated per batch.
    n_quantiles, output_patch_size : of the model.
    unroll : chronos' long-horizon unrolling (:data:`Unroll`).
    stage_batches : prepare and upload the next batch while one computes.
    """

    def __init__(
        self,
        *,
        device: torch.device,
        forward: Forward,
        compile_state: CompileState,
        totals: RunTotals,
        n_quantiles: int,
        output_patch_size: int,
        unroll: Unroll,
        stage_batches: bool,
    ) -> None:
        self.device = device
        self.forward = forward
        self.compile = compile_state
        self.totals = totals
        self.n_quantiles = n_quantiles
        self.output_patch_size = output_patch_size
        self.unroll = unroll
        self.stage_batches = stage_batches

    def run(self, call: Call) -> None:
        """Forecast every task of ``call`` into ``call.out``."""
        import torch

        if call.plan.workers > 1:
            try:
                self.run_in_parallel(call)
                return
            except torch.OutOfMemoryError:  # batch by batch below, where the batch is halved and retried
                logger.info(
                    "out of memory with %d parallel CPU batches; forecasting in turn", call.plan.workers
                )
        self.run_in_turn(call)

    def run_in_turn(self, call: Call) -> None:
        """Every batch in turn, staged one ahead when the runner stages (contexts only, not long horizons)."""
        import torch

        from chronobt.engine.staging import Stager, released_after

        plan, contexts = call.plan, call.contexts
        has_inf = np.isinf(contexts).any(axis=(1, 2))  # [tasks]
        tasks_per_batch, start = plan.tasks_per_batch, 0
        if self.stage_batches and not plan.long_horizon and call.future is None:

            def make_batch(first: int, per_batch: int) -> np.ndarray:
                last = min(first + per_batch, plan.n_tasks)
                return batch_array(contexts, first, last, per_batch, plan.context_length)

            call.stager = Stager(self.device, make_batch, cuda=self.device.type == "cuda")
        with torch.inference_mode(), released_after(call.stager):
            while start < plan.n_tasks:
                stop = min(start + tasks_per_batch, plan.n_tasks)
                try:
                    if call.stager is None:
                        preds = self.forecast_tasks(call, start, stop, tasks_per_batch)
                    else:
                        preds = self.forecast_staged(call, start, stop, tasks_per_batch)
                except torch.OutOfMemoryError as exc:
                    tasks_per_batch = self.after_oom(exc, tasks_per_batch)
                    continue
                if self.compile.active and _nonfinite_from_finite(preds, has_inf[start:stop]):
                    self.compile.fall_back("compiled forward returned non-finite values from finite inputs")
                    continue  # same batch again, eager
                if self.compile.active and not plan.long_horizon:
                    self.compile.used = True
                call.out[start:stop] = preds
                self.totals.add_batch(stop - start, tasks_per_batch)
                start = stop
                if call.progress is not None:
                    call.progress(start, plan.n_tasks)

    def run_in_parallel(self, call: Call) -> None:
        """Eager CPU forecasts of every batch, ``plan.workers`` batches at a time on one thread each."""
        import torch

        plan = call.plan
        n_tasks, tasks_per_batch = plan.n_tasks, plan.tasks_per_batch

        def forecast(start: int) -> int:
            torch.set_num_threads(1)  # this worker's batch runs on its own core
            stop = min(start + tasks_per_batch, n_tasks)
            with torch.inference_mode():
                call.out[start:stop] = self.forecast_tasks(call, start, stop, tasks_per_batch)
            return stop

        threads = torch.get_num_threads()
        pool = ThreadPoolExecutor(max_workers=plan.workers, thread_name_prefix="chronobt-cpu")
        stops: list[int] = []
        try:
            futures = [pool.submit(forecast, s) for s in range(0, n_tasks, tasks_per_batch)]
            for future in futures:  # in batch order, so progress reads as in a sequential run
                stops.append(future.result())
                if call.progress is not None:
                    call.progress(stops[-1], n_tasks)
        finally:  # on an error or Ctrl-C the queued batches are dropped, only running ones finish
            pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(threads)
        for start, stop in zip([0, *stops[:-1]], stops, strict=True):  # counted once all succeeded
            self.totals.add_batch(stop - start, tasks_per_batch)
        self.totals.workers_max = max(self.totals.workers_max, plan.workers)

    def forecast_tasks(self, call: Call, start: int, stop: int, tasks_per_batch: int) -> np.ndarray:
        """Tasks ``start:stop`` as one fixed-shape batch -> float32 ``[stop - start, V, Q, horizon]``."""
        import torch

        plan = call.plan
        batch = batch_array(call.contexts, start, stop, tasks_per_batch, plan.context_length)  # [tpb*V, C]
        future = None
        if call.future is not None:
            width = plan.horizon if plan.long_horizon else plan.output_patches * self.output_patch_size
            future = self.to_device(future_array(call.future, start, stop, tasks_per_batch, width))
        preds = self.run_batch(self.to_device(batch), plan, tasks_per_batch, future)
        host = preds[..., : plan.horizon].to(device="cpu", dtype=torch.float32).numpy()
        shape = (tasks_per_batch, plan.n_variates, self.n_quantiles, plan.horizon)
        return host.reshape(shape)[: stop - start]

    def forecast_staged(self, call: Call, start: int, stop: int, tasks_per_batch: int) -> np.ndarray:
        """As :meth:`forecast_tasks`, with the next batch prepared while this one computes."""
        plan, stager = call.plan, call.stager
        assert stager is not None  # only called for a staged call
        context = stager.take(start, tasks_per_batch)
        preds = self.run_batch(context, plan, tasks_per_batch)  # queued on the device, not waited for
        if stop < plan.n_tasks:
            stager.stage(stop, tasks_per_batch)
        host = stager.download(preds[..., : plan.horizon])
        shape = (tasks_per_batch, plan.n_variates, self.n_quantiles, plan.horizon)
        return host.reshape(shape)[: stop - start]

    def run_batch(
        self, context: torch.Tensor, plan: Plan, tasks_per_batch: int, future: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Forward one fixed-shape batch ``[tpb*V, C]`` (known future ``[tpb*V, width]`` or ``None``) on the
        device -> ``[tpb*V, Q, >= horizon]`` there."""
        import torch

        group_ids = torch.arange(tasks_per_batch, device=self.device).repeat_interleave(plan.n_variates)
        n_patches = plan.output_patches
        known = () if future is None else (future,)
        if plan.long_horizon:
            return self.unroll(context, group_ids, plan.horizon, future)
        if not self.compile.active:
            return self.forward(context, group_ids, n_patches, *known)
        try:
            return self.compile.forward(self.forward, context, group_ids, n_patches, *known)
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:
            self.compile.fall_back(f"{type(exc).__name__}: {first_line(exc)}")
            return self.forward(context, group_ids, n_patches, *known)

    def to_device(self, array: np.ndarray) -> torch.Tensor:
        import torch

        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def after_oom(self, exc: BaseException, tasks_per_batch: int) -> int:
        """Half of ``tasks_per_batch`` after an out-of-memory error; a :class:`ModelError` at one task."""
        import torch

        if tasks_per_batch <= 1:
            raise ModelError(
                f"out of memory on {self.device} with one task per forward ({first_line(exc)}); "
                "use a smaller model, --dtype bfloat16 or --device cpu"
            ) from exc
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.totals.oom_retries += 1
        halved = tasks_per_batch // 2
        logger.info(
            "out of memory on %s at %d tasks per forward; retrying at %d",
            self.device,
            tasks_per_batch,
            halved,
        )
        return halved


def _nonfinite_from_finite(preds: np.ndarray, has_inf: np.ndarray) -> bool:
    bad = ~np.isfinite(preds).all(axis=(1, 2, 3))  # [tasks]
    return bool((bad & ~has_inf).any())
