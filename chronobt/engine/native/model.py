"""Chronos-2's forecast forward in plain torch: no chronos, no transformers, checked against chronos' own.

:class:`NativeChronos2` computes what chronos' ``Chronos2Model.forward`` computes for inference (context
scaling and patching, the input and output residual blocks, the [REG] token, encoder blocks of time
attention with rotary embeddings, group attention and a feed-forward layer), from the same weights under
the same parameter names, so ``load_state_dict(strict=True)`` proves the layout. It computes less:

* group attention per task, over that task's variates only (block-diagonal), the way the engine batches
  tasks (``group_ids = arange(tasks).repeat_interleave(n_variates)``), and a plain value projection for
  one variate (softmax over one key is 1);
* the last encoder block and the final norm for the forecast tokens only (the model reads nothing else);
* on a CPU, encoder blocks over chunks of ``tasks_per_chunk`` tasks (activations that stay in cache);
* one matrix product for the query, key and value projections.

It is never trusted on its own: :mod:`chronobt.engine.views.native` compares it with chronos' full
forward (once per key, the verdict stored in the cache folder) before the engine runs it, exactly as the
views of chronos' model are. Inference only: no dropout, no loss, no attention weights.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional

from chronobt.engine.native.config import ACTIVATIONS, NativeConfig, NativeOutput

__all__ = ["NativeChronos2"]


class Linear(nn.Linear):
    """``nn.Linear`` left uninitialised: its weights are always loaded (random init of a large model costs
    seconds, and building on torch's meta device imports torch's reference ops, about 1.5 s)."""

    def reset_parameters(self) -> None:
        return None


class Embedding(nn.Embedding):
    """``nn.Embedding`` left uninitialised, as :class:`Linear`."""

    def reset_parameters(self) -> None:
        return None


class RMSNorm(nn.Module):
    """T5's layer norm (no mean, no bias), its variance in float32 as chronos computes it."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.to(self.weight.dtype)
        return self.weight * x


class Residual(nn.Module):
    """chronos' ``ResidualBlock``: ``output(act(hidden(x))) + residual(x)``."""

    def __init__(self, in_dim: int, h_dim: int, out_dim: int, act: str) -> None:
        super().__init__()
        self.hidden_layer = Linear(in_dim, h_dim)
        self.output_layer = Linear(h_dim, out_dim)
        self.residual_layer = Linear(in_dim, out_dim)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.act(self.hidden_layer(x))) + self.residual_layer(x)


class Projections(nn.Module):
    """Query, key, value and output projections under chronos' names (``q``, ``k``, ``v``, ``o``)."""

    def __init__(self, d_model: int, inner: int) -> None:
        super().__init__()
        self.q = Linear(d_model, inner, bias=False)
        self.k = Linear(d_model, inner, bias=False)
        self.v = Linear(d_model, inner, bias=False)
        self.o = Linear(inner, d_model, bias=False)
        self.qkv: torch.Tensor
        self.register_buffer("qkv", torch.empty(0), persistent=False)

    def fuse(self) -> None:
        """Stack the query, key and value weights for one matrix product (after loading weights)."""
        self.qkv = torch.cat([self.q.weight, self.k.weight, self.v.weight]).detach()


class Attention(nn.Module):
    """A pre-norm attention sublayer: ``layer_norm`` then ``self_attention`` (chronos' names)."""

    def __init__(self, config: NativeConfig) -> None:
        super().__init__()
        self.layer_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.self_attention = Projections(config.d_model, config.num_heads * config.d_kv)


class MLP(nn.Module):
    """``wi``, activation, ``wo`` (chronos' names)."""

    def __init__(self, config: NativeConfig) -> None:
        super().__init__()
        self.wi = Linear(config.d_model, config.d_ff, bias=False)
        self.wo = Linear(config.d_ff, config.d_model, bias=False)
        self.act = ACTIVATIONS[config.dense_act_fn]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(self.act(self.wi(x)))


class FeedForwardLayer(nn.Module):
    """A pre-norm feed-forward sublayer: ``layer_norm`` then ``mlp``."""

    def __init__(self, config: NativeConfig) -> None:
        super().__init__()
        self.layer_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.layer_norm(x))


class Block(nn.Module):
    """An encoder block: ``layer[0]`` time attention, ``layer[1]`` group attention, ``layer[2]`` feed-forward
    (chronos' indices)."""

    def __init__(self, config: NativeConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([Attention(config), Attention(config), FeedForwardLayer(config)])
        self.heads, self.d_kv = config.num_heads, config.d_kv

    @property
    def time(self) -> Attention:
        return cast(Attention, self.layer[0])

    @property
    def group(self) -> Attention:
        return cast(Attention, self.layer[1])

    @property
    def feed_forward(self) -> FeedForwardLayer:
        return cast(FeedForwardLayer, self.layer[2])

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        n_variates: int,
        last: int,
    ) -> torch.Tensor:
        """``x [rows, T, d]`` -> the block's output; ``last > 0``: for the last ``last`` tokens only.

        ``rope``: cos, sin ``[T, d_kv]``; ``mask``: additive ``[rows, T]`` (0 observed, dtype min not).
        """
        x = self._time(self.time, x, rope, mask, last)
        if last:
            mask = mask[:, -last:]
        x = self._group(self.group, x, mask, n_variates)
        return self.feed_forward(x)

    def _time(
        self,
        layer: Attention,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        last: int,
    ) -> torch.Tensor:
        proj = layer.self_attention
        rows, length, _ = x.shape
        heads, d_kv = self.heads, self.d_kv
        qkv = functional.linear(layer.layer_norm(x), proj.qkv).view(rows, length, 3, heads, d_kv)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each [rows, heads, T, d_kv]
        cos, sin = rope
        if last:
            query, q_cos, q_sin = query[:, :, -last:], cos[-last:], sin[-last:]
        else:
            q_cos, q_sin = cos, sin
        query = query * q_cos + _rotate_half(query) * q_sin
        key = key * cos + _rotate_half(key) * sin
        out = functional.scaled_dot_product_attention(
            query, key, value, attn_mask=mask[:, None, None, :], scale=1.0
        )
        n = query.shape[2]
        out = proj.o(out.transpose(1, 2).reshape(rows, n, heads * d_kv))
        return (x[:, -last:] if last else x) + out

    def _group(self, layer: Attention, x: torch.Tensor, mask: torch.Tensor, n_variates: int) -> torch.Tensor:
        proj = layer.self_attention
        rows, length, d_model = x.shape
        normed = layer.layer_norm(x)
        if n_variates == 1:  # one key: softmax gives it weight 1, whatever the mask
            return x + proj.o(proj.v(normed))
        heads, d_kv = self.heads, self.d_kv
        tasks = rows // n_variates
        by_time = normed.view(tasks, n_variates, length, d_model).transpose(1, 2)  # [tasks, T, V, d]
        cells = tasks * length
        qkv = functional.linear(by_time, proj.qkv).view(cells, n_variates, 3, heads, d_kv)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each [tasks * T, heads, V, d_kv]
        keys_mask = mask.view(tasks, n_variates, length).transpose(1, 2).reshape(cells, 1, 1, n_variates)
        out = functional.scaled_dot_product_attention(query, key, value, attn_mask=keys_mask, scale=1.0)
        out = out.view(tasks, length, heads, n_variates, d_kv).permute(
            0, 3, 1, 2, 4
        )  # [tasks, V, T, h, d_kv]
        return x + proj.o(out.reshape(rows, length, heads * d_kv))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Encoder(nn.Module):
    """``block`` (the encoder blocks) and ``final_layer_norm`` (chronos' names)."""

    def __init__(self, config: NativeConfig) -> None:
        super().__init__()
        self.block = nn.ModuleList([Block(config) for _ in range(config.num_layers)])
        self.final_layer_norm = RMSNorm(config.d_model, config.layer_norm_epsilon)

    @property
    def blocks(self) -> list[Block]:
        return [cast(Block, block) for block in self.block]


class NativeChronos2(nn.Module):
    """Chronos-2's inference forward in plain torch (see the module docstring).

    Parameters
    ----------
    config : the model's settings (:class:`NativeConfig`).
    """

    def __init__(self, config: NativeConfig) -> None:
        super().__init__()
        self.config = config
        patch = config.input_patch_size
        self.shared = Embedding(2 if config.use_reg_token else 1, config.d_model)
        self.input_patch_embedding = Residual(3 * patch, config.d_ff, config.d_model, config.dense_act_fn)
        self.encoder = Encoder(config)
        n_out = len(config.quantiles) * config.output_patch_size
        self.output_patch_embedding = Residual(config.d_model, config.d_ff, n_out, config.dense_act_fn)

    def fuse(self) -> None:
        """Stack every attention's query, key and value weights (call after loading or moving weights)."""
        for block in self.encoder.blocks:
            block.time.self_attention.fuse()
            block.group.self_attention.fuse()

    def forward(
        self,
        context: torch.Tensor,
        group_ids: torch.Tensor,
        num_output_patches: int = 1,
        future_covariates: torch.Tensor | None = None,
        *,
        n_variates: int | None = None,
        tasks_per_chunk: int | None = None,
    ) -> NativeOutput:
        """Quantile forecasts, called as chronos' ``Chronos2Model`` is.

        Parameters
        ----------
        context : ``[rows, time]``, NaN = missing (left padding); ``rows = tasks * n_variates``.
        group_ids : ``[rows]``, ``arange(tasks).repeat_interleave(n_variates)`` (:class:`ValueError` else;
            checked on a CPU when not compiling).
        num_output_patches : output patches to forecast.
        future_covariates : ``[rows, steps <= patches * patch size]`` known future values, NaN unknown.
        n_variates : series per task (``None``: read from ``group_ids``).
        tasks_per_chunk : run encoder blocks over this many tasks at a time (``None``: whole batch).

        Returns
        -------
        NativeOutput
            ``quantile_preds`` float32 ``[rows, quantiles, num_output_patches * output_patch_size]``.
        """
        n_variates = _variates(group_ids, n_variates)
        hidden, mask, loc_scale = self._embed(context, future_covariates, num_output_patches)
        rope = self._rope_for(hidden.shape[1], hidden.device, hidden.dtype)
        rows = hidden.shape[0]
        chunk = rows if tasks_per_chunk is None else max(1, tasks_per_chunk) * n_variates
        blocks = self.encoder.blocks
        for i, block in enumerate(blocks):
            last = num_output_patches if i == len(blocks) - 1 else 0
            parts = [
                block(hidden[s : s + chunk], rope, mask[s : s + chunk], n_variates, last)
                for s in range(0, rows, chunk)
            ]
            hidden = parts[0] if len(parts) == 1 else torch.cat(parts)
        forecast = self.output_patch_embedding(self.encoder.final_layer_norm(hidden))
        steps = num_output_patches * self.config.output_patch_size
        n_q, patch = len(self.config.quantiles), self.config.output_patch_size
        preds = forecast.view(rows, num_output_patches, n_q, patch).transpose(1, 2).reshape(rows, n_q, steps)
        loc, scale = loc_scale
        preds = preds.to(torch.float32)
        if self.config.use_arcsinh:
            preds = torch.sinh(preds)
        return NativeOutput(preds * scale[:, :, None] + loc[:, :, None])

    def _embed(
        self, context: torch.Tensor, future: torch.Tensor | None, n_out: int
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Input embeddings ``[rows, T, d]``, the additive key mask ``[rows, T]`` and the scaling."""
        cfg, dtype = self.config, self.shared.weight.dtype
        rows = context.shape[0]
        observed = torch.isnan(context).logical_not().to(context.dtype)
        if context.shape[-1] > cfg.context_length:
            context, observed = context[:, -cfg.context_length :], observed[:, -cfg.context_length :]
        scaled, loc_scale = _scale(context, cfg.use_arcsinh)
        patch = cfg.input_patch_size
        values, seen = (
            _patches(scaled.to(dtype), patch),
            torch.nan_to_num(_patches(observed.to(dtype), patch)),
        )
        values = torch.where(seen > 0.0, values, 0.0)
        attention = seen.sum(dim=-1) > 0
        n_patches = attention.shape[-1]
        scale = float(cfg.time_encoding_scale)
        past_time = torch.arange(-n_patches * patch, 0, device=context.device, dtype=torch.float32)
        past_time = (past_time.view(1, n_patches, patch) / scale).to(dtype).expand(rows, -1, -1)
        embeds = [self.input_patch_embedding(torch.cat([past_time, values, seen], dim=-1))]
        masks = [attention.to(dtype)]
        if cfg.use_reg_token:
            embeds.append(self.shared.weight[1].expand(rows, 1, -1))
            masks.append(torch.ones(rows, 1, device=context.device, dtype=dtype))
        embeds.append(
            self.input_patch_embedding(self._future(future, loc_scale, n_out, rows, context.device))
        )
        masks.append(torch.ones(rows, n_out, device=context.device, dtype=dtype))
        observed_tokens = torch.cat(masks, dim=-1)
        additive = (1.0 - observed_tokens) * torch.finfo(dtype).min
        return torch.cat(embeds, dim=1), additive, loc_scale

    def _future(
        self,
        future: torch.Tensor | None,
        loc_scale: tuple[torch.Tensor, torch.Tensor],
        n_out: int,
        rows: int,
        device: torch.device,
    ) -> torch.Tensor:
        """The future patches' inputs ``[rows, n_out, 3 * patch]``: time, known values, their mask."""
        cfg, dtype = self.config, self.shared.weight.dtype
        patch = cfg.output_patch_size
        steps = n_out * patch
        if future is None:
            values = torch.zeros(rows, n_out, patch, device=device, dtype=dtype)
            known = values
        else:
            if future.shape[-1] > steps:
                raise ValueError(f"future_covariates has {future.shape[-1]} steps, more than {steps}")
            scaled, _ = _scale(future, cfg.use_arcsinh, loc_scale)
            scaled = scaled.to(dtype)
            known_steps = torch.isnan(scaled).logical_not().to(dtype)
            scaled = torch.where(known_steps > 0.0, scaled, 0.0)
            pad = steps - scaled.shape[-1]
            values = functional.pad(scaled, (0, pad)).view(rows, n_out, patch)
            known = functional.pad(known_steps, (0, pad)).view(rows, n_out, patch)
        time = torch.arange(0, steps, device=device, dtype=torch.float32)
        time = (time.view(1, n_out, patch) / float(cfg.time_encoding_scale)).to(dtype).expand(rows, -1, -1)
        return torch.cat([time, values, known], dim=-1)

    def _rope_for(
        self, length: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary cos and sin ``[length, d_kv]`` for positions ``0 .. length - 1`` (as chronos computes them,
        in float32; recomputed per call, which costs microseconds and keeps compiled graphs free of state)."""
        dim = self.config.d_kv
        exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=device).to(torch.float) / dim
        inv_freq = (1.0 / (self.config.rope_theta**exponents)).to(dtype).float()  # chronos' buffer dtype
        positions = torch.arange(length, dtype=torch.float32, device=device)
        freqs = (inv_freq[:, None] @ positions[None, :]).transpose(0, 1)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def _scale(
    x: torch.Tensor, arcsinh: bool, loc_scale: tuple[torch.Tensor, torch.Tensor] | None = None
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """chronos' instance norm: ``(x - mean) / sd`` over observed steps in float32, then arcsinh."""
    x = x.to(torch.float32)
    if loc_scale is None:
        loc = torch.nan_to_num(torch.nanmean(x, dim=-1, keepdim=True), nan=0.0)
        scale = torch.nan_to_num((x - loc).square().nanmean(dim=-1, keepdim=True).sqrt(), nan=1.0)
        scale = torch.where(scale == 0, 1e-5, scale)
    else:
        loc, scale = loc_scale
    scaled = (x - loc) / scale
    return (torch.arcsinh(scaled) if arcsinh else scaled), (loc, scale)


def _patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``[rows, time]`` -> ``[rows, patches, patch]``, NaN-padded on the left to whole patches."""
    remainder = x.shape[-1] % patch
    if remainder:
        x = functional.pad(x, (patch - remainder, 0), value=float("nan"))
    return x.unfold(-1, patch, patch)


def _variates(group_ids: torch.Tensor, n_variates: int | None) -> int:
    """Series per task, checking ``group_ids`` is ``arange(tasks).repeat_interleave(n_variates)``."""
    rows = group_ids.shape[0]
    if n_variates is not None and (torch.compiler.is_compiling() or group_ids.device.type != "cpu"):
        # the engine builds group_ids itself: compiled, a data-dependent check would break the graph, and
        # on a GPU it would synchronise every batch
        return n_variates
    if n_variates is None:
        n_variates = int((group_ids == group_ids[0]).sum()) if rows else 1
    if n_variates < 1 or rows % n_variates:
        raise ValueError(f"{rows} series are not whole tasks of {n_variates} variates")
    expected = torch.arange(rows // n_variates, device=group_ids.device).repeat_interleave(n_variates)
    if not torch.equal(group_ids.to(expected.dtype), expected):
        raise ValueError("group_ids must be arange(tasks).repeat_interleave(n_variates)")
    return n_variates
