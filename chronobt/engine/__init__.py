"""The engine: everything between a batch of contexts and Chronos-2's raw quantiles.

Model resolution (:mod:`.models`), what is loaded (:mod:`.stack`: the plain-torch forward of
:mod:`.native` first, chronos' pipeline lazily), settings (:mod:`.config`), the batch plan (:mod:`.batching`,
:mod:`.cpu_sizing`), compile with eager fallback (:mod:`.compilation`), a call's batches (:mod:`.runner`),
CUDA staging (:mod:`.staging`), long horizons (:mod:`.unrolling`), the checked forward views
(:mod:`.views`), every touch of chronos' or torch's private internals (:mod:`.chronos_compat`), and
:class:`Chronos2Engine` (:mod:`.core`), which owns them all. Random checkpoints for tests and
benchmarks: :mod:`.checkpoints`; the CLI's opt-in allocator switch: :mod:`.allocator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chronobt import _lazy

if TYPE_CHECKING:
    from chronobt.engine.allocator import keep_freed_memory
    from chronobt.engine.batching import Plan
    from chronobt.engine.config import EngineConfig
    from chronobt.engine.core import Chronos2Engine, load_pipeline
    from chronobt.engine.models import ResolvedModel, resolve_model
    from chronobt.engine.runner import CallReport, Progress

_EXPORTS = {
    "CallReport": ".runner",
    "Chronos2Engine": ".core",
    "Plan": ".batching",
    "Progress": ".runner",
    "EngineConfig": ".config",
    "load_pipeline": ".core",
    "keep_freed_memory": ".allocator",
    "resolve_model": ".models",
    "ResolvedModel": ".models",
}

__all__ = [
    "CallReport",
    "Chronos2Engine",
    "EngineConfig",
    "Plan",
    "Progress",
    "ResolvedModel",
    "keep_freed_memory",
    "load_pipeline",
    "resolve_model",
]


def __getattr__(name: str) -> Any:
    return _lazy.attribute(__name__, _EXPORTS, name)
