"""Which model the engine's forward runs: chronos' own, or views of it that compute less, once checked.

Two views share the loaded model's weights and are each compared with its full forward before use:

* the output-only last block (:mod:`chronobt.engine.views.lastblock`), once per number of output patches;
* block-diagonal group attention in every block (:mod:`chronobt.engine.views.group_attention`), composed
  with the
  output-only block when that passed, once per (output patches, variates);
* on top of that, on a CPU, encoder blocks run over cache-sized chunks of tasks
  (:mod:`chronobt.engine.views.task_chunks`), checked once per (output patches, variates).

Every check is :func:`chronobt.engine.views.check.check_view`. When chronos' private classes are missing
(:func:`chronobt.engine.chronos_compat.missing`) no view is built: each check records that reason and
the full forward runs.

:class:`ForwardViews` holds the checks and the views that passed; the engine asks it for the model of a
call (:meth:`ForwardViews.prepare`, then :meth:`ForwardViews.model_for`) and for its record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chronobt.engine import chronos_compat
from chronobt.engine.batching import Plan
from chronobt.engine.views.check import ViewCheck
from chronobt.engine.views.group_attention import prepare_block_diagonal, supports_block_diagonal
from chronobt.engine.views.lastblock import prepare_output_only, supports_output_only
from chronobt.engine.views.task_chunks import check_chunks, task_chunked_view

if TYPE_CHECKING:
    from chronobt.engine.views.verdicts import VerdictCache


class ForwardViews:
    """The checked views of one loaded ``Chronos2Model`` (see the module docstring).

    Attributes
    ----------
    output_only_layout, block_diagonal_layout, task_chunk_layout : whether the model has the layout each
        view relies on (tests and benchmarks turn them off to get chronos' own forward).
    compat_problem : why chronos' private classes cannot be used (``None``: they can).
    checks, views : output-only checks and passed views by number of output patches.
    group_checks, models : block-diagonal checks and passed (composed) views by (output patches, variates).
    key : (output patches, variates) of the current call.
    verdicts : the stored verdicts checks read and write (:mod:`chronobt.engine.views.verdicts`; ``None``:
        every check compares).
    chunk_checks : task-chunk checks by (output patches, variates); chunked : the views built after a
        passed check by (output patches, variates, tasks per chunk); ``chunk_key``: the current call's,
        ``None`` when it runs blocks over whole batches.
    """

    def __init__(self, model: Any, verdicts: VerdictCache | None = None) -> None:
        self.model = model
        self.verdicts = verdicts
        self.compat_problem = chronos_compat.missing()
        self.output_only_layout = supports_output_only(model)
        self.block_diagonal_layout = supports_block_diagonal(model)
        self.task_chunk_layout = self.block_diagonal_layout
        self.checks: dict[int, ViewCheck] = {}
        self.views: dict[int, Any] = {}
        self.group_checks: dict[tuple[int, int], ViewCheck] = {}
        self.models: dict[tuple[int, int], Any] = {}
        self.key: tuple[int, int] = (0, 0)
        self.chunk_checks: dict[tuple[int, int], ViewCheck] = {}
        self.chunked: dict[tuple[int, int, int], Any] = {}
        self.chunk_key: tuple[int, int, int] | None = None
        self.most_tasks_per_chunk: int | None = None

    @property
    def dense_groups(self) -> bool:
        """Whether group attention may run dense (no layout, or a check failed)."""
        return not self.block_diagonal_layout or any(not c.passed for c in self.group_checks.values())

    def prepare(self, plan: Plan) -> None:
        """Check the views for ``plan``'s output patches and variates once each; keep those that passed."""
        n = plan.output_patches
        if n not in self.checks:
            view, self.checks[n] = prepare_output_only(
                self.model,
                n,
                layout_ok=self.output_only_layout,
                n_variates=plan.n_variates,
                context_length=plan.context_length,
                problem=self.compat_problem,
                verdicts=self.verdicts,
            )
            if view is not None:
                self.views[n] = view
        key = self.key = (n, plan.n_variates)
        if key not in self.group_checks:
            model, self.group_checks[key] = prepare_block_diagonal(
                self.model,
                n_variates=plan.n_variates,
                n_out=n,
                output_only=n in self.views,
                layout_ok=self.block_diagonal_layout,
                context_length=plan.context_length,
                problem=self.compat_problem,
                verdicts=self.verdicts,
            )
            if model is not None:
                self.models[key] = model
        self.chunk_key = None
        per_chunk = plan.tasks_per_chunk
        if per_chunk is None or not self.task_chunk_layout or key not in self.models:
            return
        if key not in self.chunk_checks:
            self.chunk_checks[key] = check_chunks(
                self.model,
                self.models[key],
                n_variates=plan.n_variates,
                n_out=n,
                context_length=plan.context_length,
                output_only=n in self.views,
                verdicts=self.verdicts,
            )
        if self.chunk_checks[key].passed:
            chunk_key = self.chunk_key = (*key, per_chunk)
            if chunk_key not in self.chunked:
                self.chunked[chunk_key] = task_chunked_view(
                    self.models[key], n_variates=plan.n_variates, tasks_per_chunk=per_chunk
                )
            self.most_tasks_per_chunk = max(self.most_tasks_per_chunk or 0, per_chunk)

    def forget_call(self) -> None:
        """No view for the current call (chronos' long-horizon unrolling runs the full forward)."""
        self.key, self.chunk_key = (0, 0), None

    def model_for(self, num_output_patches: int) -> Any:
        """The model to run for the current call: the composed view, the output-only one, or chronos'."""
        model = self.chunked.get(self.chunk_key) if self.chunk_key is not None else None
        if model is None:
            model = self.models.get(self.key)
        if model is None or self.key[0] != num_output_patches:
            model = self.views.get(num_output_patches, self.model)
        return model

    def record(self) -> dict[str, Any]:
        """``output_only_last_block`` / ``block_diagonal_groups``: the layout is supported and no check
        failed; ``output_only_check`` / ``block_diagonal_check``: the first failed check, else the latest
        (``None`` before any); ``task_chunks``: the most tasks per chunk any call's encoder blocks ran
        over (``None``: every call ran whole batches), ``task_chunk_check`` as the others;
        ``view_checks``: :meth:`chronobt.engine.views.verdicts.VerdictCache.record` (``None``: none)."""
        out_failed = [c for c in self.checks.values() if not c.passed]
        group_failed = [c for c in self.group_checks.values() if not c.passed]
        chunk_failed = [c for c in self.chunk_checks.values() if not c.passed]
        out_latest = _first_or_last(out_failed, list(self.checks.values()))
        group_latest = _first_or_last(group_failed, list(self.group_checks.values()))
        chunk_latest = _first_or_last(chunk_failed, list(self.chunk_checks.values()))
        return {
            "output_only_last_block": self.output_only_layout and not out_failed,
            "output_only_check": out_latest.record() if out_latest is not None else None,
            "block_diagonal_groups": self.block_diagonal_layout and not group_failed,
            "block_diagonal_check": group_latest.record() if group_latest is not None else None,
            "task_chunks": self.most_tasks_per_chunk,
            "task_chunk_check": chunk_latest.record() if chunk_latest is not None else None,
            "view_checks": None if self.verdicts is None else self.verdicts.record(),
        }


def _first_or_last(failed: list[Any], every: list[Any]) -> Any:
    return failed[0] if failed else (every[-1] if every else None)
