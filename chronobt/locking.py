"""One lock per output directory, so two unattended runs never write the same results at once.

The lock file and its holder record are never followed when they are symbolic links (anyone who can
write the shared output folder could otherwise aim them at another file): a link there is refused with
one line naming it and the fix.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from chronobt.atomic import remove_stale_temporaries, write_text_atomic
from chronobt.errors import ChronobtError, ConfigError, LockError, UnsafePathError
from chronobt.publish import finish_all

logger = logging.getLogger(__name__)

LOCK_NAME = ".chronobt.lock"
HOLDER_NAME = ".chronobt.lock.holder"

#: The folders of results a run writes below the output folder, cleared of a killed run's temporaries.
RESULT_FOLDERS = ("backtest", "forecast", "sweep", "finetune")


def clear_leftovers(output_dir: Path) -> list[Path]:
    """Complete interrupted publishes (:func:`chronobt.publish.finish_all`) and remove the temporaries of
    runs killed mid-write in ``output_dir`` (call it holding the lock).

    The output folder itself and, recursively, its :data:`RESULT_FOLDERS` (never through a link):
    nothing outside chronobt's own folders is touched. Returns the entries removed or restored.
    """
    # a publish killed after its commit is completed first: its files then agree on disk too
    handled = finish_all(output_dir, [output_dir / name for name in RESULT_FOLDERS])
    handled += remove_stale_temporaries(output_dir)
    for name in RESULT_FOLDERS:
        folder = output_dir / name
        if folder.is_dir() and not folder.is_symlink():
            handled += remove_stale_temporaries(folder, recursive=True)
    return handled


def _describe_holder(output_dir: Path) -> str:
    try:
        fd = os.open(output_dir / HOLDER_NAME, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            info = json.loads(handle.read(1 << 16))
        if not isinstance(info, dict):
            raise ValueError
    except (OSError, ValueError):
        return "another chronobt run"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} ({info.get('command')})"


def _writable_folder(output_dir: Path) -> Path:
    """``output_dir``, created if missing; a user error naming the fix when it cannot be."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"--output-dir {output_dir} is a file, not a folder; pass a folder")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ChronobtError(
            f"--output-dir {output_dir}: cannot create it ({exc.strerror or exc}); "
            "pass a folder you can write"
        ) from None
    return output_dir


def _refuse_link(path: Path) -> None:
    """A user error when ``path`` is a symbolic link (dangling or not): it is never followed."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError:
        return  # unreadable folder: the lock's own open reports it
    if stat.S_ISLNK(mode):
        raise UnsafePathError(
            f"{path}: is a symbolic link; chronobt never follows links at its lock files (anyone who can "
            f"write the folder could aim it at another file); remove the link (rm '{path}') and rerun"
        )


@contextmanager
def output_lock(
    output_dir: Path, *, wait: float = 0.0, command: Sequence[str] | None = None
) -> Iterator[None]:
    """Hold the lock of ``output_dir`` for the duration of the block.

    Parameters
    ----------
    output_dir
        The results folder (created if missing). The lock file lives inside it.
    wait
        Seconds to wait for another run to finish; 0 fails at once.
    command
        The holder's command line, shown to a run that finds the lock taken.

    Once held, the temporaries a killed run left are cleared (:func:`clear_leftovers`).

    Raises
    ------
    LockError
        Another run holds the lock (exit code 75), naming the holder.
    UnsafePathError
        The lock file or the holder record is a symbolic link (named, with the fix).
    """
    lock_path = _writable_folder(output_dir) / LOCK_NAME
    holder = output_dir / HOLDER_NAME
    _refuse_link(lock_path)
    _refuse_link(holder)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=max(wait, 0.0), poll_interval=0.1)
    except Timeout:
        waited = f" after waiting {wait:g} s" if wait > 0 else ""
        raise LockError(
            f"{output_dir}: locked by {_describe_holder(output_dir)}{waited}; "
            "wait for it to finish, pass --wait SECONDS, or use another --output-dir"
        ) from None
    except OSError as exc:  # after Timeout, which is an OSError too
        if exc.errno == errno.ELOOP:  # a link planted after the check above (filelock opens O_NOFOLLOW)
            _refuse_link(lock_path)
        raise ChronobtError(
            f"{output_dir}: cannot write there ({exc.strerror or exc}); pass a writable --output-dir "
            "or fix its permissions"
        ) from None
    written = False
    try:
        _refuse_link(holder)
        write_text_atomic(
            holder,
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "command": " ".join(command) if command is not None else "python api",
                }
            ),
            root=output_dir,
        )
        written = True
        for path in clear_leftovers(output_dir):
            logger.info("cleared %s (left by a run that was killed)", path)
        yield
    finally:
        if written:
            holder.unlink(missing_ok=True)
        lock.release()
