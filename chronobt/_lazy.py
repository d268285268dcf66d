"""Lazy public names for a package: ``import chronobt.engine`` costs nothing until a name is used.

A wing's ``__init__`` declares ``{name: module}`` and forwards its module ``__getattr__`` here, so that
``chronobt --help`` and the ``data`` commands never import torch or chronos through a package's API.
"""

from __future__ import annotations

import importlib
from typing import Any


def attribute(package: str, exports: dict[str, str], name: str) -> Any:
    """``getattr(<module exporting name>, name)``; ``AttributeError`` for names not exported."""
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, package), name)
