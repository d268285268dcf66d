"""Pre-augmentations (``--preaug``): fitted on each window's context, exactly invertible.

>>> aug = get_augmentation("rolling_norm:window=48")
>>> state = aug.fit(contexts, variates=("open", "high", "low", "close"))      # [w, v, t]
>>> model_input = aug.transform(contexts, state)
>>> prices_q = inverse_quantiles(aug, model_q, levels=levels, state=state, out_levels=(0.1, 0.5, 0.9))

Modules: :mod:`.base` (the :class:`Augmentation` contract, validation, chunking, the exact inverse),
:mod:`.transforms` (the augmentations), :mod:`.inversion` (quantile forecasts to price quantiles, by
sample paths where the inverse is path-dependent; :mod:`.inversion_torch` its torch twin on CUDA),
:mod:`.sampling` (inverse-CDF interpolation, path sampling), :mod:`.kernels` (the compiled draws and
order statistics of the CPU inversion), :mod:`.dependence` (the copula that couples a path's steps,
learned from resolved windows), :mod:`.memory` (the inversion's peak memory, checked before any work).
This module holds the registry, spec parsing and grids (:func:`parse_augmentation`,
:func:`expand_specs`, :func:`candidate_specs`) and :func:`affine_equivalent`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from chronobt.augment.base import Augmentation, AugmentationSpec, AugmentationState
from chronobt.augment.inversion import DEFAULT_N_PATHS, inverse_quantiles
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
    "affine_equivalent",
    "candidate_specs",
    "expand_specs",
    "get_augmentation",
    "inverse_quantiles",
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


def expand_specs(items: str | Sequence[str]) -> tuple[str, ...]:
    """Canonical augmentation specs from a comma-separated list with optional ``|`` grids.

    ``"none,rolling_norm:window=20|48"`` -> ``("none", "rolling_norm:window=20", "rolling_norm:window=48")``.
    A comma-separated piece without ``:`` but with ``=`` continues the previous spec's parameters
    (``rolling_norm:window=20,min_periods=5``); several gridded parameters expand to their product.
    Order is kept and duplicates dropped.

    Raises
    ------
    ConfigError
        An unknown name or parameter (from :func:`parse_augmentation`), or ``auto``.
    """
    pieces = [items] if isinstance(items, str) else list(items)
    tokens: list[str] = []
    for piece in pieces:
        for part in (p.strip() for p in piece.split(",")):
            if not part:
                continue
            if "=" in part and ":" not in part and tokens:
                tokens[-1] += "," + part
            else:
                tokens.append(part)
    specs: list[str] = []
    for token in tokens:
        if token == "auto":
            raise ConfigError("--preaug auto is what a sweep produces; list augmentations to sweep instead")
        for spec in _expand_grid(token):
            canonical = str(parse_augmentation(spec))
            if canonical not in specs:
                specs.append(canonical)
    return tuple(specs)


def _expand_grid(token: str) -> list[str]:
    name, _, params = token.partition(":")
    if not params:
        return [name]
    keys: list[str] = []
    choices: list[list[str]] = []
    for item in params.split(","):
        key, eq, values = item.partition("=")
        if not eq:
            return [token]  # not k=v: let parse_augmentation explain the problem
        keys.append(key.strip())
        choices.append([v.strip() for v in values.split("|")])
    return [
        f"{name}:" + ",".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
        for combo in itertools.product(*choices)
    ]


def affine_equivalent(spec: str | AugmentationSpec) -> str | None:
    """``"none"`` when ``spec`` forecasts exactly what ``none`` forecasts, else ``None`` (also for none).

    An augmentation whose class sets ``affine = True`` is ``y = a x + b`` per window and variate, with
    ``a > 0`` and ``a``, ``b`` constant over time (robust_scaling, percent_change). Chronos-2 standardises
    every series itself, so the model sees the same input and, after inversion, the forecast is ``none``'s
    to float32 rounding (``tests/test_equivalence.py``). Detrending subtracts a time-varying line and
    log_returns is not linear: both forecast differently.
    """
    parsed = parse_augmentation(str(spec))
    if parsed.name == "none" or not getattr(AVAILABLE_AUGMENTATIONS[parsed.name], "affine", False):
        return None
    return "none"


def candidate_specs(preaugs: Sequence[str]) -> tuple[str, ...]:
    """The augmentations a sweep tries, in tie-break order: ``none`` first, then the given ones
    (or every registered augmentation with default parameters, in registry order)."""
    specs = (
        expand_specs(preaugs)
        if preaugs
        else tuple(str(parse_augmentation(n)) for n in AVAILABLE_AUGMENTATIONS)
    )
    none = str(parse_augmentation("none"))
    return (none, *(s for s in specs if s != none))
