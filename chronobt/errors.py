"""Typed errors. The CLI turns each into one line on stderr and its ``exit_code``."""

from __future__ import annotations

__all__ = [
    "AugmentationError",
    "ChronobtError",
    "ConfigError",
    "DataError",
    "DriftError",
    "ExecutorError",
    "LockError",
    "ModelError",
    "PartialFailure",
    "UnsafePathError",
    "WriteError",
    "first_line",
]


def first_line(exc: BaseException, *, limit: int = 300) -> str:
    """The first line of ``exc``'s message, at most ``limit`` characters (its type's name when the message is
    empty): how every error chronobt wraps or records is quoted."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class ChronobtError(Exception):
    """Base of every error chronobt reports to a user (exit code 1 unless a subclass says otherwise)."""

    exit_code: int = 1


class DataError(ChronobtError):
    """An OHLC file is missing, unreadable or invalid."""


class AugmentationError(ChronobtError):
    """A pre-augmentation cannot be applied to (or inverted on) the given data."""


class ModelError(ChronobtError):
    """The Chronos-2 model cannot be resolved, loaded or run."""


class UnsafePathError(ChronobtError):
    """A symbolic link (or a path escaping its folder) where chronobt writes: refused, never followed."""


class WriteError(ChronobtError):
    """A file or folder cannot be written (disk full, read-only, permission): names the path and the fix."""


class ConfigError(ChronobtError):
    """An option or configuration value is invalid (exit code 2, like a usage error)."""

    exit_code = 2


class ExecutorError(ChronobtError):
    """A Ray cluster cannot be reached, or its workers fail or run another model."""


class LockError(ChronobtError):
    """Another run holds the output directory's lock (exit code 75, EX_TEMPFAIL)."""

    exit_code = 75


class PartialFailure(ChronobtError):
    """Some symbols failed while the others were written (exit code 3)."""

    exit_code = 3

    def __init__(self, message: str, failures: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.failures = dict(failures or {})


class DriftError(ChronobtError):
    """Live forecasts score significantly worse than their backtest (``track --fail-on-drift``, exit 4)."""

    exit_code = 4
