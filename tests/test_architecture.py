"""The package's shape, as docs/ARCHITECTURE.md draws it: wings imported in one direction only, modules
small enough to read in one sitting, functions short enough to hold in one's head."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "chronobt"

DOC = PACKAGE.parent / "docs" / "ARCHITECTURE.md"


def _documented_layers() -> list[tuple[str, ...]]:
    """The ```layers block of docs/ARCHITECTURE.md, bottom to top: each line names its wings, then
    (after two spaces) what they are. A module may import its own wing and the ones below it."""
    block = re.search(r"```layers\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/ARCHITECTURE.md has no ```layers block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    return [tuple(re.split(r"\s{2,}", line.strip())[0].split()) for line in reversed(lines)]


LAYERS = _documented_layers()
RANK = {wing: rank for rank, wings in enumerate(LAYERS) for wing in wings}
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _wing(module: str) -> str | None:
    """``chronobt.engine.core`` -> ``engine``; the package root itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every chronobt module ``path`` imports (module level or lazily inside a function), absolute."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            targets = [target] if target != "chronobt" else [f"chronobt.{a.name}" for a in node.names]
            found += [(node.lineno, t) for t in targets if t.startswith("chronobt")]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("chronobt")]
    return found


def test_every_wing_is_declared_in_a_layer():
    wings = {_wing(_module_name(p)) for p in _modules()} - {None, "__main__"}
    assert wings <= set(RANK), f"undeclared wings or top-level modules: {sorted(wings - set(RANK))}"


def test_wings_import_only_their_own_or_lower_wings():
    upward = []
    for path in _modules():
        source = _wing(_module_name(path))
        if source is None or source == "__main__":
            continue  # the facade
        for line, target in _imports(path):
            wing = _wing(target)
            if wing is not None and wing in RANK and RANK[wing] > RANK[source]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_at_most_450_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(PACKAGE.parent)}: {lines} lines"


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end (signature and docstring aside)."""
    body = node.body
    first = body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        if len(body) == 1:
            return 0
        first = body[1]
    return (node.end_lineno or first.lineno) - first.lineno + 1


def test_no_function_is_over_80_lines():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and _body_lines(node) > MAX_FUNCTION_LINES
            ):
                long.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({_body_lines(node)})"
                )
    assert not long, "functions over 80 lines (docstrings aside):\n" + "\n".join(long)


def test_the_module_map_in_the_docs_matches_the_code():
    """Every module (``wing/module`` or a top-level ``module``) has one row in the Module map, and
    every row names a module that exists."""
    text = DOC.read_text()
    section = text[text.index("## Module map") :]
    section = section[: section.index("\n## ", 1)]
    documented = set(re.findall(r"^\| `([\w/]+)` \|", section, re.M))
    actual = {
        str(p.relative_to(PACKAGE).with_suffix(""))
        for p in _modules()
        if p.name not in ("__init__.py", "__main__.py")
    }
    assert documented == actual, (
        f"missing from docs/ARCHITECTURE.md: {sorted(actual - documented)}; "
        f"documented but absent: {sorted(documented - actual)}"
    )
