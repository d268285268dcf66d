"""Publish several result files together: a reader sees all of them old or all of them new, never a mix.

A sweep's ``leaderboard.parquet``, ``leaderboard.csv``, ``best/<SYMBOL>.json`` and ``manifest.json``, and a
forecast's ``latest.parquet`` and ``latest.json``, stay at their documented paths, yet must agree with each
other even when the run is killed (``kill -9``) between two of the renames that put them in place. Each
file alone is written atomically (:mod:`chronobt.atomic`); the set is published with a small journal:

1. **stage**: every file is written, complete, into a fresh hidden folder ``<folder>/.publish-<12 hex>/``
   under its final relative path (``best/ETHUSD.json``); the documented files are untouched;
2. **commit**: ``<folder>/.publish.json`` (the intent, written atomically) names the staging folder and the
   files; from here on the new set is the published one;
3. **move**: each staged file is renamed over its documented path; then the intent is removed and the
   staging folder deleted.

A kill before the commit leaves the old set (the staging folder is an orphan, removed by the next
publish); a kill after it leaves the new set, part of it still staged. Readers therefore resolve a path
through the intent (:func:`published_path`, :func:`read_published`): a file the intent names that is
still staged is read from the staging folder, so they read the new set whole. The output folder's lock
completes interrupted publishes everywhere below it once taken (:func:`finish_all`, from
:func:`chronobt.locking.clear_leftovers`), and the next publish in a folder does too
(:func:`finish_interrupted`), so files on disk disagree only between a kill and the next run.

Nothing below the output folder is written or moved through a symbolic link (``root``), and a journal is
trusted only as far as the disk backs it: a staging folder that is a link or not a folder, or a staged
entry that is not a plain file, is never read or moved (a planted ``.publish.json`` cannot pull a file in
from elsewhere): the journal is dropped with a warning and the documented files stay.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from chronobt.atomic import check_no_symlinks, fault_point, write_error, write_json_atomic

__all__ = [
    "INTENT_NAME",
    "finish_all",
    "finish_interrupted",
    "publish",
    "published_names",
    "published_path",
    "read_published",
]

#: The journal of a publish in progress (or interrupted), in the published folder.
INTENT_NAME = ".publish.json"
_STAGING = re.compile(r"^\.publish-[0-9a-f]{12}$")
T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Intent:
    staging: str  # the staging folder's name, in the published folder
    files: tuple[str, ...]  # relative POSIX paths, as published


def _read_intent(folder: Path) -> _Intent | None:
    """The intent in ``folder``, or ``None`` (none, or not one chronobt wrote: a link, bad JSON)."""
    try:
        fd = os.open(folder / INTENT_NAME, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            payload = json.loads(handle.read(1 << 22))
        staging, files = str(payload["staging"]), tuple(str(f) for f in payload["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _STAGING.match(staging) or any(".." in Path(f).parts or Path(f).is_absolute() for f in files):
        return None
    return _Intent(staging, files)


def _plain(path: Path, below: Path) -> bool:
    """Whether ``path`` exists as what it claims without a link: every folder from ``below`` down to it a
    real folder, and ``path`` itself a real folder (staging) or a plain file (a staged entry)."""
    try:
        parts = path.relative_to(below).parts
    except ValueError:
        return False
    current = below
    for i, part in enumerate(parts):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except OSError:
            return False
        last = i == len(parts) - 1
        if not (stat.S_ISDIR(mode) or (last and stat.S_ISREG(mode))):
            return False
    return True


def published_path(folder: Path | str, relative: str) -> Path:
    """Where the published ``relative`` file of ``folder`` is now: its documented path, or its staged copy
    while a publish that named it is unfinished (killed after its commit)."""
    folder = Path(folder)
    intent = _read_intent(folder)
    if intent is not None and relative in intent.files:
        staged = folder / intent.staging / relative
        if _plain(staged, folder):
            return staged
    return folder / relative


def published_names(folder: Path | str, under: str, pattern: str = "*") -> list[str]:
    """The published files matching ``pattern`` directly in ``folder/under``, as relative paths (sorted):
    those at their documented paths and those an unfinished publish still holds staged."""
    folder = Path(folder)
    names = {f"{under}/{p.name}" for p in (folder / under).glob(pattern) if _plain(p, folder)}
    intent = _read_intent(folder)
    if intent is not None and _plain(folder / intent.staging, folder):
        staged = folder / intent.staging
        names |= {
            f
            for f in intent.files
            if (staged / f).parent == staged / under and Path(f).match(pattern) and _plain(staged / f, folder)
        }
    return sorted(names)


def read_published(folder: Path | str, relative: str, read: Callable[[Path], T]) -> T:
    """``read(path)`` of the published ``relative`` file (:func:`published_path`).

    A publish running at the same time may move the staged copy between the lookup and the read: the
    lookup and read are tried three times before the ``FileNotFoundError`` is raised.
    """
    for _ in range(2):
        with contextlib.suppress(FileNotFoundError):
            return read(published_path(folder, relative))
    return read(published_path(folder, relative))


@contextmanager
def publish(folder: Path | str, *, root: Path | str) -> Iterator[Path]:
    """Yield a staging folder; the files written into it replace their namesakes in ``folder`` together.

    Write each file under its final path relative to ``folder`` (``stage / "best" / "ETHUSD.json"``). If
    the block raises, nothing is published. Files of ``folder`` not staged are left as they are.

    Raises
    ------
    UnsafePathError
        A destination (or a folder above it, below ``root``) is a symbolic link: refused before anything
        is published.
    WriteError
        An ``OSError`` while staging or moving (the path, the cause and the fix).
    """
    folder = check_no_symlinks(Path(folder), root)
    finish_interrupted(folder, root=root)
    staging = folder / f".publish-{uuid.uuid4().hex[:12]}"
    try:
        staging.mkdir(parents=True, mode=0o777)
    except OSError as exc:
        raise write_error(staging, exc) from exc
    try:
        yield staging
        files = tuple(sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if not p.is_dir()))
        for rel in files:
            check_no_symlinks(folder / rel, root)  # before the commit: a refusal publishes nothing
        fault_point("publish.staged", folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_json_atomic(folder / INTENT_NAME, {"staging": staging.name, "files": list(files)}, root=root)
    fault_point("publish.committed", folder)
    _move_staged(folder, _Intent(staging.name, files), root)


def _move_staged(folder: Path, intent: _Intent, root: Path | str) -> None:
    """Rename every still-staged file of ``intent`` over its documented path, then drop the journal."""
    staging = folder / intent.staging
    for rel in intent.files:
        src, dst = staging / rel, folder / rel
        if not os.path.lexists(src):
            continue  # moved before an interruption
        if not _plain(src, folder):
            logger.warning("%s: not a file chronobt staged; left where it is, not published", src)
            continue
        check_no_symlinks(dst, root)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        except OSError as exc:
            raise write_error(dst, exc) from exc
        fault_point("publish.moved", dst)
    try:
        (folder / INTENT_NAME).unlink(missing_ok=True)
    except OSError as exc:
        raise write_error(folder / INTENT_NAME, exc) from exc
    fault_point("publish.done", folder)
    shutil.rmtree(staging, ignore_errors=True)


def finish_interrupted(folder: Path | str, *, root: Path | str) -> list[Path]:
    """Complete a publish in ``folder`` killed after its commit, and remove orphan staging folders (killed
    before it); return the staging folders handled. Call it holding the output folder's lock."""
    folder = Path(folder)
    intent = _read_intent(folder)
    if intent is not None and _plain(folder / intent.staging, folder):
        _move_staged(folder, intent, root)
    elif os.path.lexists(folder / INTENT_NAME):
        if intent is not None:
            logger.warning(
                "%s names %s, which is not a folder chronobt staged; the journal is dropped and the "
                "published files stay as they are",
                folder / INTENT_NAME,
                folder / intent.staging,
            )
        with contextlib.suppress(OSError):
            (folder / INTENT_NAME).unlink()  # its files were all moved, or it is not ours
    handled: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if _STAGING.match(entry.name):
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                handled.append(path)
    if intent is not None:
        handled.append(folder / intent.staging)
    return handled


def finish_all(root: Path | str, folders: Iterable[Path]) -> list[Path]:
    """:func:`finish_interrupted` in every folder below ``folders`` that holds a journal (never through a
    link); call it holding the output folder's lock. Returns the staging folders handled."""
    handled: list[Path] = []
    for top in folders:
        if not _plain(top, Path(root)):
            continue
        for current, dirs, files in os.walk(top):  # os.walk does not follow links by default
            staged = [d for d in dirs if _STAGING.match(d)]
            dirs[:] = [d for d in dirs if d not in staged]  # never descend into a staging folder
            if INTENT_NAME in files or staged:
                handled += finish_interrupted(current, root=root)
    return handled
