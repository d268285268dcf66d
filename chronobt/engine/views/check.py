"""The one run-time check every view passes before the engine runs it: equal to the full forward.

A view (:mod:`chronobt.engine.views.lastblock`, :mod:`~chronobt.engine.views.group_attention`,
:mod:`~chronobt.engine.views.task_chunks`) reads private chronos attributes
(:mod:`chronobt.engine.chronos_compat`), so names and types are not enough: :func:`check_view` runs the
view and the model's own full forward on a small deterministic batch (:func:`check_inputs`) and accepts
the view only when their quantile forecasts agree within :data:`CHECK_RTOL`. :func:`checked_view` wraps
that for the engine: no comparison when the model lacks the view's layout, a view that cannot be built
fails the check like one that raises, and one log line says which way it went. The outcome is a
:class:`ViewCheck`, the record the engine writes to its manifest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from chronobt.errors import first_line

if TYPE_CHECKING:
    from chronobt.engine.views.verdicts import VerdictCache

#: Largest difference the check accepts: ``rtol * (1 + max |full forward|)``, by weight dtype. float32
#: differs only by float rounding (order of summation in smaller matrix products); bfloat16 rounds every
#: product to 8 significant bits, so its two paths differ by a few bf16 steps of the output scale.
CHECK_RTOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2}
#: Tasks and the longest context of the check batch (the views' layouts do not depend on the length).
CHECK_TASKS = 2
CHECK_MAX_CONTEXT = 256


@dataclass(frozen=True)
class ViewCheck:
    """One view against the full forward on the check batch.

    Attributes
    ----------
    num_output_patches : output patches both forwards computed.
    passed : whether the engine may use the view.
    max_abs_diff : largest absolute difference of the quantile forecasts (``inf`` when their non-finite
        entries differ; ``None`` when the view could not run or was not compared).
    tolerance : the largest difference accepted, ``CHECK_RTOL[dtype] * (1 + max |full|)``.
    reason : one line: why the view is used or not.
    n_variates : the variates it was checked for; ``None`` for a view checked per output patches only
        (the output-only last block), whose record then has no ``n_variates``.
    reused : the verdict was read from the cache folder, stored by an earlier run with the same key
        (:mod:`chronobt.engine.views.verdicts`), instead of comparing again.
    """

    num_output_patches: int
    passed: bool
    max_abs_diff: float | None
    tolerance: float | None
    reason: str
    n_variates: int | None = None
    reused: bool = False

    def record(self) -> dict[str, Any]:
        """The manifest's fields: ``n_variates`` (when set) first, then the others in declared order."""
        head = {} if self.n_variates is None else {"n_variates": self.n_variates}
        return head | {
            "num_output_patches": self.num_output_patches,
            "passed": self.passed,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "reason": self.reason,
            "reused": self.reused,
        }


@dataclass(frozen=True)
class ViewKind:
    """What a view is called in records and logs.

    Attributes
    ----------
    name : e.g. ``"output-only last block"``.
    instead : what runs when the check fails, e.g. ``"running the full forward"``.
    per : ``"output patches"`` or ``"variates"``: what the passed log line counts, and whether the
        record keeps ``n_variates`` (``"variates"``).
    layout : the reason recorded when the model lacks the view's layout.
    logger : the logger its lines go to (the view's module).
    """

    name: str
    instead: str
    per: str
    layout: str
    logger: str = __name__

    @property
    def per_variates(self) -> bool:
        return self.per == "variates"


def check_inputs(
    n_variates: int, context_length: int, *, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic check batch: ``CHECK_TASKS`` tasks of random walks, the first one NaN-padded.

    Returns
    -------
    context : float32 ``[CHECK_TASKS * n_variates, min(context_length, CHECK_MAX_CONTEXT)]``.
    group_ids : int64 ``[CHECK_TASKS * n_variates]``, one group per task.
    """
    length = max(1, min(context_length, CHECK_MAX_CONTEXT))
    gen = torch.Generator().manual_seed(0)
    rows = CHECK_TASKS * n_variates
    context = 100.0 + torch.randn(rows, length, generator=gen).cumsum(-1)
    context[:n_variates, : length // 2] = torch.nan  # a shorter first task (left padding)
    group_ids = torch.arange(CHECK_TASKS).repeat_interleave(n_variates)
    return context.to(device), group_ids.to(device)


def check_view(full: Any, candidate: Any, *, n_out: int, n_variates: int, context_length: int) -> ViewCheck:
    """Compare ``candidate`` with ``full``'s own forward on :func:`check_inputs` (eager, no gradients).

    Both are called as chronos' ``Chronos2Model`` is (``context``, ``group_ids``, ``num_output_patches``)
    and compared on ``quantile_preds``. Any exception from ``candidate`` fails the check (its type and
    first line become the reason); an exception from ``full`` propagates, since the engine could not run
    without it either.
    """
    device = next(full.parameters()).device
    dtype = next(full.parameters()).dtype
    context, group_ids = check_inputs(n_variates, context_length, device=device)
    with torch.inference_mode():
        reference = full(context=context, group_ids=group_ids, num_output_patches=n_out).quantile_preds
        try:
            fast = candidate(context=context, group_ids=group_ids, num_output_patches=n_out).quantile_preds
        except Exception as exc:
            reason = f"the view raised {type(exc).__name__}: {first_line(exc, limit=200)}"
            return ViewCheck(n_out, False, None, None, reason, n_variates)
    reference, fast = reference.float(), fast.float()
    finite = torch.isfinite(reference)
    scale = float(reference[finite].abs().max()) if bool(finite.any()) else 0.0
    tolerance = CHECK_RTOL.get(dtype, CHECK_RTOL[torch.bfloat16]) * (1.0 + scale)
    if fast.shape != reference.shape or not torch.equal(finite, torch.isfinite(fast)):
        diff = math.inf
    else:
        diff = float((fast[finite] - reference[finite]).abs().max()) if bool(finite.any()) else 0.0
    if diff <= tolerance:
        reason = f"equal to the full forward within {tolerance:.3g} (largest difference {diff:.3g})"
        return ViewCheck(n_out, True, diff, tolerance, reason, n_variates)
    reason = f"differs from the full forward by {diff:.3g} > tolerance {tolerance:.3g}"
    return ViewCheck(n_out, False, diff, tolerance, reason, n_variates)


def unsupported(kind: ViewKind, *, n_out: int, n_variates: int, problem: str | None = None) -> ViewCheck:
    """The record for a model without ``kind``'s layout (nothing compared); ``problem``: a missing
    private chronos name (:func:`chronobt.engine.chronos_compat.missing`), else the layout reason."""
    reason = kind.layout if problem is None else f"chronos internals changed: {problem}"
    return ViewCheck(n_out, False, None, None, reason, n_variates if kind.per_variates else None)


def checked_view(
    kind: ViewKind,
    full: Any,
    build: Callable[[], Any],
    *,
    n_out: int,
    n_variates: int,
    context_length: int,
    layout_ok: bool = True,
    problem: str | None = None,
    verdicts: VerdictCache | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[Any | None, ViewCheck]:
    """``build()``'s view if it passes :func:`check_view` against ``full``, and the check.

    ``layout_ok``: the model has the view's layout (otherwise nothing is built or compared; ``problem``
    says why when chronos internals are missing). A view that cannot be built fails the check like one
    that raises. ``verdicts``: the stored verdicts (:mod:`chronobt.engine.views.verdicts`); a verdict
    stored under this check's key (the view's name, ``n_out``, ``n_variates``, the check batch's shape
    and ``params``) is reused instead of comparing, a new one is stored. Logs one line: info when the
    view is used or the layout is not supported, a warning when the check failed.
    """
    log = logging.getLogger(kind.logger)
    if not layout_ok or problem is not None:
        check = unsupported(kind, n_out=n_out, n_variates=n_variates, problem=problem)
        log.info("%s: %s; %s", kind.name, check.reason, kind.instead)
        return None, check
    built = True
    try:
        view = build()
    except Exception as exc:  # private chronos attributes: a failed check, never a failed run
        error, built = exc, False

        def view(**_: Any) -> Any:
            raise error

    stored: ViewCheck | None = None
    if verdicts is not None:
        shape = (CHECK_TASKS * n_variates, max(1, min(context_length, CHECK_MAX_CONTEXT)))
        key = verdicts.key(kind.name, n_out=n_out, n_variates=n_variates, shape=shape, **(params or {}))
        stored = verdicts.load(key)
        if stored is not None and stored.passed and not built:
            stored = None  # the stored verdict passed, but the view cannot be built now: compare again
    if stored is not None:
        check = stored
    else:
        check = check_view(full, view, n_out=n_out, n_variates=n_variates, context_length=context_length)
        if verdicts is not None:
            verdicts.save(key, check)
    if not kind.per_variates:
        check = replace(check, n_variates=None)
    reused = " (verdict stored by an earlier run)" if check.reused else ""
    if check.passed:
        count = n_variates if kind.per_variates else n_out
        log.info("%s for %d %s: %s%s", kind.name, count, kind.per, check.reason, reused)
        return view, check
    log.warning("%s: %s%s; %s", kind.name, check.reason, reused, kind.instead)
    return None, check
