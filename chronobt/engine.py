"""The Chronos-2 engine: one object owning the model, its device/dtype and its compile state.

Inference runs the model directly at fixed shapes rather than through ``predict_df``
(:mod:`chronobt.batching`): every forward of a call is ``[tasks_per_batch * variates, C]``, NaN-padded;
``group_ids`` put each task's variates in one group, so tasks never see each other (no cross-learning).
:meth:`Chronos2Engine.plan` fixes the shapes of a call (a :class:`~chronobt.batching.Plan`; CPU sizes
from :mod:`chronobt.cpu_sizing`), :meth:`Chronos2Engine.predict` plans and runs.

* ``num_output_patches = ceil(horizon / patch)``. Above the model's ``max_output_patches`` the engine uses
  chronos' own autoregressive unrolling (the private ``Chronos2Pipeline._predict_batch``), eager;
* the forward runs through :func:`chronobt.lastblock.output_only_view` (the last encoder block computes
  only the forecast tokens) once :func:`chronobt.lastblock.check_output_only` found it equal to the full
  forward for this model and number of output patches; otherwise the full forward runs;
* compile (:mod:`chronobt.compilation`): ``torch.compile(dynamic=False)``, one compilation per shape;
  later calls reuse the compiled shape, and any failure means eager for the rest of the engine's life;
* a CUDA out-of-memory error halves ``tasks_per_batch`` and retries;
* dtype ``bfloat16`` casts the weights (CUDA only; float32 with one warning elsewhere).

The engine reads no environment variable: the command line maps ``CHRONOBT_*`` and the legacy compile
switches onto :class:`EngineConfig` (``chronobt.cli.engine_options``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from chronobt import cpu_sizing
from chronobt.batching import Plan, RunTotals, batch_array, context_length, future_array
from chronobt.compilation import CompileState
from chronobt.engine_config import DEFAULT_BATCH_SIZE, EngineConfig, resolve_device, resolve_dtype
from chronobt.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import torch

    from chronobt.lastblock import OutputOnlyCheck

__all__ = ["Chronos2Engine", "EngineConfig", "Plan", "Progress", "load_pipeline", "resolve_compile"]

logger = logging.getLogger(__name__)

#: chronos' default quantiles for long-horizon unrolling.
_UNROLLED_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

Progress = Callable[[int, int], None]


def resolve_compile(config: EngineConfig, device: torch.device) -> CompileState:
    """The compile state of ``config`` on ``device``: ``auto`` is on for CUDA only."""
    return CompileState.resolve(config, device)


def load_pipeline(path: Any) -> Any:
    """Load a ``Chronos2Pipeline`` from a local folder on the CPU; :class:`ModelError` on failure."""
    from chronos import Chronos2Pipeline

    try:
        return Chronos2Pipeline.from_pretrained(str(path))
    except Exception as exc:
        raise ModelError(
            f"cannot load a Chronos-2 model from {path} ({type(exc).__name__}: {exc}); "
            "pass another --model (auto, bundled, a hub id or a folder saved with save_pretrained)"
        ) from exc


class Chronos2Engine:
    """Batched, fixed-shape Chronos-2 inference with optional torch.compile and eager fallback.

    Parameters
    ----------
    config : what to load and how to run it.
    pipeline : an already loaded ``Chronos2Pipeline`` (tests); skips model resolution.
    """

    def __init__(self, config: EngineConfig = EngineConfig(), *, pipeline: Any = None) -> None:
        import torch

        from chronobt.lastblock import supports_output_only

        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        if pipeline is None:
            from chronobt.models import resolve_model

            resolved = resolve_model(config.model)
            self.model_info: dict[str, Any] = resolved.info()
            pipeline = load_pipeline(resolved.path)
        else:
            self.model_info = {
                "id": "injected",
                "source": "local",
                "path": None,
                "checksum": None,
                "revision": None,
            }
        self.pipeline = pipeline
        try:
            self.model = pipeline.model.to(device=self.device, dtype=self.dtype).eval()
        except torch.OutOfMemoryError as exc:
            raise ModelError(f"the model does not fit on {self.device}: {exc}; use --device cpu") from exc
        chronos_config = self.model.chronos_config
        self.quantile_levels: tuple[float, ...] = tuple(float(q) for q in chronos_config.quantiles)
        self.median_index: int = int(np.argmin(np.abs(np.asarray(self.quantile_levels) - 0.5)))
        self.patch_size: int = int(chronos_config.input_patch_size)
        self.output_patch_size: int = int(chronos_config.output_patch_size)
        self.max_context: int = int(chronos_config.context_length)
        self.max_output_patches: int = int(chronos_config.max_output_patches)
        self.batch_size: int = config.batch_size or DEFAULT_BATCH_SIZE.get(self.device.type, 16)
        self._compile = CompileState.resolve(config, self.device)
        self._eager_forward: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] = self._model_forward
        self._totals = RunTotals()
        #: whether the last block has the layout the output-only view relies on (checked by behaviour
        #: too, once per number of output patches: ``_checks``; views that passed: ``_views``)
        self._output_only_layout = supports_output_only(self.model)
        self._checks: dict[int, OutputOnlyCheck] = {}
        self._views: dict[int, Any] = {}
        #: the known future values of the running predict call (``None``: none)
        self._future: np.ndarray | None = None

    # ------------------------------------------------------------------ public API

    def plan(self, contexts: np.ndarray, horizon: int) -> Plan:
        """The shapes :meth:`predict` would use for ``contexts`` and ``horizon`` (changes nothing).

        Parameters
        ----------
        contexts : ``[tasks, variates, time]`` float; left NaN padding allowed (NaN = missing).
        horizon : steps to forecast after each context.

        Raises
        ------
        ConfigError
            When ``contexts`` is not a numeric 3-d array or ``horizon`` not a positive integer.
        """
        contexts = np.asarray(contexts)
        if contexts.ndim != 3 or not np.issubdtype(contexts.dtype, np.number):
            raise ConfigError(
                f"contexts must be a numeric [tasks, variates, time] array, got shape {contexts.shape} "
                f"dtype {contexts.dtype}"
            )
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise ConfigError(f"horizon {horizon!r} must be a positive integer")
        horizon = int(horizon)
        n_tasks, n_variates, _ = contexts.shape
        length = context_length(contexts, patch_size=self.patch_size, max_context=self.max_context)
        shape = self._compile.shape
        if self._compile.active and shape is not None:
            length = max(length, shape[1])  # reuse a longer compiled length instead of compiling again
        n_patches = math.ceil(horizon / self.output_patch_size)
        series = self.batch_size
        if self.config.batch_size is None and self.device.type == "cpu":
            series = cpu_sizing.cpu_series_per_forward(
                context_length=length,
                patch_size=self.patch_size,
                n_output_patches=n_patches,
                d_model=int(self.model.config.d_model),
                d_ff=int(self.model.config.d_ff),
            )
        tasks_per_batch = max(1, series // max(n_variates, 1))
        if not self._compile.active:
            tasks_per_batch = min(tasks_per_batch, max(n_tasks, 1))  # eager: no dummy tasks below one batch
        elif shape is not None and n_variates and shape[0] % n_variates == 0:
            tasks_per_batch = shape[0] // n_variates  # keep the compiled shape (after OOM halving)
        workers = 1
        if self.device.type == "cpu" and not self._compile.active:
            import torch

            workers = cpu_sizing.cpu_workers(
                n_batches=math.ceil(n_tasks / tasks_per_batch),
                d_model=int(self.model.config.d_model),
                threads=torch.get_num_threads(),
            )
        return Plan(
            n_tasks=n_tasks,
            n_variates=n_variates,
            horizon=horizon,
            context_length=length,
            output_patches=n_patches,
            series_per_forward=series,
            tasks_per_batch=tasks_per_batch,
            workers=workers,
            long_horizon=n_patches > self.max_output_patches,
        )

    def predict(
        self,
        contexts: np.ndarray,
        horizon: int,
        *,
        progress: Progress | None = None,
        future: np.ndarray | None = None,
    ) -> np.ndarray:
        """Quantile forecasts for every task.

        Parameters
        ----------
        contexts : ``[tasks, variates, time]`` float; left NaN padding allowed (NaN = missing).
        horizon : steps to forecast after each context.
        progress : called as ``progress(done_tasks, total_tasks)`` after each batch.
        future : ``[tasks, variates, horizon]`` known future values (NaN = unknown: targets and past-only
            covariates), passed to the model as ``future_covariates`` as chronos' own predict does;
            ``None``: nothing known (the same forecast as all-NaN).

        Returns
        -------
        np.ndarray
            float32 ``[tasks, variates, quantiles, horizon]``, quantiles in :attr:`quantile_levels` order.
        """
        contexts = np.asarray(contexts)
        plan = self.plan(contexts, horizon)
        if future is not None:
            future = np.asarray(future, dtype=np.float32)
            expected = (plan.n_tasks, plan.n_variates, plan.horizon)
            if future.shape != expected:
                raise ConfigError(
                    f"future must be a [tasks, variates, horizon] {expected} array, got shape {future.shape}"
                )
            if np.isnan(future).all():
                future = None  # nothing known: the model's own default (same forecast, same compiled graph)
        self._future = future
        shape = (plan.n_tasks, plan.n_variates, len(self.quantile_levels), plan.horizon)
        out = np.full(shape, np.nan, dtype=np.float32)
        try:
            if plan.n_tasks and plan.n_variates:
                self._run(contexts, plan, out, progress)
        finally:
            self._future = None
        return out

    def record(self) -> dict[str, Any]:
        """What ran over the engine's life (every call), for manifests and summaries.

        ``batch_size``: series per forward of the last call; ``tasks_per_batch``: the last batch's;
        ``long_horizon_unrolling``: any call unrolled; ``compile``: :meth:`CompileState.record`;
        ``output_only_last_block``: the layout is supported and no check failed; ``output_only_check``:
        the first failed check, else the latest (``None`` before any); ``cpu_workers``: most CPU batches
        side by side; ``forward_seconds``: wall time running batches.
        """
        t = self._totals
        failed = [c for c in self._checks.values() if not c.passed]
        latest = failed[0] if failed else (list(self._checks.values())[-1] if self._checks else None)
        return {
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "batch_size": self.batch_size,
            "tasks_per_batch": t.tasks_per_batch,
            "tasks_per_batch_min": t.tasks_per_batch_min,
            "long_horizon_unrolling": t.long_horizon_calls > 0,
            "compile": self._compile.record(),
            "oom_retries": t.oom_retries,
            "output_only_last_block": self._output_only_layout and not failed,
            "output_only_check": latest.record() if latest is not None else None,
            "calls": t.calls,
            "tasks": t.tasks,
            "batches": t.batches,
            "cpu_workers": t.workers_max,
            "long_horizon_calls": t.long_horizon_calls,
            "forward_seconds": round(t.forward_seconds, 3),
        }

    # ------------------------------------------------------------------ running a plan

    def _run(self, contexts: np.ndarray, plan: Plan, out: np.ndarray, progress: Progress | None) -> None:
        import torch

        totals = self._totals
        totals.calls += 1
        totals.long_horizon_calls += plan.long_horizon
        self.batch_size = plan.series_per_forward
        if not plan.long_horizon:
            self._prepare_view(plan)
        started = time.perf_counter()
        try:
            if plan.workers > 1:
                try:
                    self._run_in_parallel(contexts, out, plan, progress)
                    return
                except torch.OutOfMemoryError:  # batch by batch below, where the batch is halved and retried
                    logger.info(
                        "out of memory with %d parallel CPU batches; forecasting in turn", plan.workers
                    )
            self._run_in_turn(contexts, out, plan, progress)
        finally:
            totals.forward_seconds += time.perf_counter() - started

    def _run_in_turn(
        self, contexts: np.ndarray, out: np.ndarray, plan: Plan, progress: Progress | None
    ) -> None:
        import torch

        has_inf = np.isinf(contexts).any(axis=(1, 2))  # [tasks]
        tasks_per_batch, start = plan.tasks_per_batch, 0
        with torch.inference_mode():
            while start < plan.n_tasks:
                stop = min(start + tasks_per_batch, plan.n_tasks)
                try:
                    preds = self._forecast_tasks(contexts, start, stop, tasks_per_batch, plan)
                except torch.OutOfMemoryError as exc:
                    tasks_per_batch = self._after_oom(exc, tasks_per_batch)
                    continue
                if self._compile.active and self._nonfinite_from_finite(preds, has_inf[start:stop]):
                    self._compile.fall_back("compiled forward returned non-finite values from finite inputs")
                    continue  # same batch again, eager
                if self._compile.active and not plan.long_horizon:
                    self._compile.used = True
                out[start:stop] = preds
                self._totals.add_batch(stop - start, tasks_per_batch)
                start = stop
                if progress is not None:
                    progress(start, plan.n_tasks)

    def _run_in_parallel(
        self, contexts: np.ndarray, out: np.ndarray, plan: Plan, progress: Progress | None
    ) -> None:
        """Eager CPU forecasts of every batch, ``plan.workers`` batches at a time on one thread each."""
        import torch

        n_tasks, tasks_per_batch = plan.n_tasks, plan.tasks_per_batch

        def forecast(start: int) -> int:
            torch.set_num_threads(1)  # this worker's batch runs on its own core
            stop = min(start + tasks_per_batch, n_tasks)
            with torch.inference_mode():
                out[start:stop] = self._forecast_tasks(contexts, start, stop, tasks_per_batch, plan)
            return stop

        threads = torch.get_num_threads()
        pool = ThreadPoolExecutor(max_workers=plan.workers, thread_name_prefix="chronobt-cpu")
        stops: list[int] = []
        try:
            futures = [pool.submit(forecast, s) for s in range(0, n_tasks, tasks_per_batch)]
            for future in futures:  # in batch order, so progress reads as in a sequential run
                stops.append(future.result())
                if progress is not None:
                    progress(stops[-1], n_tasks)
        finally:  # on an error or Ctrl-C the queued batches are dropped, only running ones finish
            pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(threads)
        for start, stop in zip([0, *stops[:-1]], stops, strict=True):  # counted once all succeeded
            self._totals.add_batch(stop - start, tasks_per_batch)
        self._totals.workers_max = max(self._totals.workers_max, plan.workers)

    def _forecast_tasks(
        self, contexts: np.ndarray, start: int, stop: int, tasks_per_batch: int, plan: Plan
    ) -> np.ndarray:
        """Tasks ``start:stop`` as one fixed-shape batch -> float32 ``[stop - start, V, Q, horizon]``."""
        batch = batch_array(contexts, start, stop, tasks_per_batch, plan.context_length)  # [tpb*V, C]
        future = None
        if self._future is not None:
            width = plan.horizon if plan.long_horizon else plan.output_patches * self.output_patch_size
            future = future_array(self._future, start, stop, tasks_per_batch, width)  # [tpb*V, width]
        preds = self._run_batch(batch, plan, tasks_per_batch, future)
        shape = (tasks_per_batch, plan.n_variates, len(self.quantile_levels), plan.horizon)
        return preds.reshape(shape)[: stop - start]

    def _prepare_view(self, plan: Plan) -> None:
        """Check the output-only view for ``plan.output_patches`` once; keep it only if it passed."""
        from chronobt.lastblock import prepare_view

        n = plan.output_patches
        if n not in self._checks:
            view, self._checks[n] = prepare_view(
                self.model,
                n,
                layout_ok=self._output_only_layout,
                n_variates=plan.n_variates,
                context_length=plan.context_length,
            )
            if view is not None:
                self._views[n] = view

    # ------------------------------------------------------------------ internals

    def _model_forward(
        self,
        context: torch.Tensor,
        group_ids: torch.Tensor,
        num_output_patches: int,
        future_covariates: torch.Tensor | None = None,
    ) -> torch.Tensor:
        model = self._views.get(num_output_patches, self.model)
        known = {} if future_covariates is None else {"future_covariates": future_covariates}
        output = model(context=context, group_ids=group_ids, num_output_patches=num_output_patches, **known)
        return output.quantile_preds

    def _run_batch(
        self, batch: np.ndarray, plan: Plan, tasks_per_batch: int, future: np.ndarray | None = None
    ) -> np.ndarray:
        """Forward one fixed-shape batch ``[tpb*V, C]`` (known future ``[tpb*V, patches * patch]`` or
        ``None``) -> float32 ``[tpb*V, Q, horizon]`` on the host."""
        import torch

        context = self._to_device(batch)
        known = () if future is None else (self._to_device(future),)
        group_ids = torch.arange(tasks_per_batch, device=self.device).repeat_interleave(plan.n_variates)
        n_patches = plan.output_patches
        if plan.long_horizon:
            preds = self._unroll(context, group_ids, plan.horizon, *known)
        elif self._compile.active:
            try:
                preds = self._compile.forward(self._eager_forward, context, group_ids, n_patches, *known)
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:
                self._compile.fall_back(f"{type(exc).__name__}: {_first_line(exc)}")
                preds = self._eager_forward(context, group_ids, n_patches, *known)
        else:
            preds = self._eager_forward(context, group_ids, n_patches, *known)
        return preds[..., : plan.horizon].to(device="cpu", dtype=torch.float32).numpy()

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        import torch

        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _unroll(
        self,
        context: torch.Tensor,
        group_ids: torch.Tensor,
        horizon: int,
        future: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Horizons beyond ``max_output_patches``: chronos' own autoregressive unrolling (eager).

        ``Chronos2Pipeline._predict_batch`` is private to chronos; its failure is a :class:`ModelError`
        that says so (an out-of-memory error still propagates, to halve the batch).
        """
        import torch

        levels = [q for q in _UNROLLED_QUANTILES if q in self.quantile_levels] or list(self.quantile_levels)
        if future is None:
            future = torch.full((context.shape[0], horizon), torch.nan, device=self.device)
        try:
            (preds,) = self.pipeline._predict_batch(
                context=context,
                group_ids=group_ids,
                future_covariates=future,
                unrolled_quantiles_tensor=torch.tensor(levels),
                prediction_length=horizon,
                max_output_patches=self.max_output_patches,
                target_idx_ranges=[(0, context.shape[0])],
            )
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:
            steps = self.max_output_patches * self.output_patch_size
            raise ModelError(
                f"chronos' internal Chronos2Pipeline._predict_batch failed ({type(exc).__name__}: "
                f"{_first_line(exc)}); horizon {horizon} > {steps} steps needs its long-horizon unrolling: "
                f"use --horizon {steps} or less, or chronos-forecasting 2.3.2"
            ) from exc
        return preds

    def _nonfinite_from_finite(self, preds: np.ndarray, has_inf: np.ndarray) -> bool:
        bad = ~np.isfinite(preds).all(axis=(1, 2, 3))  # [tasks]
        return bool((bad & ~has_inf).any())

    def _after_oom(self, exc: BaseException, tasks_per_batch: int) -> int:
        import torch

        if tasks_per_batch <= 1:
            raise ModelError(
                f"out of memory on {self.device} with one task per forward ({_first_line(exc)}); "
                "use a smaller model, --dtype bfloat16 or --device cpu"
            ) from exc
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self._totals.oom_retries += 1
        halved = tasks_per_batch // 2
        logger.info(
            "out of memory on %s at %d tasks per forward; retrying at %d",
            self.device,
            tasks_per_batch,
            halved,
        )
        return halved


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no message"
