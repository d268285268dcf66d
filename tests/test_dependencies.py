"""Every third-party package chronobt imports is declared in pyproject.toml (dependencies or an extra)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
#: Import names whose distribution is named differently.
DISTRIBUTIONS = {"chronos": "chronos_forecasting"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {re.split(r"[<>=\[ ;~!]", r)[0].lower().replace("-", "_") for r in requirements}


def _imported() -> dict[str, str]:
    """Top-level third-party module -> one file importing it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "chronobt").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("chronobt", "__future__"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_dependency() -> None:
    declared = _declared()
    missing = {m: f for m, f in _imported().items() if DISTRIBUTIONS.get(m, m) not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_cache_folder_and_hf_logging_packages_are_direct_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = {re.split(r"[<>=\[ ;~!]", r)[0] for r in project["dependencies"]}
    assert {"platformdirs", "transformers"} <= direct
