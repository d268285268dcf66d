"""The Chronos-2 engine: one object owning the model, its device/dtype and its compile state.

Inference runs the model directly at fixed shapes rather than through ``predict_df``:

* every batch is ``[tasks_per_batch * variates, C]`` with ``C`` fixed for the whole call: the longest
  observed context, capped at the model's maximum context and rounded up to a multiple of the patch size,
  left-padded with NaN (Chronos-2 treats NaN as missing, so padding changes nothing);
* the last batch is topped up with all-NaN dummy tasks (dropped afterwards), so every forward has the same
  shape; ``tasks_per_batch = max(1, batch_size // variates)`` and a task is never split across batches;
* ``group_ids`` put each task's variates in one group, so tasks never see each other (no cross-learning);
* ``num_output_patches = ceil(horizon / patch)``. Above the model's ``max_output_patches`` the engine uses
  chronos' own autoregressive unrolling (``Chronos2Pipeline._predict_batch``), eager and uncompiled.
* the forward runs through :func:`chronobt.lastblock.output_only_view`: the last encoder block computes
  only the forecast tokens (the model reads nothing else from it); same numbers as the full forward;
* with compile on, later calls reuse the compiled shape (tasks per batch, and C when theirs is shorter),
  so an engine reused across symbols compiles once per horizon.

With compile on, the forward is wrapped by ``torch.compile(dynamic=False)``; fixed shapes mean one
compilation per call. Any exception from the compiled forward (or non-finite output from inputs without
infinities) restores eager mode for the rest of the engine's life, logs one warning and re-runs that batch.
A CUDA out-of-memory error halves ``tasks_per_batch`` and retries.

dtype ``bfloat16`` casts the model weights (``model.to(torch.bfloat16)``, chronos' own ``torch_dtype``
path; instance normalisation and the output stay float32). It is CUDA-only: on CPU/MPS the engine logs
one warning and runs float32, so scripts that ask for bf16 still run on machines without a GPU.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from chronobt.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPE_CHOICES = ("auto", "float32", "bfloat16")
COMPILE_CHOICES = ("auto", "on", "off")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Series per forward pass by device type (H200: 256 best; 2-core CPU with a 7M model: 16 best).
DEFAULT_BATCH_SIZE = {"cuda": 256, "mps": 64, "cpu": 16}

#: CPU default batch: series per forward such that series x context patches x d_model stays near the
#: measured optimum of a 7M-parameter Chronos-2 (d_model 256) at context 2048 on a 2-core CPU, 16 series
#: (69 ms/window vs 79 at 4, 88 at 64, 128 at 256). Larger activations fall out of cache; a small model
#: or a short context is overhead-bound instead and gets more series per forward (up to 256), but never
#: more than the model's d_ff: group (cross-series) attention is dense, its cost per series grows with
#: the series per forward and passes the feed-forward layers' beyond d_ff (tiny model, d_ff 64, context
#: 512, 200 windows on 2 cores: 120 ms at 64-128 series per forward, 196 ms at 256).
CPU_ACTIVATION_BUDGET = 16 * 131 * 256  # 128 context patches + register + 2 output patches
CPU_BATCH_RANGE = (4, 256)
#: Models at least this wide run their CPU batches in turn (their matrix products use every core).
CPU_PARALLEL_MAX_D_MODEL = 256
#: Legacy switches read when ``EngineConfig.compile`` is ``None``, first one set wins.
LEGACY_COMPILE_ENV = ("TORCH_COMPILED", "CHRONOS_COMPILE")
_ENV_BOOL = {"1": True, "true": True, "0": False, "false": False}
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: chronos' default quantiles for long-horizon unrolling.
_UNROLLED_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EngineConfig:
    """How to load and run Chronos-2.

    Attributes
    ----------
    model : ``"auto"``, ``"bundled"``, a hub id or a folder (see :func:`chronobt.models.resolve_model`).
    device : ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    dtype : ``auto`` (float32), ``float32`` or ``bfloat16`` (CUDA only; float32 with a warning elsewhere).
    compile : ``auto`` (on for CUDA only), ``on``, ``off``; ``None`` reads the legacy env switches
        ``TORCH_COMPILED`` / ``CHRONOS_COMPILE`` (0/1/true/false), else ``auto``.
    compile_backend : torch.compile backend; default env ``CHRONOS_COMPILE_BACKEND`` or ``inductor``.
    compile_mode : torch.compile mode; default env ``CHRONOS_COMPILE_MODE`` or torch's default.
    batch_size : series per forward pass; default 256 on CUDA, 64 on MPS, and on a CPU sized per run
        by ``CPU_ACTIVATION_BUDGET`` and capped at the model's d_ff (16 for the 7M model at context 2048).
    """

    model: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    compile: str | None = None
    compile_backend: str | None = None
    compile_mode: str | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model {self.model!r} is empty; pass auto, bundled, a hub id or a folder")
        if not _DEVICE_RE.match(self.device):
            raise ConfigError(f"device {self.device!r} is not one of {', '.join(DEVICE_CHOICES)}")
        if self.dtype not in DTYPE_CHOICES:
            raise ConfigError(f"dtype {self.dtype!r} is not one of {', '.join(DTYPE_CHOICES)}")
        if self.compile is not None and self.compile not in COMPILE_CHOICES:
            raise ConfigError(f"compile {self.compile!r} is not one of {', '.join(COMPILE_CHOICES)}")
        if self.compile_mode is not None and self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"compile mode {self.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}")
        if self.compile_backend is not None and not self.compile_backend.strip():
            raise ConfigError("compile backend is empty; pass a torch.compile backend such as inductor")
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ConfigError(
                f"batch size {self.batch_size!r} must be a positive integer (series per forward)"
            )


@dataclass
class _CompileState:
    requested: str  # "auto" | "on" | "off"
    source: str  # "option", "env TORCH_COMPILED", "env CHRONOS_COMPILE" or "default"
    enabled: bool
    backend: str
    mode: str | None
    used: bool = False
    fallback_reason: str | None = None
    compile_seconds: float = 0.0
    compilations: int = 0
    fn: Callable[..., Any] | None = None
    shape: tuple[int, int] | None = field(default=None)  # (rows, context) the compiled fn last ran at

    def record(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "source": self.source,
            "enabled": self.enabled,
            "used": self.used,
            "backend": self.backend,
            "mode": self.mode,
            "fallback_reason": self.fallback_reason,
            "compile_seconds": round(self.compile_seconds, 3),
            "compilations": self.compilations,
        }


def resolve_device(spec: str) -> torch.device:
    """``torch.device`` for a device spec; :class:`ConfigError` when the device is absent."""
    import torch

    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {spec}: CUDA is not available here; use --device auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {spec}: MPS is not available here; use --device auto or cpu")
    return device


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """float32 unless ``bfloat16`` was asked for on CUDA (warns and uses float32 elsewhere)."""
    import torch

    if spec == "bfloat16":
        if device.type == "cuda":
            return torch.bfloat16
        logger.warning("dtype bfloat16 is CUDA-only; running float32 on %s", device.type)
    return torch.float32


def resolve_compile(config: EngineConfig, device: torch.device) -> _CompileState:
    """Whether to compile: the option, else the legacy env switches, else ``auto`` (on for CUDA)."""
    requested, source = config.compile, "option"
    if requested is None:
        requested, source = "auto", "default"
        for name in LEGACY_COMPILE_ENV:
            raw = os.environ.get(name)
            if raw is None or not raw.strip():
                continue
            value = _ENV_BOOL.get(raw.strip().lower())
            if value is None:
                raise ConfigError(f"environment {name}={raw!r} is not one of 0, 1, true, false")
            requested, source = ("on" if value else "off"), f"env {name}"
            break
    enabled = requested == "on" or (requested == "auto" and device.type == "cuda")
    backend = config.compile_backend or os.environ.get("CHRONOS_COMPILE_BACKEND") or "inductor"
    mode = config.compile_mode or os.environ.get("CHRONOS_COMPILE_MODE") or None
    if mode is not None and mode not in COMPILE_MODES:
        raise ConfigError(
            f"environment CHRONOS_COMPILE_MODE={mode!r} is not one of {', '.join(COMPILE_MODES)}"
        )
    return _CompileState(requested=requested, source=source, enabled=enabled, backend=backend, mode=mode)


def _compile(fn: Callable[..., Any], backend: str, mode: str | None) -> Callable[..., Any]:
    """``torch.compile`` with static shapes (module-level so tests can substitute a failing module)."""
    import torch

    return torch.compile(fn, backend=backend, mode=mode, dynamic=False)


def _graph_count() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def load_pipeline(path: Any) -> Any:
    """Load a ``Chronos2Pipeline`` from a local folder on the CPU; :class:`ModelError` on failure."""
    from chronos import Chronos2Pipeline
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar on stderr: the CLI owns stderr (and --quiet).
    hf_logging.disable_progress_bar()
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
        self._compile = resolve_compile(config, self.device)
        self._eager_forward: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] = self._model_forward
        self._oom_retries = 0
        self._tasks_per_batch: int | None = None
        self._long_horizon = False
        #: forward views whose last block computes only the output tokens, by number of output patches
        self._output_only = supports_output_only(self.model)
        self._views: dict[int, Any] = {}

    # ------------------------------------------------------------------ public API

    def predict(self, contexts: np.ndarray, horizon: int, *, progress: Progress | None = None) -> np.ndarray:
        """Quantile forecasts for every task.

        Parameters
        ----------
        contexts : ``[tasks, variates, time]`` float; left NaN padding allowed (NaN = missing).
        horizon : steps to forecast after each context.
        progress : called as ``progress(done_tasks, total_tasks)`` after each batch.

        Returns
        -------
        np.ndarray
            float32 ``[tasks, variates, quantiles, horizon]``, quantiles in :attr:`quantile_levels` order.
        """
        import torch

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
        out = np.full((n_tasks, n_variates, len(self.quantile_levels), horizon), np.nan, dtype=np.float32)
        if n_tasks == 0 or n_variates == 0:
            return out
        length = self._context_length(contexts)
        n_patches = math.ceil(horizon / self.output_patch_size)
        self._long_horizon = n_patches > self.max_output_patches
        if self._output_only and not self._long_horizon and n_patches not in self._views:
            from chronobt.lastblock import output_only_view

            self._views[n_patches] = output_only_view(self.model, n_patches)
        if self.config.batch_size is None and self.device.type == "cpu":
            self.batch_size = self._cpu_series_per_forward(length, n_patches)
        tasks_per_batch = max(1, self.batch_size // n_variates)
        if not self._compile_active():
            tasks_per_batch = min(tasks_per_batch, n_tasks)  # eager: no dummy tasks needed below one batch
        elif self._compile.shape is not None and self._compile.shape[0] % n_variates == 0:
            tasks_per_batch = (
                self._compile.shape[0] // n_variates
            )  # keep the compiled shape (after OOM halving)
        has_inf = np.isinf(contexts).any(axis=(1, 2))  # [tasks]
        workers = self._cpu_workers(math.ceil(n_tasks / tasks_per_batch))
        if workers > 1:
            try:
                self._predict_batches_in_parallel(
                    contexts, out, workers, tasks_per_batch, length, n_patches, horizon, progress
                )
                return out
            except torch.OutOfMemoryError:  # batch by batch below, where the batch is halved and retried
                logger.info("out of memory with %d parallel CPU batches; forecasting batch by batch", workers)
        start = 0
        with torch.inference_mode():
            while start < n_tasks:
                stop = min(start + tasks_per_batch, n_tasks)
                try:
                    preds = self._forecast_tasks(
                        contexts, start, stop, tasks_per_batch, length, n_patches, horizon
                    )
                except torch.OutOfMemoryError as exc:
                    tasks_per_batch = self._after_oom(exc, tasks_per_batch)
                    continue
                if self._compile_active() and self._nonfinite_from_finite(preds, has_inf[start:stop]):
                    self._fall_back("compiled forward returned non-finite values from finite inputs")
                    continue  # same batch again, eager
                if self._compile_active() and not self._long_horizon:
                    self._compile.used = True
                out[start:stop] = preds
                self._tasks_per_batch = tasks_per_batch
                start = stop
                if progress is not None:
                    progress(start, n_tasks)
        return out

    def _forecast_tasks(
        self,
        contexts: np.ndarray,
        start: int,
        stop: int,
        tasks_per_batch: int,
        length: int,
        n_patches: int,
        horizon: int,
    ) -> np.ndarray:
        """Tasks ``start:stop`` as one fixed-shape batch -> float32 ``[stop - start, V, Q, horizon]``."""
        n_variates = contexts.shape[1]
        batch = _batch_array(contexts, start, stop, tasks_per_batch, length)  # [tpb*V, C]
        preds = self._run_batch(batch, n_variates, tasks_per_batch, n_patches, horizon)
        shape = (tasks_per_batch, n_variates, len(self.quantile_levels), horizon)
        return preds.reshape(shape)[: stop - start]

    def _cpu_workers(self, n_batches: int) -> int:
        """Batches forecast at once on a CPU, one thread each (1: batches in turn, all threads each).

        A small model's forward is a chain of small operations that two intra-op threads share badly;
        whole batches on separate threads keep every core busy (200 windows on 2 cores: chronos2-mini
        12-14% faster, the tiny test model 28-30%; benchmarks/cpu_parallel_batches.py). A large model's
        matrix products already use every core, so it stays sequential (d_model >= CPU_PARALLEL_MAX_D_MODEL).
        """
        import torch

        if (
            self.device.type != "cpu"
            or self._compile_active()
            or n_batches < 2
            or int(self.model.config.d_model) >= CPU_PARALLEL_MAX_D_MODEL
        ):
            return 1
        return min(torch.get_num_threads(), n_batches)

    def _predict_batches_in_parallel(
        self,
        contexts: np.ndarray,
        out: np.ndarray,
        workers: int,
        tasks_per_batch: int,
        length: int,
        n_patches: int,
        horizon: int,
        progress: Progress | None,
    ) -> None:
        """Eager CPU forecasts of every batch, ``workers`` batches at a time on one thread each."""
        import torch

        n_tasks = contexts.shape[0]

        def forecast(start: int) -> int:
            torch.set_num_threads(1)  # this worker's batch runs on its own core
            stop = min(start + tasks_per_batch, n_tasks)
            with torch.inference_mode():
                out[start:stop] = self._forecast_tasks(
                    contexts, start, stop, tasks_per_batch, length, n_patches, horizon
                )
            return stop

        threads = torch.get_num_threads()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chronobt-cpu")
        try:
            futures = [pool.submit(forecast, s) for s in range(0, n_tasks, tasks_per_batch)]
            for future in futures:  # in batch order, so progress reads as in a sequential run
                stop = future.result()
                if progress is not None:
                    progress(stop, n_tasks)
        finally:  # on an error or Ctrl-C the queued batches are dropped, only running ones finish
            pool.shutdown(wait=True, cancel_futures=True)
            torch.set_num_threads(threads)
        self._tasks_per_batch = tasks_per_batch

    def _cpu_series_per_forward(self, length: int, n_output_patches: int) -> int:
        """Default series per forward on a CPU for contexts of ``length`` (see CPU_ACTIVATION_BUDGET)."""
        tokens = math.ceil(length / self.patch_size) + 1 + n_output_patches
        series = CPU_ACTIVATION_BUDGET // (tokens * int(self.model.config.d_model))
        low, high = CPU_BATCH_RANGE
        return int(min(high, int(self.model.config.d_ff), max(low, series)))

    def record(self) -> dict[str, Any]:
        """What ran: device, dtype, batch size, compile outcome, OOM retries, output-only last block."""
        return {
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "batch_size": self.batch_size,
            "tasks_per_batch": self._tasks_per_batch,
            "long_horizon_unrolling": self._long_horizon,
            "compile": self._compile.record(),
            "oom_retries": self._oom_retries,
            "output_only_last_block": self._output_only,
        }

    # ------------------------------------------------------------------ internals

    def _context_length(self, contexts: np.ndarray) -> int:
        """Fixed context length C: longest observed context, capped, rounded up to the patch size."""
        observed = ~np.isnan(contexts).all(axis=1)  # [tasks, time]
        any_obs = observed.any(axis=1)
        first = np.where(any_obs, observed.argmax(axis=1), contexts.shape[2])
        needed = int(contexts.shape[2] - first.min()) if any_obs.any() else 1
        length = min(math.ceil(max(needed, 1) / self.patch_size) * self.patch_size, self.max_context)
        if self._compile_active() and self._compile.shape is not None:
            # reuse a longer compiled length from an earlier call instead of compiling again
            length = max(length, self._compile.shape[1])
        return length

    def _compile_active(self) -> bool:
        return self._compile.enabled and self._compile.fallback_reason is None

    def _model_forward(
        self, context: torch.Tensor, group_ids: torch.Tensor, num_output_patches: int
    ) -> torch.Tensor:
        model = self._views.get(num_output_patches, self.model)
        output = model(context=context, group_ids=group_ids, num_output_patches=num_output_patches)
        return output.quantile_preds

    def _run_batch(
        self, batch: np.ndarray, n_variates: int, tasks_per_batch: int, n_patches: int, horizon: int
    ) -> np.ndarray:
        """Forward one fixed-shape batch ``[tpb*V, C]`` -> float32 ``[tpb*V, Q, horizon]`` on the host."""
        import torch

        context = torch.from_numpy(batch)
        if self.device.type == "cuda":
            context = context.pin_memory().to(self.device, non_blocking=True)
        else:
            context = context.to(self.device)
        group_ids = torch.arange(tasks_per_batch, device=self.device).repeat_interleave(n_variates)
        if self._long_horizon:
            preds = self._unroll(context, group_ids, horizon)
        elif self._compile_active():
            try:
                preds = self._compiled_forward(context, group_ids, n_patches)
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:
                self._fall_back(f"{type(exc).__name__}: {_first_line(exc)}")
                preds = self._eager_forward(context, group_ids, n_patches)
        else:
            preds = self._eager_forward(context, group_ids, n_patches)
        return preds[..., :horizon].to(device="cpu", dtype=torch.float32).numpy()

    def _compiled_forward(
        self, context: torch.Tensor, group_ids: torch.Tensor, n_patches: int
    ) -> torch.Tensor:
        import torch

        state = self._compile
        if state.fn is None:
            state.fn = _compile(self._eager_forward, state.backend, state.mode)
        if state.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        graphs_before, started = _graph_count(), time.perf_counter()
        preds = state.fn(context, group_ids, n_patches)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        new_graphs = _graph_count() - graphs_before
        if new_graphs:
            state.compilations += new_graphs
            state.compile_seconds += time.perf_counter() - started
            logger.info("compiled the forward pass for shape %s", tuple(context.shape))
        state.shape = (int(context.shape[0]), int(context.shape[1]))
        return preds.clone() if state.mode == "reduce-overhead" else preds

    def _unroll(self, context: torch.Tensor, group_ids: torch.Tensor, horizon: int) -> torch.Tensor:
        """Horizons beyond ``max_output_patches``: chronos' own autoregressive unrolling (eager)."""
        import torch

        levels = [q for q in _UNROLLED_QUANTILES if q in self.quantile_levels] or list(self.quantile_levels)
        future = torch.full((context.shape[0], horizon), torch.nan, device=self.device)
        (preds,) = self.pipeline._predict_batch(
            context=context,
            group_ids=group_ids,
            future_covariates=future,
            unrolled_quantiles_tensor=torch.tensor(levels),
            prediction_length=horizon,
            max_output_patches=self.max_output_patches,
            target_idx_ranges=[(0, context.shape[0])],
        )
        return preds

    def _nonfinite_from_finite(self, preds: np.ndarray, has_inf: np.ndarray) -> bool:
        bad = ~np.isfinite(preds).all(axis=(1, 2, 3))  # [tasks]
        return bool((bad & ~has_inf).any())

    def _fall_back(self, reason: str) -> None:
        import torch

        state = self._compile
        state.fallback_reason = reason
        state.fn = None
        try:
            torch._dynamo.reset()
        except Exception:  # resetting is best effort; eager mode does not need it
            logger.debug("torch._dynamo.reset() failed", exc_info=True)
        logger.warning(
            "torch.compile failed (%s, backend %s); running eager for the rest of the run, "
            "finished batches kept",
            reason,
            state.backend,
        )

    def _after_oom(self, exc: BaseException, tasks_per_batch: int) -> int:
        import torch

        if tasks_per_batch <= 1:
            raise ModelError(
                f"out of memory on {self.device} with one task per forward ({_first_line(exc)}); "
                "use a smaller model, --dtype bfloat16 or --device cpu"
            ) from exc
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self._oom_retries += 1
        halved = tasks_per_batch // 2
        logger.info(
            "out of memory on %s at %d tasks per forward; retrying at %d",
            self.device,
            tasks_per_batch,
            halved,
        )
        return halved


def _batch_array(
    contexts: np.ndarray, start: int, stop: int, tasks_per_batch: int, length: int
) -> np.ndarray:
    """Tasks ``start:stop`` as a float32 ``[tasks_per_batch * variates, length]`` array.

    Contexts are cut to their last ``length`` steps or left-padded with NaN; missing tasks (the last
    batch) are all-NaN dummies, which the model turns into finite, discarded forecasts.
    """
    _, n_variates, n_time = contexts.shape
    batch = np.full((tasks_per_batch, n_variates, length), np.nan, dtype=np.float32)
    take = min(length, n_time)
    batch[: stop - start, :, length - take :] = contexts[start:stop, :, n_time - take :]
    return batch.reshape(tasks_per_batch * n_variates, length)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no message"
