"""Every use of chronos' and torch's private internals, in one place and behind one guard.

The checked views (:mod:`chronobt.engine.views`) rebuild parts of chronos' encoder from its private
layer classes and attention methods; long horizons call chronos' private unrolling; the compile record
reads dynamo's private counters. None of these names is a public API: chronos already renamed its rotary
embedding class between releases (``RoPE`` upstream, ``Chronos2RotaryEmbedding`` in 2.3.2). Nothing here is
imported at module level: :func:`load` looks the classes up when a view is built or its layout checked,
and raises :class:`MissingInternal` with a one-line reason when a name is gone. The views turn that into a
failed layout check (recorded in the engine's ``record()``, the full forward runs); changed maths behind
a name that still exists is caught by the views' run-time comparison with the full forward
(:func:`chronobt.engine.views.check.check_view`). The long-horizon batch method
(:func:`predict_batch_method`) raises :class:`MissingInternal` when it is gone or takes other arguments;
:mod:`chronobt.engine.unrolling` then runs chronos' public ``predict`` and records why. The views' own
group-mask builder is read and replaced here too (:func:`group_mask_method`, :func:`set_group_mask`).

Name lookups happen at call time (never cached), so a test may delete or replace any of them.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from chronobt.errors import first_line

if TYPE_CHECKING:
    import torch


__all__ = [
    "GROUP_MASK_METHOD",
    "PREDICT_BATCH_ARGS",
    "PREDICT_BATCH_METHOD",
    "ChronosInternals",
    "MissingInternal",
    "attention",
    "dynamo_counter",
    "dynamo_reset",
    "group_mask_method",
    "has_attention_methods",
    "load",
    "missing",
    "predict_batch_method",
    "private",
    "rotate_half",
    "set_group_mask",
    "shallow_copy",
]

#: chronos' layer and model modules the views read classes from.
LAYERS_MODULE = "chronos.chronos2.layers"
MODEL_MODULE = "chronos.chronos2.model"
#: The rotary embedding class, by its names across chronos releases (first found wins).
ROTARY_NAMES = ("Chronos2RotaryEmbedding", "RoPE")
#: The encoder method that builds chronos' dense ``[T, 1, batch, batch]`` group mask.
GROUP_MASK_METHOD = "_construct_and_invert_group_time_mask"
#: ``Chronos2Pipeline``'s batch method that unrolls long horizons, and the keyword arguments chronobt passes.
PREDICT_BATCH_METHOD = "_predict_batch"
PREDICT_BATCH_ARGS = (
    "context",
    "group_ids",
    "future_covariates",
    "unrolled_quantiles_tensor",
    "prediction_length",
    "max_output_patches",
    "target_idx_ranges",
)

ModuleT = TypeVar("ModuleT")


class MissingInternal(LookupError):
    """A private chronos or torch name is missing or unusable; ``str()`` is the one-line reason."""


@dataclass(frozen=True)
class ChronosInternals:
    """chronos' private classes the views rely on (looked up by :func:`load`; typed ``Any``: private)."""

    mha: Any
    time_attention: Any
    group_attention: Any
    feed_forward: Any
    rotary: Any
    encoder_block: Any
    block_output: Any
    attention_output: Any


def private(module: str, *names: str) -> Any:
    """The first of ``names`` found in ``module``; :class:`MissingInternal` naming them when none is."""
    try:
        found = importlib.import_module(module)
    except Exception as exc:  # ImportError, or any error while importing a changed chronos
        raise MissingInternal(
            f"cannot import {module} ({type(exc).__name__}: {first_line(exc, limit=200)})"
        ) from exc
    for name in names:
        value = getattr(found, name, None)
        if value is not None:
            return value
    raise MissingInternal(f"{module} has no {' or '.join(names)}")


def load() -> ChronosInternals:
    """chronos' private classes, looked up now; :class:`MissingInternal` when one is missing."""
    return ChronosInternals(
        mha=private(LAYERS_MODULE, "MHA"),
        time_attention=private(LAYERS_MODULE, "TimeSelfAttention"),
        group_attention=private(LAYERS_MODULE, "GroupSelfAttention"),
        feed_forward=private(LAYERS_MODULE, "FeedForward"),
        rotary=private(LAYERS_MODULE, *ROTARY_NAMES),
        encoder_block=private(MODEL_MODULE, "Chronos2EncoderBlock"),
        block_output=private(MODEL_MODULE, "Chronos2EncoderBlockOutput"),
        attention_output=private(LAYERS_MODULE, "AttentionOutput"),
    )


def missing() -> str | None:
    """Why :func:`load` fails now (one line), ``None`` when every private class is there."""
    try:
        internals = load()
    except MissingInternal as exc:
        return str(exc)
    if not callable(getattr(internals.rotary, "rotate_half", None)):
        return f"{internals.rotary.__name__} has no rotate_half"
    return None


def has_attention_methods(mha: Any) -> bool:
    """Whether an ``MHA`` layer has the private attention methods :func:`attention` calls."""
    return hasattr(mha, "_sdpa_attention") and hasattr(mha, "_eager_attention")


def attention(
    mha: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Attention of ``query`` over ``key``/``value`` ``[batch, heads, tokens, d_kv]`` with chronos' own
    implementation choice (``config._attn_implementation``: sdpa or eager) -> ``[batch, heads, q, d_kv]``."""
    if mha.config._attn_implementation == "sdpa":
        attended, _ = mha._sdpa_attention(query, key, value, mask)
    else:
        attended, _ = mha._eager_attention(query, key, value, mask)
    return attended


def rotate_half(rotary: type, x: torch.Tensor) -> torch.Tensor:
    """The rotary embedding class's own ``rotate_half`` of ``x``."""
    return rotary.rotate_half(x)  # type: ignore[attr-defined]


def shallow_copy(module: ModuleT) -> ModuleT:
    """A copy of a torch module sharing every parameter, buffer and submodule, with its own submodule
    table (torch's private ``_modules``), so that replacing a submodule leaves ``module`` as it was."""
    view = copy.copy(module)
    view._modules = dict(module._modules)  # type: ignore[attr-defined]
    return view


def predict_batch_method(pipeline: Any) -> Callable[..., Any]:
    """chronos' private ``Chronos2Pipeline._predict_batch`` of ``pipeline`` (long-horizon unrolling), called
    with :data:`PREDICT_BATCH_ARGS` as keywords; :class:`MissingInternal` when it is gone or takes other
    arguments (an error raised by the call itself is the model's, not a missing name)."""
    method = getattr(pipeline, PREDICT_BATCH_METHOD, None)
    if not callable(method):
        raise MissingInternal(f"{type(pipeline).__name__} has no {PREDICT_BATCH_METHOD}")
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):  # no signature to read: the call itself will tell
        return method
    try:
        signature.bind(**dict.fromkeys(PREDICT_BATCH_ARGS))
    except TypeError as exc:
        raise MissingInternal(
            f"{type(pipeline).__name__}.{PREDICT_BATCH_METHOD} takes other arguments ({first_line(exc)})"
        ) from exc
    return method


def group_mask_method(encoder: Any) -> Any:
    """The encoder's private group-mask builder (``None`` when it has none)."""
    return getattr(encoder, GROUP_MASK_METHOD, None)


def set_group_mask(encoder: Any, build: Callable[..., Any]) -> None:
    """Make ``encoder`` (a view's own copy) build its group mask with ``build``, called with the private
    builder's arguments ``(group_ids, attention_mask, floating_type)``."""
    setattr(encoder, GROUP_MASK_METHOD, build)


def dynamo_counter(group: str, name: str) -> int | None:
    """dynamo's private counter ``counters[group][name]``; ``None`` when it cannot be read."""
    try:
        from torch._dynamo.utils import counters

        return int(counters[group][name])
    except Exception:  # a private torch API: unknown, never a failure
        return None


def dynamo_reset() -> None:
    """``torch._dynamo.reset()`` (private); raises whatever it raises."""
    import torch

    torch._dynamo.reset()
