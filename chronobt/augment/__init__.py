"""Pre-augmentations (``--preaug``): fitted on each window's context, exactly invertible.

>>> aug = get_augmentation("rolling_norm:window=48")
>>> state = aug.fit(contexts, variates=("open", "high", "low", "close"))      # [w, v, t]
>>> model_input = aug.transform(contexts, state)
>>> prices_q = aug.inverse_quantiles(model_q, levels=levels, state=state, out_levels=(0.1, 0.5, 0.9))

Modules: :mod:`.base` (the :class:`Augmentation` contract, validation, chunking, quantile inversion),
:mod:`.transforms` (the augmentations), :mod:`.sampling` (inverse-CDF interpolation, path sampling).
"""

from __future__ import annotations

from typing import Any

from chronobt.augment.base import (
    DEFAULT_N_PATHS,
    Augmentation,
    AugmentationSpec,
    AugmentationState,
)
from chronobt.augment.transforms import (
    Detrending,
    Differencing,
    LogReturns,
    NoAugmentation,
    PercentChange,
    RobustScaling,
    RollingNorm,
)
from chronobt.errors import ConfigError

__all__ = [
    "AVAILABLE_AUGMENTATIONS",
    "DEFAULT_N_PATHS",
    "Augmentation",
    "AugmentationSpec",
    "AugmentationState",
    "get_augmentation",
    "parse_augmentation",
]

AVAILABLE_AUGMENTATIONS: dict[str, type[Augmentation]] = {
    cls.name: cls
    for cls in (
        NoAugmentation,
        Differencing,
        Detrending,
        RobustScaling,
        LogReturns,
        PercentChange,
        RollingNorm,
    )
}


def _parse_value(text: str) -> Any:
    """``"48"`` -> 48, ``"0.5"`` -> 0.5, anything else stays a string (the class validates it)."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_augmentation(spec: str) -> AugmentationSpec:
    """Parse ``NAME`` or ``NAME:key=value[,key=value]`` into a spec with every parameter filled in.

    Raises :class:`ConfigError` naming the bad part and listing the valid names or parameters.
    ``str()`` of the result parses back to an equal spec.
    """
    name, _, rest = str(spec).strip().partition(":")
    name = name.strip().lower()
    cls = AVAILABLE_AUGMENTATIONS.get(name)
    if cls is None:
        raise ConfigError(
            f"unknown pre-augmentation {name!r} in --preaug {spec!r}; "
            f"valid: {', '.join(AVAILABLE_AUGMENTATIONS)}"
        )
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        valid = ", ".join(cls.parameters) if cls.parameters else "none"
        if not eq or key not in cls.parameters:
            raise ConfigError(
                f"--preaug {spec!r}: {name} has no parameter {item!r}; valid parameters: {valid} "
                "(write NAME:key=value)"
            )
        params[key] = _parse_value(value)
    try:
        aug = cls(**params)
    except TypeError as exc:  # a class that takes no parameters
        raise ConfigError(f"--preaug {spec!r}: {exc}") from exc
    return aug.spec


def get_augmentation(spec: str | AugmentationSpec) -> Augmentation:
    """An augmentation instance from ``"rolling_norm:window=48"`` or an :class:`AugmentationSpec`."""
    parsed = parse_augmentation(str(spec))
    return AVAILABLE_AUGMENTATIONS[parsed.name](**dict(parsed.params))
