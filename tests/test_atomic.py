"""chronobt.atomic: atomic writers leave either the old file or the new one, never a partial one."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from chronobt import atomic
from chronobt.atomic import (
    replace_dir_atomic,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
)


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
