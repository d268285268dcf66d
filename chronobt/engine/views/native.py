"""The native forward, checked like every view: equal to chronos' full forward before the engine runs it.

:class:`NativeForward` holds :class:`~chronobt.engine.native.model.NativeChronos2` and a loader of
chronos' own model, and checks the native forward per (output patches, variates) with
:func:`chronobt.engine.views.check.checked_view` (blocks over one task per chunk, so the chunked path runs
too). A verdict stored under the same key (weights checksum, chronos, transformers, torch and chronobt
versions, the source digest, device, dtype, shape; :mod:`chronobt.engine.views.verdicts`) is reused
without loading chronos at all: that is what makes a repeated run skip chronos' and transformers' imports.
A new key, or no cache folder, loads chronos' model (once per engine) and compares. A failed check runs
chronos' forward with its own checked views for that shape, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chronobt.engine.views.check import ViewCheck, ViewKind, checked_view

if TYPE_CHECKING:
    import torch

    from chronobt.engine.native.config import NativeOutput
    from chronobt.engine.native.model import NativeChronos2
    from chronobt.engine.views.verdicts import VerdictCache

__all__ = ["NATIVE", "LazyModel", "NativeForward"]

#: The native forward in records and logs.
NATIVE = ViewKind(
    name="native forward",
    instead="running chronos' forward",
    per="variates",
    layout="no native model",
    logger=__name__,
)


class LazyModel:
    """chronos' model as :func:`~chronobt.engine.views.check.check_view` calls it, loaded on first use."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load

    def parameters(self) -> Any:
        return self._load().parameters()

    def __call__(self, **kwargs: Any) -> Any:
        return self._load()(**kwargs)


class NativeForward:
    """The native model, its checks by (output patches, variates), and the calls that ran it.

    Parameters
    ----------
    native : the loaded native model (``None``: unavailable, ``problem`` says why).
    load_full : returns chronos' model, loading it on the first call (the engine's lazy pipeline).
    verdicts : stored verdicts (``None``: every check compares).
    problem : why there is no native model (recorded).
    """

    def __init__(
        self,
        native: NativeChronos2 | None,
        load_full: Callable[[], Any],
        verdicts: VerdictCache | None,
        problem: str | None = None,
    ) -> None:
        self.native = native
        self.full = LazyModel(load_full)
        self.verdicts = verdicts
        self.problem = problem
        self.checks: dict[tuple[int, int], ViewCheck] = {}
        #: engine calls that ran the native forward (the engine counts them)
        self.calls = 0

    def usable(self, n_out: int, n_variates: int, context_length: int) -> bool:
        """Whether the native forward may run for this shape (checks it once per engine)."""
        if self.native is None:
            return False  # nothing to check: ``native_problem`` says why
        key = (n_out, n_variates)
        if key not in self.checks:
            native = self.native
            _, self.checks[key] = checked_view(
                NATIVE,
                self.full,
                lambda: functools.partial(_run, native, n_variates=n_variates, tasks_per_chunk=1),
                n_out=n_out,
                n_variates=n_variates,
                context_length=context_length,
                problem=None,
                verdicts=self.verdicts,
                params={"tasks_per_chunk": 1},
            )
        return self.checks[key].passed

    def __call__(
        self,
        context: torch.Tensor,
        group_ids: torch.Tensor,
        num_output_patches: int,
        future_covariates: torch.Tensor | None,
        *,
        n_variates: int,
        tasks_per_chunk: int | None,
    ) -> torch.Tensor:
        """One batch through the native model -> ``quantile_preds``."""
        return _run(
            self.native,
            context=context,
            group_ids=group_ids,
            num_output_patches=num_output_patches,
            future_covariates=future_covariates,
            n_variates=n_variates,
            tasks_per_chunk=tasks_per_chunk,
        ).quantile_preds

    def record(self) -> dict[str, Any]:
        """``native_forward``: batches ran on it; ``native_check``: the first failed check, else the
        latest (``None`` before any); ``native_problem``: why there is no native model (``None``: loaded)."""
        failed = [c for c in self.checks.values() if not c.passed]
        every = list(self.checks.values())
        latest = failed[0] if failed else (every[-1] if every else None)
        return {
            "native_forward": self.calls > 0,
            "native_check": None if latest is None else latest.record(),
            "native_problem": self.problem,
        }


def _run(native: NativeChronos2 | None, **kwargs: Any) -> NativeOutput:
    if native is None:
        raise RuntimeError("no native model")
    return native(**kwargs)
