"""Results are never written through a symbolic link planted inside the output folder.

Anyone who can write a shared output folder could otherwise aim ``OUT/backtest/ETHUSD`` (or a sweep's
``best/``, or a file) at another place, and the next unattended run would write there. The output folder
itself may be a link.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from tests.synthetic import write_symbol

SMALL = ["--horizon", "8", "--context", "128", "--compile", "off", "--device", "cpu"]
SWEEP = ["--preaug", "none,differencing", "--validation-windows", "4", "--test-windows", "3"]


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    write_symbol(tmp_path / "data", "AAA", 300, seed=1)
    return tmp_path / "data"


def _run(command: str, model: Path, data_dir: Path, out: Path, *extra: str) -> Any:
    args = [command, "AAA", *extra, *SMALL, "--model", str(model)]
    return CliRunner().invoke(app, [*args, "--data-dir", str(data_dir), "--output-dir", str(out)])


def _extra(command: str) -> list[str]:
    return {"backtest": ["--preaug", "differencing", "--windows", "4"], "sweep": SWEEP}.get(command, [])


def _assert_refused(result: Any, link: Path, elsewhere: Path) -> None:
    """Non-zero exit, one line naming the link and the fix, no traceback, nothing written elsewhere."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if str(link) in line]
    assert len(lines) == 1, result.stderr
    assert "symbolic link" in lines[0] and f"rm '{link}'" in lines[0]
    assert sorted(p.name for p in elsewhere.rglob("*")) == []


@pytest.mark.parametrize(
    ("command", "inside"),
    [
        ("backtest", "backtest/AAA"),  # a symbol's folder
        ("backtest", "backtest/AAA/differencing"),  # the folder metrics.json is written in
        ("forecast", "forecast/AAA"),
        ("sweep", "sweep"),
        ("sweep", "sweep/best"),
    ],
)
def test_a_symlinked_folder_inside_the_output_folder_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path, command: str, inside: str
) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = out / inside
    link.parent.mkdir(parents=True)
    link.symlink_to(elsewhere, target_is_directory=True)
    result = _run(command, tiny_model_dir, data_dir, out, *_extra(command))
    _assert_refused(result, link, elsewhere)


@pytest.mark.parametrize(
    ("command", "inside"),
    [("forecast", "forecast/AAA/latest.json"), ("sweep", "sweep/leaderboard.csv")],
)
def test_a_symlinked_result_file_is_refused_and_its_target_untouched(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path, command: str, inside: str
) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = out / inside
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    result = _run(command, tiny_model_dir, data_dir, out, *_extra(command))
    _assert_refused(result, link, elsewhere)
    assert victim.read_text() == "keep me" and link.is_symlink()
    # refused before anything was published: the files beside it are not half-new
    assert not (link.parent / ("latest.parquet" if command == "forecast" else "leaderboard.parquet")).exists()


@pytest.mark.parametrize("command", ["backtest", "forecast", "sweep"])
def test_the_output_folder_itself_may_be_a_symlink(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path, command: str
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    out = tmp_path / "out"
    out.symlink_to(real, target_is_directory=True)
    result = _run(command, tiny_model_dir, data_dir, out, *_extra(command))
    assert result.exit_code == 0, result.output
    expected = {
        "backtest": "backtest/AAA/differencing/metrics.json",
        "forecast": "forecast/AAA/latest.json",
        "sweep": "sweep/best/AAA.json",
    }[command]
    assert (real / expected).is_file()


def test_a_report_is_not_written_through_a_symlink_inside_the_folder(
    tmp_path: Path, tiny_model_dir: Path, data_dir: Path
) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    assert _run("forecast", tiny_model_dir, data_dir, out).exit_code == 0
    victim = tmp_path / "victim.html"
    victim.write_text("keep me")
    link = out / "forecast/AAA/report.html"
    link.symlink_to(victim)
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert str(link) in result.stderr and victim.read_text() == "keep me"
