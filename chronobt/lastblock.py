"""Chronos-2's last encoder block, computed for the forecast tokens only.

Chronos-2 reads its forecast from the hidden states of the last ``num_output_patches`` tokens (the future
patches after the context patches and the [REG] token). In every block but the last, every token feeds
the next block's time attention, so all of them are needed. In the last block only the forecast tokens
reach the output head: their time-attention queries, their group attention (which works per time
position) and their feed-forward are all that matter. Keys and values still come from every token.

At context 2048 (128 context patches) and a 24-step horizon (2 output patches) that skips all but
2 of 131 tokens in the last block's queries, group attention and feed-forward: about 7/8 of one block's
matrix multiplications, one sixth of that for a six-layer model. The result is the same computation on
fewer rows; it equals the full forward to float rounding (tests compare both).

:func:`output_only_view` builds a view of a loaded ``Chronos2Model`` that shares its parameters and
swaps in :class:`OutputOnlyBlock`; the original model (and the pipeline that owns it) is untouched.
:func:`supports_output_only` says whether a model has the block layout this relies on; the engine falls
back to the full forward when it does not (a future chronos-forecasting release may change the layers).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from chronos.chronos2.layers import Chronos2RotaryEmbedding
from chronos.chronos2.model import Chronos2EncoderBlockOutput
from torch import nn


def supports_output_only(model: Any) -> bool:
    """Whether ``model``'s last encoder block has the layout :class:`OutputOnlyBlock` relies on."""
    try:
        from chronos.chronos2.layers import (
            MHA,
            FeedForward,
            GroupSelfAttention,
            TimeSelfAttention,
        )

        time_attn, group_attn, feed_forward = model.encoder.block[-1].layer
        time_mha, group_mha = time_attn.self_attention, group_attn.self_attention
    except (ImportError, AttributeError, TypeError, ValueError, IndexError):
        return False
    return (
        type(time_attn) is TimeSelfAttention
        and type(group_attn) is GroupSelfAttention
        and type(feed_forward) is FeedForward
        and type(time_mha) is MHA
        and type(group_mha) is MHA
        and time_mha.use_rope
        and isinstance(getattr(time_mha, "rope_embed", None), Chronos2RotaryEmbedding)
        and not group_mha.use_rope
        and hasattr(time_mha, "_sdpa_attention")
        and hasattr(time_mha, "_eager_attention")
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
        # group attention runs along the batch axis, one time position at a time: only the last n positions
        by_time = tail.transpose(0, 1)  # [n, batch, d]
        mixed = group_attn.self_attention(group_attn.layer_norm(by_time), mask=group_time_mask[-n:])[0]
        tail = (by_time + mixed).transpose(0, 1)
        tail = feed_forward(tail)
        out = torch.cat([hidden_states[:, :-n], tail], dim=1)
        return Chronos2EncoderBlockOutput(hidden_states=out)

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
        rotate = Chronos2RotaryEmbedding.rotate_half
        query = query * cos[:, :, -n:] + rotate(query) * sin[:, :, -n:]
        key = key * cos + rotate(key) * sin
        if mha.config._attn_implementation == "sdpa":
            attended, _ = mha._sdpa_attention(query, key, value, mask)
        else:
            attended, _ = mha._eager_attention(query, key, value, mask)
        return mha.o(attended.transpose(1, 2).reshape(batch, n, heads * d_kv))


def output_only_view(model: Any, n_out: int) -> Any:
    """``model`` with its last encoder block replaced by an :class:`OutputOnlyBlock` for ``n_out`` tokens.

    A shallow copy: every parameter and buffer is shared with ``model``, which stays as it was.
    """
    encoder = model.encoder
    blocks = list(encoder.block)
    view_encoder = copy.copy(encoder)
    view_encoder._modules = dict(encoder._modules)
    view_encoder.block = nn.ModuleList([*blocks[:-1], OutputOnlyBlock(blocks[-1], n_out)])
    view = copy.copy(model)
    view._modules = dict(model._modules)
    view.encoder = view_encoder
    return view
