"""Checked forward views: faster forwards of chronos' model, each compared with the full forward at run
time and used only when equal.

* :mod:`.check`: :func:`~.check.check_view` (the one comparison), :class:`~.check.ViewCheck` (its record),
  :func:`~.check.checked_view` (build, compare, log);
* :mod:`.lastblock`: the output-only last block;
* :mod:`.group_attention`: per-task (block-diagonal) group attention;
* :mod:`.task_chunks`: encoder blocks over cache-sized chunks of tasks (CPU);
* :mod:`.forward`: :class:`~.forward.ForwardViews`, the checks and passed views of one model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chronobt import _lazy

if TYPE_CHECKING:
    from chronobt.engine.views.check import ViewCheck, check_view, checked_view
    from chronobt.engine.views.forward import ForwardViews
    from chronobt.engine.views.group_attention import block_diagonal_view
    from chronobt.engine.views.lastblock import output_only_view
    from chronobt.engine.views.task_chunks import task_chunked_view

_EXPORTS = {
    "ForwardViews": ".forward",
    "ViewCheck": ".check",
    "block_diagonal_view": ".group_attention",
    "check_view": ".check",
    "checked_view": ".check",
    "output_only_view": ".lastblock",
    "task_chunked_view": ".task_chunks",
}

__all__ = [
    "ForwardViews",
    "ViewCheck",
    "block_diagonal_view",
    "check_view",
    "checked_view",
    "output_only_view",
    "task_chunked_view",
]


def __getattr__(name: str) -> Any:
    return _lazy.attribute(__name__, _EXPORTS, name)
