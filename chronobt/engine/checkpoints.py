"""Build randomly initialised Chronos-2 checkpoints on disk.

Used by the test-suite (tiny models that load in milliseconds), by the benchmarks
(full-size architecture with random weights: same compute as the released model) and
as the starting point of ``scripts/train_mini.py``. Nothing here touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The 21 quantile levels the released Chronos-2 checkpoints predict.
STANDARD_QUANTILES: tuple[float, ...] = (
    0.01,
    0.05,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.45,
    0.5,
    0.55,
    0.6,
    0.65,
    0.7,
    0.75,
    0.8,
    0.85,
    0.9,
    0.95,
    0.99,
)


@dataclass(frozen=True)
class ArchSpec:
    """Architecture of a Chronos-2 encoder (see ``chronos.chronos2.Chronos2CoreConfig``)."""

    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_heads: int
    context_length: int = 2048
    patch_size: int = 16
    max_output_patches: int = 64
    quantiles: tuple[float, ...] = STANDARD_QUANTILES


#: Named sizes. ``full`` matches the released ``amazon/chronos-2`` compute.
ARCHITECTURES: dict[str, ArchSpec] = {
    "tiny": ArchSpec(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, context_length=512),
    "small": ArchSpec(d_model=256, d_kv=32, d_ff=1024, num_layers=6, num_heads=8),
    "full": ArchSpec(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),
}


def core_config(spec: ArchSpec):  # -> Chronos2CoreConfig
    """Return a ``Chronos2CoreConfig`` for ``spec`` (import deferred: torch is heavy)."""
    from chronos.chronos2 import Chronos2CoreConfig

    return Chronos2CoreConfig(
        d_model=spec.d_model,
        d_kv=spec.d_kv,
        d_ff=spec.d_ff,
        num_layers=spec.num_layers,
        num_heads=spec.num_heads,
        dropout_rate=0.1,
        feed_forward_proj="relu",
        architectures=["Chronos2Model"],
        chronos_pipeline_class="Chronos2Pipeline",
        chronos_config={
            "context_length": spec.context_length,
            "input_patch_size": spec.patch_size,
            "input_patch_stride": spec.patch_size,
            "output_patch_size": spec.patch_size,
            "quantiles": list(spec.quantiles),
            "use_reg_token": True,
            "use_arcsinh": True,
            "max_output_patches": spec.max_output_patches,
            "time_encoding_scale": spec.context_length,
        },
    )


def random_model(spec: ArchSpec | str, *, seed: int = 0):  # -> Chronos2Model
    """A randomly initialised ``Chronos2Model`` in eval mode, float32, on the CPU."""
    import torch
    from chronos.chronos2 import Chronos2Model

    if isinstance(spec, str):
        spec = ARCHITECTURES[spec]
    torch.manual_seed(seed)
    model = Chronos2Model(core_config(spec))
    return model.eval()


def save_random_checkpoint(path: str | Path, spec: ArchSpec | str = "tiny", *, seed: int = 0) -> Path:
    """Write a random Chronos-2 checkpoint to ``path`` with ``save_pretrained``; returns ``path``."""
    path = Path(path)
    random_model(spec, seed=seed).save_pretrained(path)
    return path
