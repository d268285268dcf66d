"""The settings the native forward reads from a Chronos-2 ``config.json``, and its output type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch.nn import functional

__all__ = ["ACTIVATIONS", "NativeConfig", "NativeOutput"]

#: chronos' ``dense_act_fn`` names this forward computes (transformers' ``ACT2FN`` meanings).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": functional.relu,
    "gelu": functional.gelu,
    "silu": functional.silu,
}


@dataclass(frozen=True)
class NativeConfig:
    """A Chronos-2 ``config.json`` as the forward needs it (``chronobt.engine.native.loading.read_config``).

    Attribute names follow chronos' config (``d_model``, ``d_ff``, ``num_layers`` ... and the forecasting
    settings of its ``chronos_config``), so the engine's sizing reads either.
    """

    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_heads: int
    layer_norm_epsilon: float
    rope_theta: float
    dense_act_fn: str
    context_length: int
    input_patch_size: int
    output_patch_size: int
    max_output_patches: int
    quantiles: tuple[float, ...]
    time_encoding_scale: float
    use_arcsinh: bool
    use_reg_token: bool
    #: the config's ``dtype``: weights stored at a higher precision are rounded to it first, as
    #: transformers loads them (``bfloat16``, ``float16``; anything else leaves them as stored)
    weights_dtype: str = "float32"


class NativeOutput(NamedTuple):
    """The forward's result, named as chronos' output field: ``quantile_preds [batch, quantiles, steps]``."""

    quantile_preds: torch.Tensor
