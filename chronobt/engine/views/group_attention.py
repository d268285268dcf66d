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
attributes, so it is guarded like the output-only block: :func:`supports_block_diagonal` checks the
layout by types and names, and the engine compares the view with the full forward once per number of
variates and output patches (:func:`chronobt.engine.views.lastblock.check_output_only`, same tolerance) and
records it.
The view is valid only for the engine's contiguous ``group_ids`` layout; the engine is its only caller.
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch
from chronos.chronos2.layers import AttentionOutput
from torch import nn

from chronobt.engine.views.lastblock import encoder_view

logger = logging.getLogger(__name__)

#: The encoder method the view overrides (chronos builds the dense group mask there).
_MASK_METHOD = "_construct_and_invert_group_time_mask"


def supports_block_diagonal(model: Any) -> bool:
    """Whether every encoder block of ``model`` has the group-attention layout the view relies on."""
    try:
        from chronos.chronos2.layers import MHA, GroupSelfAttention
        from chronos.chronos2.model import Chronos2EncoderBlock

        encoder = model.encoder
        blocks = list(encoder.block)
        groups = [block.layer[1] for block in blocks]
    except (ImportError, AttributeError, TypeError, IndexError):
        return False
    return (
        bool(blocks)
        and callable(getattr(encoder, _MASK_METHOD, None))
        and all(type(block) is Chronos2EncoderBlock for block in blocks)
        and all(type(g) is GroupSelfAttention for g in groups)
        and all(type(g.self_attention) is MHA and not g.self_attention.use_rope for g in groups)
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

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor, output_attentions: bool = False
    ) -> AttentionOutput:
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
        return AttentionOutput(hidden_states=out, attn_weights=attended.attn_weights)


def block_diagonal_view(model: Any, n_variates: int) -> Any:
    """``model`` with per-task group attention in every block, for tasks of ``n_variates`` series.

    A shallow copy: every parameter and buffer is shared with ``model``, which stays as it was.
    """
    encoder = model.encoder
    blocks = []
    for block in encoder.block:
        view_block = copy.copy(block)
        view_block._modules = dict(block._modules)
        time_attn, group_attn, feed_forward = block.layer
        view_block.layer = nn.ModuleList(
            [time_attn, BlockDiagonalGroupAttention(group_attn, n_variates), feed_forward]
        )
        blocks.append(view_block)
    return encoder_view(
        model, blocks, **{_MASK_METHOD: functools.partial(per_task_mask, n_variates=n_variates)}
    )


@dataclass(frozen=True)
class ViewCheck:
    """A view for tasks of ``n_variates`` against the full forward: the block-diagonal one (with the
    output-only last block when that is used), or its task-chunked blocks
    (:mod:`chronobt.engine.views.task_chunks`).

    Attributes
    ----------
    n_variates, num_output_patches : the shape it was checked for.
    passed : whether the engine may use the view.
    max_abs_diff, tolerance, reason : as in :class:`chronobt.engine.views.lastblock.OutputOnlyCheck`.
    """

    n_variates: int
    num_output_patches: int
    passed: bool
    max_abs_diff: float | None
    tolerance: float | None
    reason: str

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, n_variates: int, n_out: int, compared: Any) -> ViewCheck:
        """The check from :func:`chronobt.engine.views.lastblock.check_output_only`'s comparison."""
        return cls(
            n_variates, n_out, compared.passed, compared.max_abs_diff, compared.tolerance, compared.reason
        )


def unsupported_check(n_variates: int, n_out: int) -> ViewCheck:
    """The record for a model whose blocks have another layout (no comparison is run)."""
    reason = "the encoder blocks do not have the group-attention layout BlockDiagonalGroupAttention relies on"
    return ViewCheck(n_variates, n_out, False, None, None, reason)


def prepare_view(
    model: Any, *, n_variates: int, n_out: int, output_only: bool, layout_ok: bool, context_length: int
) -> tuple[Any | None, ViewCheck]:
    """The block-diagonal view (composed with the output-only last block when ``output_only``) if it passes.

    Compared with ``model``'s full forward by :func:`chronobt.engine.views.lastblock.check_output_only` on
    its check
    batch (two tasks, one left-padded). ``layout_ok`` is :func:`supports_block_diagonal` of ``model``;
    without it nothing is compared. A view that cannot be built fails the check like one that raises.
    Logs one line: info when the view is used or the layout is not supported, a warning when it failed.
    """
    from chronobt.engine.views import lastblock

    if not layout_ok:
        check = unsupported_check(n_variates, n_out)
        logger.info("block-diagonal group attention: %s; running dense group attention", check.reason)
        return None, check
    try:
        view = block_diagonal_view(model, n_variates)
        if output_only:
            view = lastblock.output_only_view(view, n_out)
    except Exception as exc:  # private chronos attributes: a failed check, never a failed run
        error = exc

        def view(**_: Any) -> Any:
            raise error

    compared = lastblock.check_output_only(
        model, view, n_out=n_out, n_variates=n_variates, context_length=context_length
    )
    check = ViewCheck.of(n_variates, n_out, compared)
    if check.passed:
        logger.info("block-diagonal group attention for %d variates: %s", n_variates, check.reason)
        return view, check
    logger.warning("block-diagonal group attention: %s; running dense group attention", check.reason)
    return None, check
