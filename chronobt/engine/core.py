"""The Chronos-2 engine: one object owning the model, its device/dtype and its compile state.

Inference runs the model directly at fixed shapes rather than through ``predict_df``
(:mod:`chronobt.engine.batching`): every forward of a call is ``[tasks_per_batch * variates, C]``, NaN-padded;
``group_ids`` put each task's variates in one group, so tasks never see each other (no cross-learning).
:meth:`Chronos2Engine.plan` fixes the shapes of a call (a :class:`~chronobt.engine.batching.Plan`; CPU sizes
from :mod:`chronobt.engine.cpu_sizing`), :meth:`Chronos2Engine.predict` plans and runs.

* the forward is chronobt's own plain-torch Chronos-2 (:mod:`chronobt.engine.native`) wherever its check
  against chronos' full forward passed for the call's output patches and variates
  (:mod:`chronobt.engine.views.native`, verdicts stored in the cache folder); chronos' pipeline is loaded
  only when needed (:mod:`chronobt.engine.stack`), and the points below describe chronos' model, which
  runs where the native forward is unavailable or its check failed;
* ``num_output_patches = ceil(horizon / patch)``. Above the model's ``max_output_patches`` the engine uses
  chronos' own autoregressive unrolling (:mod:`chronobt.engine.unrolling`), eager;
* chronos' model runs through its checked views (:mod:`chronobt.engine.views`: output-only last block,
  per-task group attention, CPU task chunks), each used once found equal to its full forward; chronos'
  private names are reached only through :mod:`chronobt.engine.chronos_compat` (a missing one turns the
  views off, with the reason in :meth:`Chronos2Engine.record`);
* compile (:mod:`chronobt.engine.compilation`): ``torch.compile(dynamic=False)``, one compilation per shape;
  later calls reuse the compiled shape, and any failure means eager for the rest of the engine's life;
* on CUDA the next batch is prepared and uploaded while the current one computes
  (:mod:`chronobt.engine.staging`: pinned buffers, a second stream, ``non_blocking`` copies); CPU runs in
  turn;
* a CUDA out-of-memory error halves ``tasks_per_batch`` and retries (the batches of a call run in
  :mod:`chronobt.engine.runner`, whose :class:`~chronobt.engine.runner.Call` holds the call's state);
* dtype ``bfloat16`` casts the weights (CUDA only; float32 with one warning elsewhere).

The engine reads no environment variable: the command line maps ``CHRONOBT_*`` and the legacy compile
switches onto :class:`EngineConfig` (``chronobt.cli.engine_options``).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from chronobt.engine import cpu_sizing
from chronobt.engine.batching import Plan, RunTotals, context_length
from chronobt.engine.compilation import CompileState
from chronobt.engine.config import DEFAULT_BATCH_SIZE, EngineConfig, resolve_device, resolve_dtype
from chronobt.engine.runner import BatchRunner, Call, CallReport, Forward, Progress
from chronobt.engine.stack import ModelStack, load_pipeline
from chronobt.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from chronobt.engine.views.forward import ForwardViews

__all__ = [
    "CallReport",
    "Chronos2Engine",
    "EngineConfig",
    "Forward",
    "Plan",
    "Progress",
    "load_pipeline",
]

logger = logging.getLogger(__name__)

#: chronos' view fields of :meth:`Chronos2Engine.record` when its views were never built (native forward).
NOT_BUILT: dict[str, Any] = {
    "output_only_last_block": None,
    "output_only_check": None,
    "block_diagonal_groups": None,
    "block_diagonal_check": None,
    "task_chunks": None,
    "task_chunk_check": None,
}


class Chronos2Engine:
    """Batched, fixed-shape Chronos-2 inference with optional torch.compile and eager fallback.

    Parameters
    ----------
    config : what to load and how to run it.
    pipeline : an already loaded ``Chronos2Pipeline`` (tests); skips model resolution.
    stage_batches : prepare and upload the next batch while one computes (:mod:`chronobt.engine.staging`);
        ``None``: on CUDA only (tests and benchmarks rehearse it on a CPU).
    wrap_forward : called once with the engine's eager forward (:data:`chronobt.engine.runner.Forward`),
        returns the forward to run instead (tests and benchmarks observe or fail batches with it; the
        compiled forward wraps the result).
    """

    def __init__(
        self,
        config: EngineConfig = EngineConfig(),
        *,
        pipeline: Any = None,
        stage_batches: bool | None = None,
        wrap_forward: Callable[[Forward], Forward] | None = None,
    ) -> None:
        started = time.perf_counter()
        import torch  # noqa: F401  (timed for the record: the views and the native forward need it)

        torch_seconds = time.perf_counter() - started
        from chronobt.engine.views.native import NativeForward

        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        #: the native forward and chronos' lazily loaded pipeline (:mod:`chronobt.engine.stack`)
        self.stack = ModelStack(config, self.device, self.dtype, pipeline)
        self.stack.import_seconds += torch_seconds
        self.model_info: dict[str, Any] = self.stack.model_info
        spec = self.spec = self.stack.spec
        self.quantile_levels: tuple[float, ...] = spec.quantiles
        self.median_index: int = int(np.argmin(np.abs(np.asarray(self.quantile_levels) - 0.5)))
        self.patch_size: int = spec.input_patch_size
        self.output_patch_size: int = spec.output_patch_size
        self.max_context: int = spec.context_length
        self.max_output_patches: int = spec.max_output_patches
        self._default_batch_size: int = config.batch_size or DEFAULT_BATCH_SIZE.get(self.device.type, 16)
        self._compile = CompileState.resolve(config, self.device)
        self._totals = RunTotals()
        self._verdicts = self.stack.verdict_cache()
        #: the native forward's checks (:mod:`chronobt.engine.views.native`); chronos' views load with it
        self.native = NativeForward(
            self.stack.native, lambda: self.stack.model, self._verdicts, self.stack.native_problem
        )
        self._views: ForwardViews | None = None
        self._native_call: tuple[int, int | None] | None = None  # (variates, tasks per chunk) when native
        forward: Forward = self._model_forward
        self._runner = BatchRunner(
            device=self.device,
            forward=forward if wrap_forward is None else wrap_forward(forward),
            compile_state=self._compile,
            totals=self._totals,
            n_quantiles=len(self.quantile_levels),
            output_patch_size=self.output_patch_size,
            unroll=self._unroll,
            stage_batches=self.device.type == "cuda" if stage_batches is None else stage_batches,
        )
        self._last_call: CallReport | None = None
        #: why chronos' public predict unrolled long horizons instead of its private batch method
        self._unroll_fallback: str | None = None

    # ------------------------------------------------------------------ public API

    @property
    def pipeline(self) -> Any:
        """chronos' ``Chronos2Pipeline`` (imported and loaded on first use: fine-tuning, unrolling)."""
        return self.stack.pipeline

    @property
    def model(self) -> Any:
        """chronos' ``Chronos2Model`` on the engine's device and dtype (loaded on first use)."""
        return self.stack.model

    @property
    def views(self) -> ForwardViews:
        """The checked views of chronos' model (:mod:`chronobt.engine.views.forward`), built (and chronos
        loaded) on first use: when a shape's native check failed or no native model loaded."""
        if self._views is None:
            from chronobt.engine.views.forward import ForwardViews

            self._views = ForwardViews(self.model, self._verdicts)
        return self._views

    @property
    def import_seconds(self) -> float:
        """Seconds spent importing torch, and chronos with transformers when they were loaded."""
        return self.stack.import_seconds

    @property
    def batch_size(self) -> int:
        """Series per forward of the last call (before any call: the configured or the device's default)."""
        last = self._last_call
        return self._default_batch_size if last is None else last.series_per_forward

    @property
    def last_call(self) -> CallReport | None:
        """What the latest :meth:`predict` call did (its batch size, its staged batches); ``None`` before."""
        return self._last_call

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
        n_patches = math.ceil(horizon / self.output_patch_size)
        compile_call, compile_reason = self._compile_preview(n_tasks, n_variates, length, n_patches)
        shape = self._compile.shape
        if compile_call and shape is not None:
            length = max(length, shape[1])  # reuse a longer compiled length instead of compiling again
        long_horizon = n_patches > self.max_output_patches
        runs = n_tasks > 0 and n_variates > 0  # an empty call runs nothing: no check for it either
        native = runs and not long_horizon and self.native.usable(n_patches, n_variates, length)
        dense_groups = False if native or not runs else self.views.dense_groups
        cached = None  # CPU: the series whose activations stay in cache
        if self.device.type == "cpu":
            sizing = functools.partial(
                cpu_sizing.cpu_series_per_forward,
                context_length=length,
                patch_size=self.patch_size,
                n_output_patches=n_patches,
                d_model=self.spec.d_model,
                d_ff=self.spec.d_ff,
                dense_groups=dense_groups,
            )
            cached = sizing()
            batch = cached if self.config.batch_size is None else self.config.batch_size
            side_by_side = self._cpu_workers(compile_call, n_tasks, max(1, batch // max(n_variates, 1)))
            if side_by_side > 1:
                cached = sizing(workers=side_by_side)  # batches side by side share the cache
        series = cached if self.config.batch_size is None and cached is not None else self.batch_size
        tasks_per_batch = max(1, series // max(n_variates, 1))
        if not compile_call:
            tasks_per_batch = min(tasks_per_batch, max(n_tasks, 1))  # eager: no dummy tasks below one batch
        elif shape is not None and n_variates and shape[0] % n_variates == 0:
            tasks_per_batch = shape[0] // n_variates  # keep the compiled shape (after OOM halving)
        tasks_per_chunk = None
        if (
            cached is not None
            and not dense_groups
            and not long_horizon
            and runs
            and (native or self.views.task_chunk_layout)
        ):
            tasks_per_chunk = cpu_sizing.cpu_tasks_per_chunk(
                series=cached, n_variates=n_variates, tasks_per_batch=tasks_per_batch
            )
        workers = self._cpu_workers(compile_call, n_tasks, tasks_per_batch)
        return Plan(
            n_tasks=n_tasks,
            n_variates=n_variates,
            horizon=horizon,
            context_length=length,
            output_patches=n_patches,
            series_per_forward=series,
            tasks_per_batch=tasks_per_batch,
            workers=workers,
            long_horizon=long_horizon,
            compile=compile_call,
            compile_reason=compile_reason,
            tasks_per_chunk=tasks_per_chunk,
            native=native,
        )

    def _cpu_workers(self, compile_call: bool, n_tasks: int, tasks_per_batch: int) -> int:
        """CPU batches side by side for ``n_tasks`` in batches of ``tasks_per_batch`` (1 off the CPU,
        compiled or staged)."""
        if self.device.type != "cpu" or compile_call or self._runner.stage_batches:
            return 1
        import torch

        return cpu_sizing.cpu_workers(
            n_batches=math.ceil(n_tasks / tasks_per_batch),
            d_model=self.spec.d_model,
            threads=torch.get_num_threads(),
            free_cores=self.config.cpu_free_cores,
        )

    def _compile_preview(
        self, n_tasks: int, n_variates: int, length: int, n_patches: int
    ) -> tuple[bool, str]:
        """Whether a call would run compiled (``auto``: when its batches earn the compile back)."""
        series = self.batch_size if self.config.batch_size is None else self.config.batch_size
        return self._compile.preview_call(
            self.spec,
            n_tasks=n_tasks,
            n_variates=n_variates,
            series=series,
            tokens=cpu_sizing.tokens_per_series(
                context_length=length, patch_size=self.patch_size, n_output_patches=n_patches
            ),
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
            ``None``: nothing known (the same forecast as all-NaN). Calls with a known future are not
            staged ahead on CUDA (the staging buffers hold contexts only).

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
        shape = (plan.n_tasks, plan.n_variates, len(self.quantile_levels), plan.horizon)
        call = Call(contexts, plan, np.full(shape, np.nan, dtype=np.float32), future, progress)
        if plan.n_tasks and plan.n_variates:
            self._run(call)
        return call.out

    def record(self) -> dict[str, Any]:
        """What ran over the engine's life (every call), for manifests and summaries.

        ``batch_size``: series per forward of the last call; ``tasks_per_batch``: the last batch's;
        ``long_horizon_unrolling``: any call unrolled; ``long_horizon_fallback``: why chronos' public
        ``predict`` unrolled instead of its private batch method (``None``: it did not); ``compile``:
        :meth:`CompileState.record`;
        ``output_only_last_block``: the layout is supported and no check failed; ``output_only_check``:
        the first failed check, else the latest (``None`` before any); ``block_diagonal_groups`` and
        ``block_diagonal_check``: the same for per-task group attention; ``task_chunks``: the most tasks
        per chunk a CPU call's encoder blocks ran over (``None``: whole batches) and ``task_chunk_check``;
        ``cpu_workers``: most CPU batches side by side (``cpu_free_cores``: the
        free cores it was sized for, ``None``: unknown); ``forward_seconds``: wall time running batches;
        ``import_seconds``: seconds the engine spent importing torch and chronos (with transformers;
        0 when the caller had imported them); ``view_checks``: where the view checks' verdicts are
        stored and how many were reused or compared
        (:meth:`chronobt.engine.views.verdicts.VerdictCache.record`; each ``*_check`` says ``reused``).
        """
        t = self._totals
        return {
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "batch_size": self.batch_size,
            "tasks_per_batch": t.tasks_per_batch,
            "tasks_per_batch_min": t.tasks_per_batch_min,
            "long_horizon_unrolling": t.long_horizon_calls > 0,
            "long_horizon_fallback": self._unroll_fallback,
            "compile": self._compile.record(),
            "oom_retries": t.oom_retries,
            **(NOT_BUILT if self._views is None and self.stack.native is not None else self.views.record()),
            **self.native.record(),
            "chronos_loaded": self.stack.loaded,
            "view_checks": self._verdicts.record(),
            "calls": t.calls,
            "tasks": t.tasks,
            "batches": t.batches,
            "cpu_workers": t.workers_max,
            "cpu_free_cores": self.config.cpu_free_cores,
            "long_horizon_calls": t.long_horizon_calls,
            "forward_seconds": round(t.forward_seconds, 3),
            "import_seconds": round(self.import_seconds, 3),
        }

    # ------------------------------------------------------------------ running a plan

    def _run(self, call: Call) -> None:
        plan, totals = call.plan, self._totals
        totals.calls += 1
        totals.long_horizon_calls += plan.long_horizon
        self._compile.settle(plan.compile, plan.compile_reason)
        self._last_call = CallReport(series_per_forward=plan.series_per_forward)
        self._native_call = (plan.n_variates, plan.tasks_per_chunk) if plan.native else None
        self.native.calls += plan.native
        if plan.long_horizon:
            if self._views is not None:
                self._views.forget_call()
        elif not plan.native:
            self.views.prepare(plan)
        started = time.perf_counter()
        try:
            self._runner.run(call)
        finally:
            totals.forward_seconds += time.perf_counter() - started
            self._last_call = call.report()

    def _model_forward(
        self,
        context: torch.Tensor,
        group_ids: torch.Tensor,
        num_output_patches: int,
        future_covariates: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The current call's model (:meth:`ForwardViews.model_for`) on one batch -> ``quantile_preds``."""
        if self._native_call is not None:
            n_variates, per_chunk = self._native_call
            return self.native(
                context,
                group_ids,
                num_output_patches,
                future_covariates,
                n_variates=n_variates,
                tasks_per_chunk=per_chunk,
            )
        model = self.views.model_for(num_output_patches)
        known = {} if future_covariates is None else {"future_covariates": future_covariates}
        output = model(context=context, group_ids=group_ids, num_output_patches=num_output_patches, **known)
        return output.quantile_preds

    def _unroll(
        self, context: torch.Tensor, group_ids: torch.Tensor, horizon: int, future: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Horizons beyond ``max_output_patches``: chronos' own unrolling
        (:mod:`chronobt.engine.unrolling`); its public ``predict`` when the private method is gone (recorded,
        one warning)."""
        from chronobt.engine.unrolling import unroll

        preds, fallback = unroll(
            self.pipeline,
            context,
            group_ids,
            horizon,
            quantile_levels=self.quantile_levels,
            max_output_patches=self.max_output_patches,
            output_patch_size=self.output_patch_size,
            future=future,
        )
        if fallback is not None and self._unroll_fallback is None:
            self._unroll_fallback = fallback
            logger.warning("long-horizon unrolling: %s", fallback)
        return preds
