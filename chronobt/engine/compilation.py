"""The engine's torch.compile state: whether to compile, the compiled forward, the eager fallback.

The forward is wrapped by ``torch.compile(dynamic=False)``; the engine's fixed shapes mean one
compilation per call shape. Any exception from the compiled forward (or non-finite output from inputs
without infinities, which the engine checks) ends compilation for the rest of the engine's life: one
warning, ``fallback_reason`` recorded, the batch re-run eager.

Compilations are counted with dynamo's private counters (``torch._dynamo.utils.counters``, read through
:func:`chronobt.engine.chronos_compat.dynamo_counter`); when they
cannot be read the count is recorded as unknown (``None``), never as a compile failure. Inductor's
FX-graph cache hits and misses are read from the same counters (``counters["inductor"]``), guarded alike.

When to compile under ``auto`` (:func:`compile_decision`): compiling costs seconds up front
(tens of seconds for Chronos-2's first call: ``benchmarks/RESULTS.md``, ``engine_gpu.py``) and saves a
fraction of every later batch, so
``auto`` compiles on CUDA only when the call's batches earn the compile back::

    n_batches * eager_seconds_per_batch * COMPILE_SAVING > expected_compile_seconds

``eager_seconds_per_batch`` is the batch's matrix-product work over :data:`EAGER_FLOPS_PER_S`;
``expected_compile_seconds`` is :data:`COMPILE_SECONDS_COLD`, or :data:`COMPILE_SECONDS_WARM` when the
cache folder already holds inductor's cache. The constants are estimates until the GPU checks
(``benchmarks/gpu_checks.sh``) measure them; ``--compile on`` always compiles. An hourly forecast (one
batch) stays eager; a backtest of tens of thousands of windows compiles.

Cache folder: with :attr:`EngineConfig.cache_dir` set, inductor's cache lives in ``cache_dir/inductor``.
torch offers no public setting for it but the ``TORCHINDUCTOR_CACHE_DIR`` environment variable, which is
process-wide: :func:`inductor_cache_dir` sets it only around the compiled calls and restores it after.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chronobt.engine import chronos_compat
from chronobt.engine.config import EngineConfig

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

Forward = Callable[..., "torch.Tensor"]

#: Fraction of an eager batch's time a compiled one saves (estimate; measured by the GPU checks).
COMPILE_SAVING = 0.3
#: Seconds of the first compiled call with an empty cache (Chronos-2 on an H200, inductor) and with
#: inductor's FX-graph cache filled by an earlier run (dynamo still traces; estimate).
COMPILE_SECONDS_COLD = 33.0
COMPILE_SECONDS_WARM = 10.0
#: Matrix-product FLOP/s of an eager forward on a CUDA device (an H200 in bfloat16 runs the full model's
#: 256-series batch at context 2048 in about 0.1 s: ~7.6 TFLOP; estimate).
EAGER_FLOPS_PER_S = 5e13
#: The environment variable inductor reads its cache folder from.
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def batch_flops(*, series: int, tokens: int, d_model: int, d_ff: int, num_layers: int) -> float:
    """Matrix-product FLOPs of one forward: per token and layer, time and group attention's four
    ``d x d`` projections each and the feed-forward's two ``d x d_ff`` ones (2 FLOPs a multiply-add)."""
    per_token = 2 * (8 * d_model * d_model + 2 * d_model * d_ff) * num_layers
    return float(series * tokens * per_token)


def compile_decision(*, n_batches: int, flops_per_batch: float, cache_warm: bool) -> tuple[bool, str]:
    """Whether ``auto`` should compile a call of ``n_batches`` batches, and why (one line)."""
    eager_s = flops_per_batch / EAGER_FLOPS_PER_S
    saved = n_batches * eager_s * COMPILE_SAVING
    cost = COMPILE_SECONDS_WARM if cache_warm else COMPILE_SECONDS_COLD
    cache = "warm" if cache_warm else "cold"
    numbers = (
        f"{n_batches} batches x ~{eager_s:.2g} s eager x {COMPILE_SAVING:g} saved = {saved:.2g} s "
        f"{'>' if saved > cost else '<='} ~{cost:g} s compile ({cache} cache)"
    )
    return saved > cost, ("auto: compile, " if saved > cost else "auto: eager, ") + numbers


def cache_is_warm(cache_dir: Path | None) -> bool:
    """Whether ``cache_dir`` already holds an inductor cache (anything in ``cache_dir/inductor``)."""
    if cache_dir is None:
        return False
    folder = Path(cache_dir) / "inductor"
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


@contextmanager
def inductor_cache_dir(cache_dir: Path | None) -> Iterator[None]:
    """Inductor's cache in ``cache_dir/inductor`` for the block; the environment restored after.

    ``None`` leaves everything as it is (torch's default folder, or the user's own variable).
    """
    if cache_dir is None:
        yield
        return
    folder = Path(cache_dir) / "inductor"
    folder.mkdir(parents=True, exist_ok=True)
    saved = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = saved


def cache_counts() -> tuple[int, int] | None:
    """(hits, misses) of inductor's FX-graph cache so far, from private counters; ``None`` if unreadable."""
    hits = chronos_compat.dynamo_counter("inductor", "fxgraph_cache_hit")
    misses = chronos_compat.dynamo_counter("inductor", "fxgraph_cache_miss")
    return None if hits is None or misses is None else (hits, misses)


def _compile(fn: Callable[..., Any], backend: str, mode: str | None) -> Callable[..., Any]:
    """``torch.compile`` with static shapes (module-level so tests can substitute a failing module)."""
    import torch

    return torch.compile(fn, backend=backend, mode=mode, dynamic=False)


def graph_count() -> int | None:
    """Graphs dynamo has compiled so far, from its private counters; ``None`` when they cannot be read."""
    return chronos_compat.dynamo_counter("stats", "unique_graphs")


@dataclass
class CompileState:
    """Compile choice and outcome of one engine.

    Attributes
    ----------
    requested : ``auto``, ``on`` or ``off`` (:attr:`EngineConfig.compile`).
    source : where the choice came from (:attr:`EngineConfig.compile_source`).
    enabled : whether compile was to run on this device (``auto`` is on for CUDA only).
    used : whether a compiled forward produced kept forecasts.
    fallback_reason : why the engine went back to eager, ``None`` while it has not.
    shape : ``(rows, context)`` the compiled forward last ran at (later calls reuse it).
    decided : whether the run compiles: ``on`` from the start, ``auto`` once a call earned it
        (:func:`compile_decision`; a later, bigger call may still decide to compile).
    decision : one line, why the latest call compiled or not.
    cache_dir : where inductor's cache lives (``None``: torch's default).
    """

    requested: str
    source: str
    enabled: bool
    backend: str
    mode: str | None
    used: bool = False
    fallback_reason: str | None = None
    compile_seconds: float = 0.0
    compilations: int = 0
    count_known: bool = True
    fn: Callable[..., Any] | None = None
    shape: tuple[int, int] | None = None
    decided: bool = False
    decision: str = ""
    cache_dir: Path | None = None
    cache_hits: int | None = 0
    cache_misses: int | None = 0

    @classmethod
    def resolve(cls, config: EngineConfig, device: torch.device) -> CompileState:
        """The state of ``config`` on ``device``."""
        enabled = config.compile == "on" or (config.compile == "auto" and device.type == "cuda")
        if config.compile == "on":
            decision = "on: requested"
        elif config.compile == "off":
            decision = "off: requested"
        else:
            decision = "auto: pending the first call" if enabled else f"auto: eager on {device.type}"
        return cls(
            requested=config.compile,
            source=config.compile_source,
            enabled=enabled,
            backend=config.compile_backend,
            mode=config.compile_mode,
            decided=config.compile == "on",
            decision=decision,
            cache_dir=config.cache_dir,
        )

    @property
    def active(self) -> bool:
        """Compile is on for this run (decided) and has not fallen back."""
        return self.enabled and self.decided and self.fallback_reason is None

    def preview(self, *, n_batches: int, flops_per_batch: float) -> tuple[bool, str]:
        """Whether a call of ``n_batches`` would run compiled, and why (changes nothing)."""
        if not self.enabled or self.fallback_reason is not None:
            return False, self.decision
        if self.decided:
            return True, self.decision
        return compile_decision(
            n_batches=n_batches, flops_per_batch=flops_per_batch, cache_warm=cache_is_warm(self.cache_dir)
        )

    def preview_call(
        self, model_config: Any, *, n_tasks: int, n_variates: int, series: int, tokens: int
    ) -> tuple[bool, str]:
        """:meth:`preview` for ``n_tasks`` tasks of ``n_variates`` at ``series`` per forward of ``tokens``."""
        tasks_per_batch = max(1, series // max(n_variates, 1))
        flops = batch_flops(
            series=tasks_per_batch * max(n_variates, 1),
            tokens=tokens,
            d_model=int(model_config.d_model),
            d_ff=int(model_config.d_ff),
            num_layers=int(model_config.num_layers),
        )
        return self.preview(n_batches=-(-n_tasks // tasks_per_batch), flops_per_batch=flops)

    def settle(self, compile_call: bool, reason: str) -> None:
        """Record the decision of a call (:meth:`preview`); once compiling, the run stays compiled."""
        if self.enabled and not self.decided and self.fallback_reason is None:
            self.decided, self.decision = compile_call, reason
            logger.info("torch.compile %s", reason)

    def forward(
        self,
        eager: Forward,
        context: torch.Tensor,
        group_ids: torch.Tensor,
        n_patches: int,
        future: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``eager(context, group_ids, n_patches[, future])`` through torch.compile (compiled on first use);
        ``future`` (known future covariates) is passed only when given."""
        import torch

        if self.fn is None:
            self.fn = _compile(eager, self.backend, self.mode)
        if self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        graphs_before, started, cache_before = graph_count(), time.perf_counter(), cache_counts()
        args = (context, group_ids, n_patches) if future is None else (context, group_ids, n_patches, future)
        with inductor_cache_dir(self.cache_dir):
            preds = self.fn(*args)
        graphs_after, cache_after = graph_count(), cache_counts()
        compiled_now = graphs_before is not None and graphs_after is not None and graphs_after > graphs_before
        if compiled_now and context.device.type == "cuda":
            torch.cuda.synchronize(context.device)  # the compile's seconds include its first run; later
            # batches are not waited for here (the engine overlaps the next batch's upload with them)
        if (
            cache_before is None
            or cache_after is None
            or self.cache_hits is None
            or self.cache_misses is None
        ):
            self.cache_hits = self.cache_misses = None
        else:
            self.cache_hits += cache_after[0] - cache_before[0]
            self.cache_misses += cache_after[1] - cache_before[1]
        if graphs_before is None or graphs_after is None:
            if self.count_known:
                logger.info("torch's dynamo counters cannot be read; compilations are not counted")
            self.count_known = False
        elif graphs_after > graphs_before:
            self.compilations += graphs_after - graphs_before
            self.compile_seconds += time.perf_counter() - started
            logger.info("compiled the forward pass for shape %s", tuple(context.shape))
        self.shape = (int(context.shape[0]), int(context.shape[1]))
        return preds.clone() if self.mode == "reduce-overhead" else preds

    def fall_back(self, reason: str) -> None:
        """Eager for the rest of the engine's life; one warning naming ``reason``."""
        self.fallback_reason = reason
        self.fn = None
        try:
            chronos_compat.dynamo_reset()
        except Exception:  # resetting is best effort; eager mode does not need it
            logger.debug("torch._dynamo.reset() failed", exc_info=True)
        logger.warning(
            "torch.compile failed (%s, backend %s); running eager for the rest of the run, "
            "finished batches kept",
            reason,
            self.backend,
        )

    def record(self) -> dict[str, Any]:
        """requested, source, enabled, decision, used, backend, mode, fallback_reason, compile_seconds,
        compilations, cache_dir, cache_hits, cache_misses (inductor's FX-graph cache; ``None``: not
        readable)."""
        return {
            "requested": self.requested,
            "source": self.source,
            "enabled": self.enabled,
            "decision": self.decision,
            "used": self.used,
            "backend": self.backend,
            "mode": self.mode,
            "fallback_reason": self.fallback_reason,
            "compile_seconds": round(self.compile_seconds, 3) if self.count_known else None,
            "compilations": self.compilations if self.count_known else None,
            "cache_dir": str(self.cache_dir) if self.cache_dir is not None else None,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
        }
