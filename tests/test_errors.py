"""The one way chronobt quotes an exception it wraps or records: its first line."""

from __future__ import annotations

import re
from pathlib import Path

import chronobt
from chronobt.errors import first_line

PACKAGE_ROOT = Path(chronobt.__file__).parent


def test_first_line_is_the_messages_first_line_cut_at_the_limit() -> None:
    error = RuntimeError("  CUDA out of memory\nTried to allocate 2 GiB\n")
    assert first_line(error) == "CUDA out of memory"
    assert first_line(ValueError("x" * 500)) == "x" * 300
    assert first_line(ValueError("x" * 500), limit=200) == "x" * 200


def test_an_empty_message_reads_as_the_exceptions_type() -> None:
    assert first_line(KeyboardInterrupt()) == "KeyboardInterrupt"
    assert first_line(OSError("  \n ")) == "OSError"


def test_no_module_cuts_an_exceptions_first_line_itself() -> None:
    copies = re.compile(r"splitlines\(\)(\s*or\s*\[[^]]*\])?\)?\[0\]")
    offenders = [
        f"{path.relative_to(PACKAGE_ROOT)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
        if path.name != "errors.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if copies.search(line)
    ]
    assert offenders == []
