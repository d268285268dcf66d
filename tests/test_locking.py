"""One run per output dir: a second run exits 75 at once or waits with --wait; files stay intact."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.errors import LockError, UnsafePathError
from chronobt.locking import output_lock
from tests.synthetic import write_symbol


@dataclass(frozen=True)
class Holder:
    """``release`` lets the holder go; the holder sets ``releasing`` while it still holds the lock, so a
    second lock that was really excluded finds it set once it gets in."""

    release: threading.Event
    releasing: threading.Event


@contextmanager
def held_in_thread(output_dir: Path, release_after: float | None = None) -> Iterator[Holder]:
    """Hold ``output_dir``'s lock in another thread until the block ends (or ``release_after`` seconds)."""
    acquired, release, releasing = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with output_lock(output_dir):
            acquired.set()
            release.wait(release_after)
            releasing.set()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert acquired.wait(10)
    try:
        yield Holder(release, releasing)
    finally:
        release.set()
        thread.join(10)


def _forecast(model: Path, data: Path, out: Path, *extra: str) -> object:
    return CliRunner().invoke(
        app,
        [
            "forecast",
            "AAA",
            *extra,
            *("--horizon", "8", "--context", "128", "--model", str(model), "--device", "cpu"),
            *("--compile", "off", "--data-dir", str(data), "--output-dir", str(out)),
        ],
    )


def test_second_lock_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    with held_in_thread(tmp_path), pytest.raises(LockError) as info, output_lock(tmp_path):
        pass
    assert info.value.exit_code == 75
    assert f"pid {os.getpid()}" in str(info.value) and "--wait" in str(info.value)


def test_lock_waits_for_the_holder_when_asked(tmp_path: Path) -> None:
    with held_in_thread(tmp_path, release_after=0.5) as holder, output_lock(tmp_path, wait=30):
        # in only once the holder was letting go: the lock excluded this one while it was held
        assert holder.releasing.is_set()
        assert (tmp_path / ".chronobt.lock.holder").is_file()


def test_locked_forecast_exits_75_and_leaves_the_previous_results_intact(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_symbol(data, "AAA", 300)
    assert _forecast(tiny_model_dir, data, out).exit_code == 0
    folder = out / "forecast" / "AAA"
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    write_symbol(data, "AAA", 320, seed=5)  # new data that a run would forecast from

    with held_in_thread(out):
        result = _forecast(tiny_model_dir, data, out)
    assert result.exit_code == 75
    assert "locked by" in result.stderr
    assert {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_locked_sweep_exits_75_without_touching_the_output_dir(tmp_path: Path, tiny_model_dir: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_symbol(data, "AAA", 300)
    out.mkdir()
    with held_in_thread(out):
        result = CliRunner().invoke(
            app,
            [
                "sweep",
                "--model",
                str(tiny_model_dir),
                "--data-dir",
                str(data),
                "--output-dir",
                str(out),
                "--quiet",
            ],
        )
    assert result.exit_code == 75
    assert not (out / "sweep").exists()


def test_forecast_with_wait_runs_after_the_holder_finishes(tmp_path: Path, tiny_model_dir: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_symbol(data, "AAA", 300)
    with held_in_thread(out, release_after=1.0):
        result = _forecast(tiny_model_dir, data, out, "--wait", "60")
    assert result.exit_code == 0, result.output
    assert (out / "forecast" / "AAA" / "latest.json").is_file()


def test_a_failed_run_releases_the_lock(tmp_path: Path, tiny_model_dir: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_symbol(data, "AAA", 300)
    failed = _forecast(tiny_model_dir, data, out, "--preaug", "no_such_augmentation")
    assert failed.exit_code != 0
    with output_lock(out):  # free again
        pass


@pytest.mark.parametrize("dangling", [False, True])
@pytest.mark.parametrize("name", [".chronobt.lock.holder", ".chronobt.lock"])
def test_a_symlink_at_a_lock_file_is_refused_naming_it_and_never_written_through(
    tmp_path: Path, name: str, dangling: bool
) -> None:
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    if not dangling:
        victim.write_text("precious")
    (out / name).symlink_to(victim)
    with pytest.raises(UnsafePathError) as info, output_lock(out):
        pytest.fail("the block must not run")
    message = str(info.value)
    assert f"{name}: is a symbolic link" in message and "remove the link" in message
    assert "permissions" not in message and "\n" not in message
    assert victim.read_text() == "precious" if not dangling else not victim.exists()
    assert (out / name).is_symlink()
    (out / name).unlink()
    with output_lock(out):  # the refused attempt left the lock free
        pass


def test_a_run_refused_for_a_symlinked_lock_exits_1_with_one_line(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    write_symbol(data, "AAA", 300)
    out.mkdir()
    (out / ".chronobt.lock.holder").symlink_to(tmp_path / "victim.txt")
    result = _forecast(tiny_model_dir, data, out)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is a symbolic link" in errors[0] and "Traceback" not in result.output
    assert not (tmp_path / "victim.txt").exists() and not (out / "forecast").exists()


def test_the_holder_record_is_written_atomically_and_removed_after(tmp_path: Path) -> None:
    with output_lock(tmp_path, command=["chronobt", "backtest"]):
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == [".chronobt.lock", ".chronobt.lock.holder"]
    assert not (tmp_path / ".chronobt.lock.holder").exists()


def test_taking_the_lock_clears_what_a_killed_run_left_in_the_result_folders(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cell = out / "backtest" / "ETHUSD"
    cell.mkdir(parents=True)
    (cell / ".differencing.0123456789ab.tmp").mkdir()
    (cell / ".differencing.0123456789ab.tmp" / "forecasts.parquet").write_bytes(b"PAR1")
    (cell / ".differencing.old-0123abcd").mkdir()  # the finished results, moved aside before the kill
    (cell / ".differencing.old-0123abcd" / "metrics.json").write_text("{}")
    (out / "sweep").mkdir()
    (out / "sweep" / ".leaderboard.csv.a1b2c3d4e5f6.tmp").write_text("symbol")
    (out / ".chronobt.lock.holder.ffffffffffff.tmp").write_text("{")
    foreign = out / "notes" / ".draft.0123456789ab.tmp"  # not a folder chronobt writes
    foreign.parent.mkdir()
    foreign.write_text("someone else's")
    with output_lock(out):
        assert sorted(p.name for p in cell.iterdir()) == ["differencing"]
        assert (cell / "differencing" / "metrics.json").read_text() == "{}"
        assert list((out / "sweep").iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == [".chronobt.lock", "backtest", "notes", "sweep"]
    assert foreign.read_text() == "someone else's"


def test_clearing_leftovers_never_follows_a_linked_result_folder(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / ".keep.0123456789ab.tmp").write_text("not ours")
    (out / "forecast").symlink_to(elsewhere, target_is_directory=True)
    with output_lock(out):
        pass
    assert (elsewhere / ".keep.0123456789ab.tmp").read_text() == "not ours"
