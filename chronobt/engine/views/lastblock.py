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
The view reads private chronos attributes, so it is guarded twice: :func:`supports_output_only` checks
the block layout by type and attribute names, and :func:`check_output_only` compares the view with the
model's own full forward on a small batch. The engine runs the view only when both pass (once per model
and number of output patches) and records the check; otherwise it runs the full forward.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from chronos.chronos2.layers import Chronos2RotaryEmbedding
from chronos.chronos2.model import Chronos2EncoderBlockOutput
from torch import nn

logger = logging.getLogger(__name__)

#: Largest difference the check accepts: ``rtol * (1 + max |full forward|)``, by weight dtype. float32
#: differs only by float rounding (order of summation in smaller matrix products); bfloat16 rounds every
#: product to 8 significant bits, so its two paths differ by a few bf16 steps of the output scale.
CHECK_RTOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2}
#: Tasks and the longest context of the check batch (the block's layout does not depend on the length).
CHECK_TASKS = 2
CHECK_MAX_CONTEXT = 256


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
        # group attention works one time position at a time: only the last n positions (the group layer's
        # own forward, so a block-diagonal one from chronobt.engine.views.group_attention composes; both
        # masks are
        # time-first)
        tail = group_attn(tail, attention_mask=group_time_mask[-n:])[0]
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
    blocks = list(model.encoder.block)
    return encoder_view(model, [*blocks[:-1], OutputOnlyBlock(blocks[-1], n_out)])


def encoder_view(model: Any, blocks: list[nn.Module], **encoder_attributes: Any) -> Any:
    """A shallow copy of ``model`` whose encoder runs ``blocks`` (and has ``encoder_attributes`` set).

    Every parameter and buffer stays shared with ``model``, which is left as it was.
    """
    encoder = model.encoder
    view_encoder = copy.copy(encoder)
    view_encoder._modules = dict(encoder._modules)
    view_encoder.block = nn.ModuleList(blocks)
    for name, value in encoder_attributes.items():
        setattr(view_encoder, name, value)
    view = copy.copy(model)
    view._modules = dict(model._modules)
    view.encoder = view_encoder
    return view


@dataclass(frozen=True)
class OutputOnlyCheck:
    """The output-only view against the full forward on one small batch.

    Attributes
    ----------
    num_output_patches : output patches both forwards computed.
    passed : whether the engine may use the view.
    max_abs_diff : largest absolute difference of the quantile forecasts (``inf`` when their non-finite
        entries differ; ``None`` when the view could not run).
    tolerance : the largest difference accepted, ``CHECK_RTOL[dtype] * (1 + max |full|)``.
    reason : one line: why the view is used or not.
    """

    num_output_patches: int
    passed: bool
    max_abs_diff: float | None
    tolerance: float | None
    reason: str

    def record(self) -> dict[str, Any]:
        return asdict(self)


def unsupported_check(n_out: int) -> OutputOnlyCheck:
    """The record for a model whose last block has another layout (no comparison is run)."""
    return OutputOnlyCheck(
        num_output_patches=n_out,
        passed=False,
        max_abs_diff=None,
        tolerance=None,
        reason="the last encoder block does not have the layout OutputOnlyBlock relies on",
    )


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


def check_output_only(
    model: Any, view: Any, *, n_out: int, n_variates: int, context_length: int
) -> OutputOnlyCheck:
    """Compare ``view`` with ``model``'s full forward on :func:`check_inputs` (eager, no gradients).

    Any exception from the view fails the check (its type and first line become the reason); an
    exception from the full forward propagates, since the engine could not run without it either.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    context, group_ids = check_inputs(n_variates, context_length, device=device)
    with torch.inference_mode():
        full = model(context=context, group_ids=group_ids, num_output_patches=n_out).quantile_preds
        try:
            fast = view(context=context, group_ids=group_ids, num_output_patches=n_out).quantile_preds
        except Exception as exc:
            text = (str(exc).strip().splitlines() or ["no message"])[0][:200]
            return OutputOnlyCheck(n_out, False, None, None, f"the view raised {type(exc).__name__}: {text}")
    full, fast = full.float(), fast.float()
    finite = torch.isfinite(full)
    scale = float(full[finite].abs().max()) if bool(finite.any()) else 0.0
    tolerance = CHECK_RTOL.get(dtype, CHECK_RTOL[torch.bfloat16]) * (1.0 + scale)
    if fast.shape != full.shape or not torch.equal(finite, torch.isfinite(fast)):
        diff = math.inf
    else:
        diff = float((fast[finite] - full[finite]).abs().max()) if bool(finite.any()) else 0.0
    if diff <= tolerance:
        reason = f"equal to the full forward within {tolerance:.3g} (largest difference {diff:.3g})"
        return OutputOnlyCheck(n_out, True, diff, tolerance, reason)
    reason = f"differs from the full forward by {diff:.3g} > tolerance {tolerance:.3g}"
    return OutputOnlyCheck(n_out, False, diff, tolerance, reason)


def prepare_view(
    model: Any, n_out: int, *, layout_ok: bool, n_variates: int, context_length: int
) -> tuple[Any | None, OutputOnlyCheck]:
    """The output-only view for ``n_out`` patches if it passes :func:`check_output_only`, and the check.

    ``layout_ok`` is :func:`supports_output_only` of ``model``; without it nothing is compared. A view
    that cannot be built fails the check like one that raises. Logs one line: info when the view is
    used or the layout is not supported, a warning when the check failed.
    """
    if not layout_ok:
        check = unsupported_check(n_out)
        logger.info("output-only last block: %s; running the full forward", check.reason)
        return None, check
    try:
        view = output_only_view(model, n_out)
    except Exception as exc:  # private chronos attributes: a failed check, never a failed run
        error = exc

        def view(**_: Any) -> Any:
            raise error

    check = check_output_only(model, view, n_out=n_out, n_variates=n_variates, context_length=context_length)
    if check.passed:
        logger.info("output-only last block for %d output patches: %s", n_out, check.reason)
        return view, check
    logger.warning("output-only last block: %s; running the full forward", check.reason)
    return None, check
