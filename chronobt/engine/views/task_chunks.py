"""Encoder blocks run over cache-sized chunks of tasks within one forward pass (CPU).

With per-task group attention (:mod:`chronobt.engine.views.group_attention`) nothing in an encoder block
mixes two
tasks: time attention and the feed-forward layer work per series, group attention per task. A block
can therefore run over a few tasks at a time and give the same hidden states (to float rounding:
matrix products of other sizes may sum in another order). That matters on a CPU:
a 256-series forward of a 7M-parameter Chronos-2 at context 2048 holds ~34 MB per activation (137 MB
in the feed-forward layer), more than the last-level cache, and its element-wise operations (norms,
residual adds, the activation, rotary embeddings) then run at memory speed, several times slower
per series than in a 16-series forward (``benchmarks/RESULTS.md``, ``group_attention.py``).
:class:`TaskChunkedBlock` wraps one block and runs it over chunks of ``tasks_per_chunk`` tasks, so
the batch can grow (fewer, larger forwards) without a cost per window. A GPU wants its kernels
large: the engine chunks on the CPU only.

The wrapper relies on the block-diagonal view's mask layout (``[T, tasks, 1, 1, V]``, sliced by task)
and on chronos' block signature, so :func:`check_chunks` compares it with the full forward before use,
with one task per chunk on the two-task check batch so that the check runs more than one chunk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from chronobt.engine.views import lastblock
from chronobt.engine.views.check import ViewCheck, ViewKind, checked_view

if TYPE_CHECKING:
    from chronobt.engine.views.verdicts import VerdictCache

#: Task-chunked encoder blocks in records and logs (checked only where block-diagonal attention runs).
TASK_CHUNKS = ViewKind(
    name="task-chunked encoder blocks",
    instead="running blocks over whole batches",
    per="variates",
    layout="the encoder blocks are not block-diagonal views TaskChunkedBlock relies on",
    logger=__name__,
)


class TaskChunkedBlock(nn.Module):
    """An encoder block (shared, not copied) run over ``tasks_per_chunk`` tasks of ``n_variates`` at a time.

    Same signature as chronos' ``Chronos2EncoderBlock.forward``; ``group_time_mask`` must be the
    block-diagonal view's per-task mask. A batch of at most one chunk, or a call asking for attention
    weights, runs the block whole.
    """

    def __init__(self, block: nn.Module, *, n_variates: int, tasks_per_chunk: int) -> None:
        super().__init__()
        if n_variates < 1 or tasks_per_chunk < 1:
            raise ValueError(f"n_variates, tasks_per_chunk must be >= 1, got {n_variates}, {tasks_per_chunk}")
        self.block = block
        self.n_variates = n_variates
        self.tasks_per_chunk = tasks_per_chunk

    def forward(
        self,
        hidden_states: torch.Tensor,
        *,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        group_time_mask: torch.Tensor,
        output_attentions: bool = False,
    ) -> Any:
        batch = hidden_states.shape[0]
        rows = self.tasks_per_chunk * self.n_variates
        if batch <= rows or output_attentions:
            return self.block(
                hidden_states,
                position_ids=position_ids,
                attention_mask=attention_mask,
                group_time_mask=group_time_mask,
                output_attentions=output_attentions,
            )
        if batch % self.n_variates:
            raise ValueError(f"{batch} series are not whole tasks of {self.n_variates} variates")
        per_series = position_ids.shape[0] == batch
        out: torch.Tensor | None = None
        for start in range(0, batch, rows):
            stop = min(batch, start + rows)
            chunk = self.block(
                hidden_states[start:stop],
                position_ids=position_ids[start:stop] if per_series else position_ids,
                attention_mask=attention_mask[start:stop],
                group_time_mask=group_time_mask[:, start // self.n_variates : stop // self.n_variates],
            )[0]
            if out is None:  # the block may return fewer time positions (the output-only last block)
                out = chunk.new_empty((batch, *chunk.shape[1:]))
            out[start:stop] = chunk
        return (out,)


def task_chunked_view(model: Any, *, n_variates: int, tasks_per_chunk: int) -> Any:
    """``model`` (a block-diagonal view) with every encoder block run over chunks of tasks.

    A shallow copy: every parameter and buffer is shared with ``model``, which stays as it was.
    """
    blocks: list[nn.Module] = [
        TaskChunkedBlock(block, n_variates=n_variates, tasks_per_chunk=tasks_per_chunk)
        for block in model.encoder.block
    ]
    return lastblock.encoder_view(model, blocks)


def check_chunks(
    full: Any,
    block_diagonal: Any,
    *,
    n_variates: int,
    n_out: int,
    context_length: int,
    output_only: bool = True,
    verdicts: VerdictCache | None = None,
) -> ViewCheck:
    """Whether task-chunked blocks of the checked ``block_diagonal`` view match ``full``'s forward.

    Compared by :func:`chronobt.engine.views.check.check_view` with one task per chunk (the check batch's
    two tasks in two chunks): the chunk size is a loop bound, so one check serves every size. A view
    that cannot be built or raises fails the check. Logs one line: info when it passed, a warning when
    not. ``verdicts``: stored verdicts (:mod:`chronobt.engine.views.verdicts`), keyed also by
    ``output_only`` (whether ``block_diagonal`` is composed with the output-only last block).
    """
    _, check = checked_view(
        TASK_CHUNKS,
        full,
        lambda: task_chunked_view(block_diagonal, n_variates=n_variates, tasks_per_chunk=1),
        n_out=n_out,
        n_variates=n_variates,
        context_length=context_length,
        verdicts=verdicts,
        params={"output_only": output_only, "tasks_per_chunk": 1},
    )
    return check
