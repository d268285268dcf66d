"""chronobt.atomic: atomic writers leave either the old file or the new one, never a partial one."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pandas as pd
import pytest

from chronobt import atomic
from chronobt.atomic import (
    check_no_symlinks,
    remove_stale_temporaries,
    replace_dir_atomic,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
)
from chronobt.errors import UnsafePathError, WriteError


def test_writers_create_parent_folders_and_write_the_content(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    write_bytes_atomic(tmp_path / "a" / "x.bin", b"\x00\x01")
    write_text_atomic(tmp_path / "b" / "x.txt", "héllo\n")
    write_json_atomic(tmp_path / "c" / "x.json", {"n": 1, "when": pd.Timestamp("2021-01-01")})
    write_parquet_atomic(tmp_path / "d" / "x.parquet", frame)
    assert (tmp_path / "a" / "x.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b" / "x.txt").read_text(encoding="utf-8") == "héllo\n"
    assert json.loads((tmp_path / "c" / "x.json").read_text()) == {"n": 1, "when": "2021-01-01 00:00:00"}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "d" / "x.parquet"), frame)


def test_parquet_writer_takes_arrow_tables_and_keeps_an_index_when_asked(tmp_path: Path) -> None:
    import pyarrow as pa

    table = pa.table({"x": [1.5, 2.5, 3.5], "name": ["a", "a", "b"], "n": [1, 1, 2]})
    write_parquet_atomic(tmp_path / "t.parquet", table)
    assert pd.read_parquet(tmp_path / "t.parquet").to_dict("list") == table.to_pydict()
    indexed = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["p", "q"], name="key"))
    write_parquet_atomic(tmp_path / "i.parquet", indexed, index=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "i.parquet"), indexed)


def test_written_files_get_ordinary_permissions_not_0600(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "x.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_failing_parquet_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = write_parquet_atomic(tmp_path / "x.parquet", pd.DataFrame({"a": [1.0]}))
    before = target.read_bytes()
    unwritable = pd.DataFrame({"a": [1.0, "text"]})  # mixed object column: pyarrow refuses it
    with pytest.raises(Exception, match=r"Conversion failed|Expected bytes"):
        write_parquet_atomic(target, unwritable)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_an_interrupted_rename_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write_json_atomic(tmp_path / "x.json", {"v": 1})

    def boom(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_replace_dir_atomic_swaps_in_the_new_folder(tmp_path: Path) -> None:
    final = tmp_path / "run"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with replace_dir_atomic(final) as tmp:
        assert tmp.parent == tmp_path and tmp != final
        (tmp / "new.txt").write_text("new")
        assert (final / "old.txt").exists()  # old results stay readable while the new ones are written
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_replace_dir_atomic_keeps_old_results_when_the_block_raises(tmp_path: Path) -> None:
    final = tmp_path / "run"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="model blew up"), replace_dir_atomic(final) as tmp:
        (tmp / "half.txt").write_text("partial")
        raise RuntimeError("model blew up")
    assert sorted(p.name for p in final.iterdir()) == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_replace_dir_atomic_creates_a_folder_that_did_not_exist(tmp_path: Path) -> None:
    with replace_dir_atomic(tmp_path / "deep" / "run") as tmp:
        (tmp / "a.txt").write_text("a")
    assert (tmp_path / "deep" / "run" / "a.txt").read_text() == "a"


def test_sha256_file_matches_hashlib_over_several_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


# --- symbolic links: never written through --------------------------------------------------------


def _planted_link(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``out/backtest/ETHUSD`` linked to another user's ``elsewhere/``; returns (out, link, target)."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (out / "backtest").mkdir(parents=True)
    elsewhere.mkdir()
    link = out / "backtest" / "ETHUSD"
    link.symlink_to(elsewhere, target_is_directory=True)
    return out, link, elsewhere


@pytest.mark.parametrize("kind", ["bytes", "text", "json", "parquet"])
def test_writers_refuse_a_symlinked_folder_below_the_root_and_name_it(tmp_path: Path, kind: str) -> None:
    out, link, elsewhere = _planted_link(tmp_path)
    target = link / "none" / "x.out"
    write = {
        "bytes": lambda: write_bytes_atomic(target, b"x", root=out),
        "text": lambda: write_text_atomic(target, "x", root=out),
        "json": lambda: write_json_atomic(target, {"x": 1}, root=out),
        "parquet": lambda: write_parquet_atomic(target, pd.DataFrame({"a": [1.0]}), root=out),
    }[kind]
    with pytest.raises(UnsafePathError) as info:
        write()
    message = str(info.value)
    assert str(link) in message and "symbolic link" in message and "remove the link" in message
    assert "\n" not in message
    assert list(elsewhere.iterdir()) == []  # nothing created through the link


def test_replace_dir_atomic_refuses_a_symlinked_folder_below_the_root(tmp_path: Path) -> None:
    out, link, elsewhere = _planted_link(tmp_path)
    with (
        pytest.raises(UnsafePathError, match="ETHUSD: is a symbolic link"),
        replace_dir_atomic(link / "none", root=out),
    ):
        pytest.fail("the block must not run")
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in (out / "backtest").iterdir()) == ["ETHUSD"]


def test_the_output_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    out = tmp_path / "out"
    out.symlink_to(real, target_is_directory=True)
    write_json_atomic(out / "backtest" / "AAA" / "x.json", {"v": 1}, root=out)
    with replace_dir_atomic(out / "forecast" / "AAA", root=out) as tmp:
        write_text_atomic(tmp / "latest.json", "{}", root=out)
    assert json.loads((real / "backtest" / "AAA" / "x.json").read_text()) == {"v": 1}
    assert (real / "forecast" / "AAA" / "latest.json").read_text() == "{}"


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_at_the_destination_is_refused_and_its_target_untouched(
    tmp_path: Path, dangling: bool
) -> None:
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_text("precious")
    link = tmp_path / "out" / "latest.json"
    link.parent.mkdir()
    link.symlink_to(victim)
    for root in (None, tmp_path / "out"):
        with pytest.raises(UnsafePathError, match=r"latest\.json: is a symbolic link"):
            write_json_atomic(link, {"v": 2}, root=root)
    assert link.is_symlink()
    assert victim.read_text() == "precious" if not dangling else not victim.exists()
    assert [p.name for p in link.parent.iterdir()] == ["latest.json"]


def test_a_symlink_at_the_destination_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "run").symlink_to(elsewhere, target_is_directory=True)
    with (
        pytest.raises(UnsafePathError, match="run: is a symbolic link"),
        replace_dir_atomic(tmp_path / "run"),
    ):
        pass
    assert (tmp_path / "run").is_symlink() and list(elsewhere.iterdir()) == []


def test_paths_climbing_out_of_the_root_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(UnsafePathError, match="climbs out"):
        write_json_atomic(out / "backtest" / ".." / "none" / "x.json", {}, root=out)
    with pytest.raises(UnsafePathError, match="outside the output folder"):
        write_json_atomic(tmp_path / "other" / "x.json", {}, root=out)
    assert not out.exists() and not (tmp_path / "other").exists()


def test_check_no_symlinks_accepts_plain_and_missing_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert check_no_symlinks(tmp_path / "a" / "b" / "c.json", tmp_path) == tmp_path / "a" / "b" / "c.json"


# --- a full or read-only disk: one line naming the path, the cause and the fix ----------------------


def _raiser(code: int) -> object:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    return fail


@pytest.mark.parametrize(
    ("code", "cause", "fix"),
    [
        (errno.ENOSPC, "the disk is full", "free space on the disk holding"),
        (errno.EROFS, "the file system is read-only", "writable disk"),
        (errno.EACCES, "permission denied", "writable for your user"),
        (errno.EIO, "Input/output error", "write to another folder"),
    ],
)
def test_a_failed_rename_is_one_line_naming_the_path_cause_and_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, cause: str, fix: str
) -> None:
    target = write_json_atomic(tmp_path / "x.json", {"v": 1})
    monkeypatch.setattr(atomic.os, "replace", _raiser(code))
    with pytest.raises(WriteError) as info:
        write_json_atomic(target, {"v": 2})
    message = str(info.value)
    assert message.startswith(f"{target}: cannot write ({cause}")
    assert fix in message and "\n" not in message and "Errno" not in message
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_parquet_write_on_a_full_disk_names_the_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "Error writing bytes to file")

    monkeypatch.setattr(atomic.pq, "write_table", full)
    with pytest.raises(WriteError, match=r"x.parquet: cannot write \(the disk is full\); free space"):
        write_parquet_atomic(tmp_path / "x.parquet", pd.DataFrame({"a": [1.0]}))
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_is_a_write_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic.os, "open", _raiser(errno.EROFS))
    with pytest.raises(WriteError, match="read-only"):
        write_bytes_atomic(tmp_path / "x.bin", b"x")
    monkeypatch.setattr(Path, "mkdir", _raiser(errno.EACCES))
    with (
        pytest.raises(WriteError, match=r"run: cannot write \(permission denied\)"),
        replace_dir_atomic(tmp_path / "run"),
    ):
        pass


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_failed_folder_swap_keeps_the_old_results_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    final = tmp_path / "run"
    final.mkdir()
    (final / "old.txt").write_text("old")
    real_replace = os.replace
    calls: list[object] = []

    def second_fails(src: object, dst: object) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise OSError(code, os.strerror(code))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.os, "replace", second_fails)
    cause = "the disk is full" if code == errno.ENOSPC else "the file system is read-only"
    with (
        pytest.raises(WriteError, match=re.escape(f"run: cannot write ({cause})")),
        replace_dir_atomic(final) as tmp,
    ):
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (final / "old.txt").read_text() == "old"


# --- leftovers of a killed run -----------------------------------------------------------------------


def test_remove_stale_temporaries_clears_the_three_kinds_of_leftovers_and_nothing_else(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "backtest" / "ETHUSD"
    folder.mkdir(parents=True)
    (folder / "differencing").mkdir()
    (folder / "differencing" / "metrics.json").write_text("{}")
    partial = folder / ".differencing.0123456789ab.tmp"
    partial.mkdir()
    (partial / "forecasts.parquet").write_bytes(b"PAR1 half")
    stale = folder / ".differencing.old-89abcdef"
    stale.mkdir()
    (stale / "metrics.json").write_text("{}")
    half_file = tmp_path / ".leaderboard.csv.a1b2c3d4e5f6.tmp"
    half_file.write_text("symbol,pre")
    keep = [tmp_path / ".chronobt.lock", tmp_path / ".hidden.tmp", tmp_path / "leaderboard.csv"]
    for path in keep:
        path.write_text("mine")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data").write_text("precious")
    (folder / ".none.fedcba987654.tmp").symlink_to(victim, target_is_directory=True)

    assert remove_stale_temporaries(tmp_path) == [half_file]
    removed = remove_stale_temporaries(tmp_path, recursive=True)
    assert sorted(p.name for p in removed) == sorted(
        [".differencing.0123456789ab.tmp", ".differencing.old-89abcdef", ".none.fedcba987654.tmp"]
    )
    assert sorted(p.name for p in folder.iterdir()) == ["differencing"]
    assert all(path.read_text() == "mine" for path in keep)
    assert (victim / "data").read_text() == "precious"
    assert remove_stale_temporaries(tmp_path / "absent") == []


def test_remove_stale_temporaries_restores_results_moved_aside_when_the_swap_was_cut(tmp_path: Path) -> None:
    aside = tmp_path / ".none.old-0000aaaa"
    aside.mkdir()
    (aside / "metrics.json").write_text('{"finished": true}')
    (tmp_path / ".none.123456abcdef.tmp").mkdir()
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["none"]
    assert json.loads((tmp_path / "none" / "metrics.json").read_text()) == {"finished": True}


_KILLED_WRITER = """
import sys, time
from pathlib import Path
from chronobt.atomic import replace_dir_atomic, write_text_atomic
out = Path(sys.argv[1])
with replace_dir_atomic(out / "run") as tmp:
    write_text_atomic(tmp / "forecasts.parquet", "partial")
    print("ready", flush=True)
    time.sleep(60)
"""


def test_a_writer_killed_mid_swap_leaves_temporaries_that_the_next_run_removes(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("old")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "run"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".run.") and leftovers[0].endswith(".tmp")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (tmp_path / "run" / "metrics.json").read_text() == "old"
