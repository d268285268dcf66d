"""What someone who can write the output folder cannot make chronobt do through its journals and
temporaries: pull a file in from elsewhere, write through a link swapped in mid-write, or leave the
published files disagreeing on disk after the next run takes the lock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chronobt import atomic
from chronobt.cli import app
from chronobt.engine.core import Chronos2Engine
from chronobt.errors import UnsafePathError
from chronobt.locking import output_lock
from chronobt.publish import INTENT_NAME, finish_interrupted, published_names, published_path
from tests.synthetic import write_symbol

STAGING = ".publish-aaaaaaaaaaaa"


def _plant(folder: Path, staging_target: Path, files: list[str]) -> None:
    """A journal naming ``files`` in a staging folder that is a link to ``staging_target``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STAGING).symlink_to(staging_target, target_is_directory=True)
    (folder / INTENT_NAME).write_text(json.dumps({"staging": STAGING, "files": files}))


def test_a_planted_journal_whose_staging_is_a_link_moves_and_reads_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "secret.txt").write_text("private")
    out = tmp_path / "out"
    _plant(out / "sweep", secret, ["secret.txt"])
    assert published_path(out / "sweep", "secret.txt") == out / "sweep" / "secret.txt"  # not the link's
    assert published_names(out / "sweep", ".", "*.txt") == []
    finish_interrupted(out / "sweep", root=out)
    assert (secret / "secret.txt").read_text() == "private"  # still where it belongs
    assert not (out / "sweep" / "secret.txt").exists()
    assert not (out / "sweep" / INTENT_NAME).exists()  # the planted journal is dropped


def test_a_staged_entry_that_is_a_link_is_never_moved(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("private")
    folder = tmp_path / "out" / "sweep"
    (folder / STAGING).mkdir(parents=True)
    (folder / STAGING / "leaderboard.csv").symlink_to(victim)
    (folder / INTENT_NAME).write_text(json.dumps({"staging": STAGING, "files": ["leaderboard.csv"]}))
    assert published_path(folder, "leaderboard.csv") == folder / "leaderboard.csv"
    finish_interrupted(folder, root=tmp_path / "out")
    assert victim.read_text() == "private"
    assert not (folder / "leaderboard.csv").exists()


def test_the_lock_completes_an_interrupted_publish_so_the_files_agree_on_disk(tmp_path: Path) -> None:
    out = tmp_path / "out"
    folder = out / "sweep"
    (folder / STAGING).mkdir(parents=True)
    (folder / "leaderboard.csv").write_text("old")  # moved before the kill: already new in a real run
    (folder / "leaderboard.parquet").write_text("old")
    (folder / STAGING / "leaderboard.parquet").write_text("new")  # killed before this one was moved
    files = ["leaderboard.csv", "leaderboard.parquet"]
    (folder / INTENT_NAME).write_text(json.dumps({"staging": STAGING, "files": files}))
    with output_lock(out):
        pass
    assert (folder / "leaderboard.parquet").read_text() == "new"
    assert not (folder / INTENT_NAME).exists() and not (folder / STAGING).exists()


def test_a_temporary_swapped_for_a_link_while_written_is_never_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("private")
    folder = tmp_path / "out"
    folder.mkdir()

    def swap_then_write(handle: object) -> None:
        (tmp,) = folder.glob(".metrics.json.*.tmp")
        tmp.unlink()
        tmp.symlink_to(victim)  # an attacker's link at the temporary's name
        handle.write(b"{}")  # type: ignore[attr-defined]

    with pytest.raises(UnsafePathError, match="replaced by another file or a symbolic link"):
        atomic._write_atomic(folder / "metrics.json", swap_then_write, folder)
    assert victim.read_text() == "private"
    assert not (folder / "metrics.json").exists()
    assert not list(folder.glob(".metrics.json.*"))


def test_a_data_file_whose_name_is_no_symbol_is_a_usage_error_before_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: object, *args: object, **kwargs: object) -> None:
        pytest.fail("the model was loaded before the usage error")

    monkeypatch.setattr(Chronos2Engine, "__init__", refuse)
    write_symbol(tmp_path / "data", "AAA", 300)
    (tmp_path / "sec").mkdir()
    shutil.copy(tmp_path / "data" / "AAA.parquet", tmp_path / "sec" / "...parquet")
    monkeypatch.chdir(tmp_path)
    for symbols in (["sec/...parquet"], ["AAA", "sec/...parquet"]):
        result = CliRunner().invoke(app, ["backtest", *symbols, "--output-dir", "out", "--data-dir", "data"])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert "sec/...parquet: the file name '..' is not a usable symbol" in line
        assert "data import FILE.csv --symbol" in line
        assert not (tmp_path / "out").exists()
