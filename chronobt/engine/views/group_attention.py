"""Chronos-2's group attention computed per task (block-diagonal) instead of across the whole batch.

In every encoder block, Chronos-2's group attention lets each series attend, at one time position, to
every series of the batch; a ``[batch, batch]`` group mask (built from ``group_ids``) then removes the
pairs from different groups. Its cost per series therefore grows with the series per forward. The
engine's ``group_ids`` are ``arange(tasks).repeat_interleave(variates)``: task ``i``'s variates are rows
``i * V .. i * V + V - 1`` and no other pair may see each other. :class:`BlockDiagonalGroupAttention`
reshapes the hidden states ``[tasks * V, T, d]`` to ``[T * tasks, V, d]`` and attends over the ``V``
variates only, with the same keys masked (a key is masked where its token is, as in chronos' mask).
The result equals the dense computation to float rounding for every token that is observed; tokens
that are masked in time (never read by an observed token) may differ.

:func:`block_diagonal_view` builds a view of a loaded ``Chronos2Model`` that shares every parameter and
replaces the group attention of every block; the view's encoder builds the small per-task mask
``[T, tasks, 1, 1, V]`` instead of chronos' ``[T, 1, batch, batch]`` one (time first, so the output-only
last block of :mod:`chronobt.engine.views.lastblock` slices it the same way). The view reads private chronos
attributes (:mod:`chronobt.engine.chronos_compat`), so it is guarded like the output-only block:
:func:`supports_block_diagonal` checks the layout by types and names, and the engine compares the view
with the full forward once per number of variates and output patches
(:func:`chronobt.engine.views.check.check_view`, same tolerance) and records it.
The view is valid only for the engine's contiguous ``group_ids`` layout; the engine is its only caller.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from chronobt.engine import chronos_compat
from chronobt.engine.views.check import ViewCheck, ViewKind, checked_view
from chronobt.engine.views.lastblock import encoder_view, output_only_view

if TYPE_CHECKING:
    from chronobt.engine.views.verdicts import VerdictCache

#: Block-diagonal group attention in records and logs.
BLOCK_DIAGONAL = ViewKind(
    name="block-diagonal group attention",
    instead="running dense group attention",
    per="variates",
    layout="the encoder blocks do not have the group-attention layout BlockDiagonalGroupAttention relies on",
    logger=__name__,
)


def supports_block_diagonal(model: Any) -> bool:
    """Whether every encoder block of ``model`` has the group-attention layout the view relies on."""
    try:
        internals = chronos_compat.load()
        encoder = model.encoder
        blocks = list(encoder.block)
        groups = [block.layer[1] for block in blocks]
    except (chronos_compat.MissingInternal, AttributeError, TypeError, IndexError):
        return False
    return (
        bool(blocks)
        and callable(chronos_compat.group_mask_method(encoder))
        and all(type(block) is internals.encoder_block for block in blocks)
        and all(type(g) is internals.group_attention for g in groups)
        and all(type(g.self_attention) is internals.mha and not g.self_attention.use_rope for g in groups)
        and all(hasattr(g, "layer_norm") for g in groups)
    )


def per_task_mask(
    group_ids: torch.Tensor, attention_mask: torch.Tensor, floating_type: torch.dtype, *, n_variates: int
) -> torch.Tensor:
    """Additive group mask ``[T, tasks, 1, 1, V]``: 0 where the key's token is observed, else the dtype's min.

    Stands in for chronos' ``_construct_and_invert_group_time_mask`` (same arguments; ``group_ids`` must
    be ``arange(tasks).repeat_interleave(n_variates)``, only its length is read).

    Parameters
    ----------
    group_ids : ``[batch]``, ``batch = tasks * n_variates``.
    attention_mask : ``[batch, T]``, 1 for observed tokens.
    floating_type : the hidden states' dtype (the mask's own when it is floating, as in chronos).
    """
    batch, length = attention_mask.shape
    if group_ids.shape[0] != batch or batch % n_variates:
        raise ValueError(f"{batch} series are not whole tasks of {n_variates} variates")
    if torch.is_floating_point(attention_mask):
        floating_type = attention_mask.dtype
    observed = attention_mask.to(floating_type).view(batch // n_variates, n_variates, length)
    mask = (1.0 - observed.permute(2, 0, 1)) * torch.finfo(floating_type).min  # [T, tasks, V]
    return mask[:, :, None, None, :]


class BlockDiagonalGroupAttention(nn.Module):
    """A ``GroupSelfAttention`` (shared, not copied) attending over each task's variates only.

    ``forward(hidden_states [tasks * V, T, d], attention_mask [T, tasks, 1, 1, V])`` returns what the
    dense layer returns for the observed tokens. Inference only (dropout is skipped).
    """

    def __init__(self, group_attn: nn.Module, n_variates: int) -> None:
        super().__init__()
        if n_variates < 1:
            raise ValueError(f"n_variates must be >= 1, got {n_variates}")
        self.group_attn = group_attn
        self.n_variates = n_variates
        self._output_type = chronos_compat.load().attention_output  # chronos' private output class

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, output_attentions: bool = False
    ) -> Any:
        layer: Any = self.group_attn
        batch, length, d_model = hidden_states.shape
        n_v = self.n_variates
        tasks = batch // n_v
        by_time = hidden_states.transpose(0, 1).reshape(length * tasks, n_v, d_model)  # [T*tasks, V, d]
        mask = attention_mask.reshape(length * tasks, 1, 1, n_v)
        attended = layer.self_attention(
            layer.layer_norm(by_time), mask=mask, output_attentions=output_attentions
        )
        mixed = by_time + attended[0]
        out = mixed.view(length, batch, d_model).transpose(0, 1)
        return self._output_type(hidden_states=out, attn_weights=attended.attn_weights)


def block_diagonal_view(model: Any, n_variates: int) -> Any:
    """``model`` with per-task group attention in every block, for tasks of ``n_variates`` series.

    A shallow copy: every parameter and buffer is shared with ``model``, which stays as it was.
    """
    encoder = model.encoder
    blocks = []
    for block in encoder.block:
        view_block = chronos_compat.shallow_copy(block)
        time_attn, group_attn, feed_forward = block.layer
        view_block.layer = nn.ModuleList(
            [time_attn, BlockDiagonalGroupAttention(group_attn, n_variates), feed_forward]
        )
        blocks.append(view_block)
    view = encoder_view(model, blocks)
    chronos_compat.set_group_mask(view.encoder, functools.partial(per_task_mask, n_variates=n_variates))
    return view


def prepare_block_diagonal(
    model: Any,
    *,
    n_variates: int,
    n_out: int,
    output_only: bool,
    layout_ok: bool,
    context_length: int,
    problem: str | None = None,
    verdicts: VerdictCache | None = None,
) -> tuple[Any | None, ViewCheck]:
    """The block-diagonal view (composed with the output-only last block when ``output_only``) if it
    passes the check against ``model``'s full forward, and the check
    (:func:`chronobt.engine.views.check.checked_view`; ``layout_ok`` is :func:`supports_block_diagonal`;
    ``verdicts``: stored verdicts, :mod:`chronobt.engine.views.verdicts`)."""

    def build() -> Any:
        view = block_diagonal_view(model, n_variates)
        return output_only_view(view, n_out) if output_only else view

    return checked_view(
        BLOCK_DIAGONAL,
        model,
        build,
        n_out=n_out,
        n_variates=n_variates,
        context_length=context_length,
        layout_ok=layout_ok,
        problem=problem,
        verdicts=verdicts,
        params={"output_only": output_only},
    )
