"""A Chronos-2 folder (``config.json`` + safetensors weights) loaded into :class:`NativeChronos2`.

Reads the files chronos' ``from_pretrained`` reads, with ``json`` and ``safetensors`` only (no chronos,
no transformers). Anything this forward does not compute (another architecture, a gated or unknown
activation, unequal patch sizes or strides, weights under other names or shapes, sharded or ``.bin``
weights, a malformed config) raises :class:`NativeUnavailable` with a one-line reason; the engine then
loads chronos' own model instead. Weights stored at a higher precision than the config's ``dtype``
(``bfloat16``, ``float16``) are rounded to it first, as transformers loads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chronobt.engine.native.config import ACTIVATIONS, NativeConfig
from chronobt.engine.native.model import NativeChronos2

if TYPE_CHECKING:
    import torch

__all__ = ["NativeUnavailable", "load_native", "read_config"]

WEIGHTS = "model.safetensors"


class NativeUnavailable(LookupError):
    """The folder holds a model the native forward does not compute; ``str()`` is the one-line reason."""


def read_config(folder: Path) -> NativeConfig:
    """The settings in ``folder/config.json``; :class:`NativeUnavailable` when not a plain Chronos-2."""
    try:
        raw = json.loads((folder / "config.json").read_text())
        forecasting = raw["chronos_config"]
        if "Chronos2Model" not in raw.get("architectures", ["Chronos2Model"]):
            raise NativeUnavailable(f"architectures {raw['architectures']} is not Chronos2Model")
        proj = str(raw.get("feed_forward_proj", "relu"))
        act = str(raw.get("dense_act_fn", proj.split("-")[-1]))  # chronos: a stored dense_act_fn wins
        if proj.startswith("gated") or act not in ACTIVATIONS:
            raise NativeUnavailable(
                f"feed_forward_proj {proj!r} / dense_act_fn {act!r} is not one of {sorted(ACTIVATIONS)}"
            )
        if (
            forecasting.get("input_patch_stride", forecasting["input_patch_size"])
            != forecasting["input_patch_size"]
        ):
            raise NativeUnavailable("input_patch_stride differs from input_patch_size")
        if forecasting["input_patch_size"] != forecasting["output_patch_size"]:
            raise NativeUnavailable("input_patch_size differs from output_patch_size")
        return NativeConfig(
            d_model=int(raw.get("d_model", 512)),
            d_kv=int(raw.get("d_kv", 64)),
            d_ff=int(raw.get("d_ff", 2048)),
            num_layers=int(raw.get("num_layers", 6)),
            num_heads=int(raw.get("num_heads", 8)),
            layer_norm_epsilon=float(raw.get("layer_norm_epsilon", 1e-6)),
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            dense_act_fn=act,
            context_length=int(forecasting["context_length"]),
            input_patch_size=int(forecasting["input_patch_size"]),
            output_patch_size=int(forecasting["output_patch_size"]),
            max_output_patches=int(forecasting["max_output_patches"]),
            quantiles=tuple(float(q) for q in forecasting["quantiles"]),
            time_encoding_scale=float(forecasting.get("time_encoding_scale", forecasting["context_length"])),
            use_arcsinh=bool(forecasting.get("use_arcsinh", False)),
            use_reg_token=bool(forecasting.get("use_reg_token", False)),
            weights_dtype=str(raw.get("dtype") or "float32"),
        )
    except NativeUnavailable:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NativeUnavailable(
            f"cannot read {folder / 'config.json'} ({type(exc).__name__}: {exc})"
        ) from exc


def load_native(folder: Path, *, device: torch.device, dtype: torch.dtype) -> NativeChronos2:
    """:class:`NativeChronos2` with ``folder``'s weights on ``device`` in ``dtype``, in eval mode.

    Raises
    ------
    NativeUnavailable
        When the config is not one this forward computes, or the weights are not one safetensors file
        holding exactly its parameters under chronos' names and shapes.
    """
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    config = read_config(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise NativeUnavailable(f"no single {WEIGHTS} in {folder}")
    try:
        state: dict[str, Any] = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise NativeUnavailable(f"cannot read {weights} ({type(exc).__name__}: {exc})") from exc
    model = NativeChronos2(config)  # uninitialised: every parameter comes from the file
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise NativeUnavailable(
            f"weights do not match Chronos-2's layout: {' '.join(first[:2])[:200]}"
        ) from exc
    if config.weights_dtype in ("bfloat16", "float16"):  # transformers loads the weights in this dtype
        model = model.to(dtype=getattr(torch, config.weights_dtype))
    model = model.to(device=device, dtype=dtype).eval()
    model.fuse()
    return model
