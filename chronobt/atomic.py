"""Atomic file writes and checksums: an interrupted run never leaves a half-written result.

The bottom of the package (beside :mod:`chronobt.errors`), so every layer (data, results, sweep) can
write through it. Files and folders get the permissions the umask gives, like any other; nothing here
changes the process umask.

Every writer puts the bytes in a temporary file in the destination's own folder (so the final
``os.replace`` is a rename on one filesystem, atomic on POSIX and Windows) and removes the temporary
file when anything fails. ``replace_dir_atomic`` does the same for a whole folder of results.

Writers never write through a symbolic link: the destination itself may not be one, and with
``root=`` (the output folder, which may itself be a link) no folder between ``root`` and the
destination may be one either (:func:`check_no_symlinks`); the temporary file is created with
``O_EXCL | O_NOFOLLOW``. An ``OSError`` while writing becomes a :class:`~chronobt.errors.WriteError`
naming the path, the cause (disk full, read-only, permission) and the fix. A run killed mid-write
leaves temporaries of a fixed naming (``.<name>.<12 hex>.tmp`` files and folders, ``.<name>.old-<8
hex>`` folders); :func:`remove_stale_temporaries` clears them under the output folder's lock.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from chronobt.errors import UnsafePathError, WriteError

__all__ = [
    "check_no_symlinks",
    "fault_point",
    "remove_stale_temporaries",
    "replace_dir_atomic",
    "sha256_file",
    "write_bytes_atomic",
    "write_error",
    "write_json_atomic",
    "write_parquet_atomic",
    "write_text_atomic",
]

_CHUNK = 1 << 20

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

#: ``.<name>.<12 hex>.tmp``: a file writer's or ``replace_dir_atomic``'s temporary (see ``_fresh_name``).
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")

#: ``.<name>.old-<8 hex>``: the previous results ``replace_dir_atomic`` moved aside before its swap.
_OLD_NAME = re.compile(r"^\.(?P<name>.+)\.old-[0-9a-f]{8}$")

#: Tests set this to stop a run at a named write point (see :func:`fault_point`); ``None`` in use.
FAULT_HOOK: Callable[[str, Path], None] | None = None


def fault_point(name: str, path: Path) -> None:
    """Call :data:`FAULT_HOOK` (if set) at the write point ``name`` about ``path``.

    Writers call it just before and after each rename that publishes results, so a test can kill the
    run there (``os._exit``), raise, or copy the folder as a kill would leave it. Points:
    ``file.written`` / ``file.replaced`` (a file writer), ``dir.filled`` / ``dir.moved-aside`` /
    ``dir.swapped`` (:func:`replace_dir_atomic`) and the ``publish.*`` points of
    :mod:`chronobt.publish`.
    """
    if FAULT_HOOK is not None:
        FAULT_HOOK(name, path)


_CAUSES = {
    errno.ENOSPC: ("the disk is full", "free space on the disk holding {folder} or write to another folder"),
    getattr(errno, "EDQUOT", -2): (
        "the disk quota is exceeded",
        "free space within your quota or write to another folder",
    ),
    errno.EROFS: ("the file system is read-only", "write to a folder on a writable disk"),
    errno.EACCES: ("permission denied", "make {folder} writable for your user or write to another folder"),
    errno.EPERM: (
        "operation not permitted",
        "make {folder} writable for your user or write to another folder",
    ),
}


def write_error(path: Path | str, exc: OSError) -> WriteError:
    """The one-line error for an ``OSError`` while writing ``path``: the path, the cause and the fix."""
    path = Path(path)
    cause, fix = _CAUSES.get(
        exc.errno or -1,
        (exc.strerror or str(exc), "check the disk and {folder}'s permissions, or write to another folder"),
    )
    return WriteError(f"{path}: cannot write ({cause}); {fix.format(folder=path.parent)}")


def _link_error(link: Path, root: Path | None) -> UnsafePathError:
    inside = f"inside {root}" if root is not None else "where a result is written"
    return UnsafePathError(
        f"{link}: is a symbolic link {inside}; chronobt never writes through links (anyone who can write "
        f"the folder could redirect results); remove the link (rm '{link}') or use another output folder"
    )


def check_no_symlinks(path: Path | str, root: Path | str | None = None) -> Path:
    """Refuse a symbolic link at ``path`` or at any folder between ``root`` (exclusive) and it.

    ``root`` (the output folder) may itself be a link; nothing below it may be. Without ``root``
    only ``path`` itself is checked. Entries that do not exist yet are fine (they will be created as
    plain folders and files). Returns ``path``.

    Raises
    ------
    UnsafePathError
        A link (named, with the fix), or ``path`` lies outside ``root`` or climbs out with ``..``.
    """
    path = Path(path)
    if root is None:
        if os.path.islink(path):
            raise _link_error(path, None)
        return path
    root = Path(root)
    try:
        rel = path.relative_to(root)
    except ValueError:
        try:
            rel = path.absolute().relative_to(root.absolute())
        except ValueError:
            raise UnsafePathError(
                f"{path}: is outside the output folder {root}; write results inside it"
            ) from None
    if any(part in (".", "..") for part in rel.parts):
        raise UnsafePathError(
            f"{path}: climbs out of its folder with '..'; use names of letters, digits and . _ - "
            "(no leading dot)"
        )
    current = root
    for part in rel.parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # the rest is created by the writer
        except OSError as exc:
            raise write_error(current, exc) from exc
        if stat.S_ISLNK(mode):
            raise _link_error(current, root)
    return path


def _write_atomic(path: Path, write: Callable[[BinaryIO], object], root: Path | str | None = None) -> Path:
    """Call ``write(handle)`` on a temporary sibling of ``path`` opened once, then rename it over ``path``.

    The data goes through the descriptor that created the temporary (``O_EXCL | O_NOFOLLOW``), never
    through its name again: a link planted at that name while the data is written is never followed.
    """
    path = Path(path)
    check_no_symlinks(path, root)
    tmp = _fresh_name(path.parent, f".{path.name}.", ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0o666 less the umask, like any ordinary file (mkstemp would make 0600); never through a link
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            _same_file(handle.fileno(), tmp)  # the name still holds what was written, not a swapped-in link
        check_no_symlinks(path, root)  # again, just before the rename
        fault_point("file.written", path)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(path, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fault_point("file.replaced", path)
    return path


def _same_file(fd: int, name: Path) -> None:
    """Refuse to rename ``name`` when it no longer is the file open as ``fd`` (replaced by a link or
    another file while the data was written)."""
    held, found = os.fstat(fd), os.lstat(name)
    if (held.st_dev, held.st_ino) != (found.st_dev, found.st_ino):
        raise UnsafePathError(
            f"{name}: replaced by another file or a symbolic link while chronobt wrote it; nothing was "
            "published. Find who writes into this folder, or use an output folder only this account writes"
        )


def _fresh_name(folder: Path, prefix: str, suffix: str) -> Path:
    """A path in ``folder`` that does not exist yet (the caller creates it exclusively)."""
    return folder / f"{prefix}{uuid.uuid4().hex[:12]}{suffix}"


def write_bytes_atomic(path: Path | str, data: bytes, *, root: Path | str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically; return the path.

    ``root``: the output folder ``path`` lies in; no symlink below it is written through.
    """
    return _write_atomic(Path(path), lambda handle: handle.write(data), root)


def write_text_atomic(
    path: Path | str, text: str, *, encoding: str = "utf-8", root: Path | str | None = None
) -> Path:
    """Write ``text`` to ``path`` atomically; return the path (``root`` as in :func:`write_bytes_atomic`)."""
    return write_bytes_atomic(path, text.encode(encoding), root=root)


def write_json_atomic(
    path: Path | str, payload: Any, *, indent: int | None = 2, root: Path | str | None = None
) -> Path:
    """Write ``payload`` as JSON (keys in the given order, ``default=str``) atomically.

    ``indent=None`` writes one line with the C encoder (faster for large payloads).
    ``root`` as in :func:`write_bytes_atomic`.
    """
    text = json.dumps(payload, indent=indent, default=str, allow_nan=True) + "\n"
    return write_text_atomic(path, text, root=root)


def write_parquet_atomic(
    path: Path | str,
    frame: pd.DataFrame | pa.Table,
    *,
    index: bool = False,
    root: Path | str | None = None,
) -> Path:
    """Write a DataFrame (its index too when ``index``) or an Arrow table to a parquet file atomically.

    Only the non-float columns are dictionary-encoded: forecasts and prices rarely repeat, and trying a
    dictionary for them first doubled the time of writing a backtest's forecasts. ``root`` as in
    :func:`write_bytes_atomic`.
    """
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=index)
    dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    return _write_atomic(
        Path(path), lambda handle: pq.write_table(table, handle, use_dictionary=dictionary), root
    )


@contextmanager
def replace_dir_atomic(final_dir: Path | str, *, root: Path | str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder; on success it replaces ``final_dir``.

    If the ``with`` block raises, the temporary folder is removed and ``final_dir`` (old results, if
    any) is left exactly as it was. On success the old folder is moved aside, the new one renamed
    into place, and the old one deleted; the window where ``final_dir`` is missing is two renames.
    ``root``: the output folder ``final_dir`` lies in; no symlink below it is written through.

    Examples
    --------
    >>> with replace_dir_atomic(Path("results/ETHUSD")) as tmp:  # doctest: +SKIP
    ...     write_json_atomic(tmp / "summary.json", {...})
    """
    final = check_no_symlinks(final_dir, root)
    tmp = _fresh_name(final.parent, f".{final.name}.", ".tmp")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(mode=0o777)  # less the umask, like any folder (mkdtemp would make 0700)
    except OSError as exc:
        raise write_error(final, exc) from exc
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fault_point("dir.filled", final)
    old = _swap_in(tmp, final, root)
    fault_point("dir.swapped", final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _swap_in(tmp: Path, final: Path, root: Path | str | None) -> Path | None:
    """Rename ``final`` aside (returned) and ``tmp`` into its place; undo on failure."""
    old: Path | None = None
    try:
        check_no_symlinks(final, root)  # again, just before the renames
        if os.path.lexists(final):
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            fault_point("dir.moved-aside", final)
        os.replace(tmp, final)
    except BaseException as exc:
        # Put the old results back if the swap itself failed half-way.
        if old is not None and not os.path.lexists(final):
            with contextlib.suppress(OSError):
                os.replace(old, final)
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise write_error(final, exc) from exc
        raise
    return old


def remove_stale_temporaries(folder: Path | str, *, recursive: bool = False) -> list[Path]:
    """Clear what writers killed mid-write (``kill -9``) left in ``folder``; return the entries handled.

    Removes ``.<name>.<12 hex>.tmp`` files and folders (a writer's temporaries) and ``.<name>.old-<8
    hex>`` folders (results moved aside for a swap). When ``<name>`` itself is missing (killed between
    the swap's two renames) the ``.old-`` folder holds the last finished results: it is renamed back
    instead. Links are removed, never followed. ``recursive`` also clears the subfolders.

    Call it only while holding the output folder's lock: another run's live temporaries match too.

    Raises
    ------
    WriteError
        An entry cannot be removed (the path, the cause and the fix).
    """
    folder = Path(folder)
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise write_error(folder, exc) from exc
    handled: list[Path] = []
    for entry in entries:
        path = Path(entry.path)
        old = _OLD_NAME.match(entry.name)
        try:
            if (
                old is not None
                and entry.is_dir(follow_symlinks=False)
                and not os.path.lexists(folder / old["name"])
            ):
                os.replace(path, folder / old["name"])
            elif old is not None or _TEMP_NAME.match(entry.name):
                _remove(path, entry.is_dir(follow_symlinks=False))
            elif recursive and entry.is_dir(follow_symlinks=False):
                handled.extend(remove_stale_temporaries(path, recursive=True))
                continue
            else:
                continue
        except OSError as exc:
            raise write_error(path, exc) from exc
        handled.append(path)
    return handled


def _remove(path: Path, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
