"""Chronos-2's last encoder block, computed for the forecast tokens only.

Chronos-2 reads its forecast from the hidden states of the last ``num_output_patches`` tokens (the future
patches after the context patches and the [REG] token). In every block but the last, every token feeds
the next block's time attention, so all of them are needed. In the last block only the forecast tokens
reach the output head: their time-attention queries, their group attention (which works per time
position) and their feed-forward are all that matter. Keys and values still come from every token.

At context 2048 (128 context patches) and a 24-step horizon (2 output patches) that skips all but
2 of 131 tokens in the last block's queries, group attention and feed-forward: about 7/8 of one block's
matrix multiplications, one sixth of that for a six-layer model. The result is the same computation on
fewer rows; it equals the full forward to float rounding (tests compare both). Speed-ups measured with
``benchmarks/last_block.py`` are in ``benchmarks/RESULTS.md``.

:func:`output_only_view` builds a view of a loaded ``Chronos2Model`` that shares its parameters and
swaps in :class:`OutputOnlyBlock`; the original model (and the pipeline that owns it) is untouched.
The view reads private chronos attributes (through :mod:`chronobt.engine.chronos_compat`), so it is
guarded twice: :func:`supports_output_only` checks the block layout by type and attribute names, and
:func:`chronobt.engine.views.check.check_view` compares the view with the model's own full forward on a
small batch. The engine runs the view only when both pass (once per model and number of output patches)
and records the check; otherwise it runs the full forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from chronobt.engine import chronos_compat
from chronobt.engine.views.check import ViewCheck, ViewKind, checked_view

if TYPE_CHECKING:
    from chronobt.engine.views.verdicts import VerdictCache

#: The output-only last block in records and logs.
OUTPUT_ONLY = ViewKind(
    name="output-only last block",
    instead="running the full forward",
    per="output patches",
    layout="the last encoder block does not have the layout OutputOnlyBlock relies on",
    logger=__name__,
)


def supports_output_only(model: Any) -> bool:
    """Whether ``model``'s last encoder block has the layout :class:`OutputOnlyBlock` relies on."""
    if chronos_compat.missing() is not None:
        return False
    try:
        internals = chronos_compat.load()
        time_attn, group_attn, feed_forward = model.encoder.block[-1].layer
        time_mha, group_mha = time_attn.self_attention, group_attn.self_attention
    except (chronos_compat.MissingInternal, AttributeError, TypeError, ValueError, IndexError):
        return False
    return (
        type(time_attn) is internals.time_attention
        and type(group_attn) is internals.group_attention
        and type(feed_forward) is internals.feed_forward
        and type(time_mha) is internals.mha
        and type(group_mha) is internals.mha
        and bool(time_mha.use_rope)
        and isinstance(getattr(time_mha, "rope_embed", None), internals.rotary)
        and not group_mha.use_rope
        and chronos_compat.has_attention_methods(time_mha)
    )


class OutputOnlyBlock(nn.Module):
    """An encoder block (shared, not copied) that updates only the last ``n_out`` tokens.

    The other tokens come back unchanged: the model reads only the last ``n_out`` after this block.
    Inference only (dropout is skipped; the engine runs the model in eval mode).
    """

    def __init__(self, block: nn.Module, n_out: int) -> None:
        super().__init__()
        if n_out < 1:
            raise ValueError(f"n_out must be >= 1, got {n_out}")
        self.block = block
        self.n_out = n_out
        internals = chronos_compat.load()  # chronos' private classes, looked up once per view
        self._output_type = internals.block_output
        self._rotary = internals.rotary

    def forward(
        self,
        hidden_states: torch.Tensor,
        *,
        position_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        group_time_mask: torch.Tensor,
        output_attentions: bool = False,
    ) -> Any:
        if output_attentions:
            return self.block(
                hidden_states,
                position_ids=position_ids,
                attention_mask=attention_mask,
                group_time_mask=group_time_mask,
                output_attentions=True,
            )
        n = self.n_out
        layers: Any = self.block.layer
        time_attn, group_attn, feed_forward = layers
        attended = self._time_attention(time_attn, hidden_states, position_ids, attention_mask)
        tail = hidden_states[:, -n:] + attended
        # group attention works one time position at a time: only the last n positions (the group layer's
        # own forward, so a block-diagonal one from chronobt.engine.views.group_attention composes; both
        # masks are
        # time-first)
        tail = group_attn(tail, attention_mask=group_time_mask[-n:])[0]
        tail = feed_forward(tail)
        out = torch.cat([hidden_states[:, :-n], tail], dim=1)
        return self._output_type(hidden_states=out)

    def _time_attention(
        self, time_attn: Any, hidden: torch.Tensor, position_ids: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Time self-attention output for the last ``n_out`` tokens (queries), over every token (keys)."""
        mha = time_attn.self_attention
        n, heads, d_kv = self.n_out, mha.n_heads, mha.kv_proj_dim
        batch, length = hidden.shape[:2]
        normed = time_attn.layer_norm(hidden)
        query = mha.q(normed[:, -n:]).view(batch, n, heads, d_kv).transpose(1, 2)
        key = mha.k(normed).view(batch, length, heads, d_kv).transpose(1, 2)
        value = mha.v(normed).view(batch, length, heads, d_kv).transpose(1, 2)
        cos, sin = mha.rope_embed(value, position_ids)  # [1 or batch, length, d_kv]
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        rotary = self._rotary
        query = query * cos[:, :, -n:] + chronos_compat.rotate_half(rotary, query) * sin[:, :, -n:]
        key = key * cos + chronos_compat.rotate_half(rotary, key) * sin
        attended = chronos_compat.attention(mha, query, key, value, mask)
        return mha.o(attended.transpose(1, 2).reshape(batch, n, heads * d_kv))


def output_only_view(model: Any, n_out: int) -> Any:
    """``model`` with its last encoder block replaced by an :class:`OutputOnlyBlock` for ``n_out`` tokens.

    A shallow copy: every parameter and buffer is shared with ``model``, which stays as it was.
    """
    blocks = list(model.encoder.block)
    return encoder_view(model, [*blocks[:-1], OutputOnlyBlock(blocks[-1], n_out)])


def encoder_view(model: Any, blocks: list[nn.Module]) -> Any:
    """A shallow copy of ``model`` whose encoder (its own shallow copy) runs ``blocks``.

    Every parameter and buffer stays shared with ``model``, which is left as it was.
    """
    view_encoder = chronos_compat.shallow_copy(model.encoder)
    view_encoder.block = nn.ModuleList(blocks)
    view = chronos_compat.shallow_copy(model)
    view.encoder = view_encoder
    return view


def prepare_output_only(
    model: Any,
    n_out: int,
    *,
    layout_ok: bool,
    n_variates: int,
    context_length: int,
    problem: str | None = None,
    verdicts: VerdictCache | None = None,
) -> tuple[Any | None, ViewCheck]:
    """The output-only view for ``n_out`` patches if it passes the check, and the check
    (:func:`chronobt.engine.views.check.checked_view`; ``layout_ok`` is :func:`supports_output_only`;
    ``verdicts``: stored verdicts, :mod:`chronobt.engine.views.verdicts`)."""
    return checked_view(
        OUTPUT_ONLY,
        model,
        lambda: output_only_view(model, n_out),
        n_out=n_out,
        n_variates=n_variates,
        context_length=context_length,
        layout_ok=layout_ok,
        problem=problem,
        verdicts=verdicts,
    )
