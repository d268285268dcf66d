"""The engine's torch.compile state: whether to compile, the compiled forward, the eager fallback.

The forward is wrapped by ``torch.compile(dynamic=False)``; the engine's fixed shapes mean one
compilation per call shape. Any exception from the compiled forward (or non-finite output from inputs
without infinities, which the engine checks) ends compilation for the rest of the engine's life: one
warning, ``fallback_reason`` recorded, the batch re-run eager.

Compilations are counted with dynamo's private counters (``torch._dynamo.utils.counters``); when they
cannot be read the count is recorded as unknown (``None``), never as a compile failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chronobt.engine_config import EngineConfig

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

Forward = Callable[..., "torch.Tensor"]  # (context, group_ids, n_patches, future_covariates or None)


def _compile(fn: Callable[..., Any], backend: str, mode: str | None) -> Callable[..., Any]:
    """``torch.compile`` with static shapes (module-level so tests can substitute a failing module)."""
    import torch

    return torch.compile(fn, backend=backend, mode=mode, dynamic=False)


def graph_count() -> int | None:
    """Graphs dynamo has compiled so far, from its private counters; ``None`` when they cannot be read."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:  # a private torch API: an unknown count, never a compile failure
        return None


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

    @classmethod
    def resolve(cls, config: EngineConfig, device: torch.device) -> CompileState:
        """The state of ``config`` on ``device``."""
        enabled = config.compile == "on" or (config.compile == "auto" and device.type == "cuda")
        return cls(
            requested=config.compile,
            source=config.compile_source,
            enabled=enabled,
            backend=config.compile_backend,
            mode=config.compile_mode,
        )

    @property
    def active(self) -> bool:
        """Compile is on and has not fallen back."""
        return self.enabled and self.fallback_reason is None

    def forward(
        self,
        eager: Forward,
        context: torch.Tensor,
        group_ids: torch.Tensor,
        n_patches: int,
        future: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``eager(context, group_ids, n_patches, future)`` through torch.compile (compiled on first use)."""
        import torch

        if self.fn is None:
            self.fn = _compile(eager, self.backend, self.mode)
        if self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        graphs_before, started = graph_count(), time.perf_counter()
        args = (context, group_ids, n_patches) if future is None else (context, group_ids, n_patches, future)
        preds = self.fn(*args)
        if context.device.type == "cuda":
            torch.cuda.synchronize(context.device)
        graphs_after = graph_count()
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
        import torch

        self.fallback_reason = reason
        self.fn = None
        try:
            torch._dynamo.reset()
        except Exception:  # resetting is best effort; eager mode does not need it
            logger.debug("torch._dynamo.reset() failed", exc_info=True)
        logger.warning(
            "torch.compile failed (%s, backend %s); running eager for the rest of the run, "
            "finished batches kept",
            reason,
            self.backend,
        )

    def record(self) -> dict[str, Any]:
        """requested, source, enabled, used, backend, mode, fallback_reason, compile_seconds, compilations."""
        return {
            "requested": self.requested,
            "source": self.source,
            "enabled": self.enabled,
            "used": self.used,
            "backend": self.backend,
            "mode": self.mode,
            "fallback_reason": self.fallback_reason,
            "compile_seconds": round(self.compile_seconds, 3) if self.count_known else None,
            "compilations": self.compilations if self.count_known else None,
        }
