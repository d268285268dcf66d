"""Small helpers for the run-record tables every report ends with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(prefix: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """``flatten("compile", {"used": False, "mode": None})`` -> ``{"compile.used": False, ...}``.

    Nested mappings are flattened with dots; ``None`` values are kept (the table drops them).
    """
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            out.update(flatten(name, value))
        else:
            out[name] = value
    return out
