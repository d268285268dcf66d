"""glibc allocator tuning of the command line (opt-in): freed memory is reused without new page faults."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.engine.allocator import _glibc, keep_freed_memory
from chronobt.errors import ConfigError

glibc_only = pytest.mark.skipif(
    sys.platform != "linux" or _glibc() is None, reason="glibc's mallopt (Linux) only"
)

# Two rounds of 64 x 2 MiB blocks and one 24 MiB block, all written; prints the minor page faults of the
# second round. glibc's defaults give the pages back between rounds, so the second round faults again.
_PROGRAM = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from chronobt.engine.allocator import keep_freed_memory

    tuned = keep_freed_memory({"CHRONOBT_MALLOC": sys.argv[1]})

    def one_round():
        blocks = [np.ones(1 << 18) for _ in range(64)]
        big = np.ones(3 << 20)
        del blocks, big

    one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    one_round()
    print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _second_round_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode], check=True, capture_output=True, text=True
    ).stdout.split()
    return out[0], int(out[1])


@glibc_only
def test_kept_memory_is_reused_without_page_faults() -> None:
    tuned, tuned_faults = _second_round_faults("keep")
    untouched, default_faults = _second_round_faults("default")
    assert (tuned, untouched) == ("True", "False")
    assert default_faults > 10_000  # ~150 MiB of 4 KiB pages faulted in again with glibc's defaults
    assert tuned_faults < default_faults / 20


@pytest.mark.parametrize(
    "environ",
    [
        {},  # off unless asked for
        {"CHRONOBT_MALLOC": ""},
        {"CHRONOBT_MALLOC": "default"},
        {"CHRONOBT_MALLOC": " Default "},
        {"CHRONOBT_MALLOC": "keep", "MALLOC_TRIM_THRESHOLD_": "131072"},
        {"CHRONOBT_MALLOC": "keep", "MALLOC_MMAP_THRESHOLD_": "131072"},
        {"CHRONOBT_MALLOC": "keep", "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
        {"CHRONOBT_MALLOC": "keep", "LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"},
    ],
)
def test_user_choices_are_left_alone(environ: dict[str, str]) -> None:
    assert keep_freed_memory(environ) is False


def test_a_bad_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"CHRONOBT_MALLOC='lots' .*keep or default \(the default\)"):
        keep_freed_memory({"CHRONOBT_MALLOC": "lots"})


def test_the_command_line_reports_a_bad_value_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["data", "list", "--data-dir", str(tmp_path)], env={"CHRONOBT_MALLOC": "lots"}
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == ["error: CHRONOBT_MALLOC='lots' is not a choice: use keep or default (the default)"]
    assert "Traceback" not in result.output
