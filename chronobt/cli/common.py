"""Options and helpers every command shares: global flags, consoles, error handling."""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from chronobt.errors import ChronobtError, PartialFailure


@dataclass
class Ui:
    """What a command needs to talk to the user: stderr console (progress, messages) and stdout."""

    quiet: bool = False
    debug: bool = False
    json: bool = False

    def __post_init__(self) -> None:
        self.err = Console(stderr=True, quiet=self.quiet, highlight=False, soft_wrap=True)
        # Tables are results: when stdout is a file or pipe, never squeeze (or cut) them to a width;
        # a table is only as wide as its content.
        self.out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)

    def info(self, message: str) -> None:
        self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {message}")

    def print_json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        sys.stdout.flush()


#: Console width of stdout when it is not a terminal: wide enough that no table column is cut.
PIPE_WIDTH = 1000
#: Records of this logger go to the log file only (the run's start, finish and error lines).
RUN_LOGGER = "chronobt.cli.run"


class _UiLogHandler(logging.Handler):
    """Forward library warnings to the stderr console as one line each."""

    def __init__(self, ui: Ui) -> None:
        super().__init__(level=logging.WARNING)
        self.ui = ui

    def emit(self, record: logging.LogRecord) -> None:
        if self.ui.quiet or record.name == RUN_LOGGER:
            return
        self.ui.warn(record.getMessage())


def command_line() -> list[str]:
    """The command line of this process as a user typed it (recorded in manifests and the log)."""
    return ["chronobt", *sys.argv[1:]]


@contextmanager
def command_context(
    *, quiet: bool = False, debug: bool = False, json_out: bool = False, log_file: Path | None = None
) -> Iterator[Ui]:
    """Set up logging for one command and turn errors into one clean line and an exit code.

    ``ChronobtError`` -> its message on stderr and its ``exit_code``; anything else -> an
    "internal error" line and exit 1. ``--debug`` re-raises so the traceback is shown. With
    ``log_file``, the file gets a start line (the command), every warning and error (the one-line
    error too) and a finish line (exit code, duration). The ``chronobt`` logger's level and handlers are
    restored afterwards.
    """
    ui = Ui(quiet=quiet, debug=debug, json=json_out)
    logger = logging.getLogger("chronobt")
    run_log = logging.getLogger(RUN_LOGGER)
    previous_level = logger.level
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    handler = _UiLogHandler(ui)
    logger.addHandler(handler)
    file_handler = _open_log(log_file, ui) if log_file is not None else None
    if file_handler is not None:
        logger.addHandler(file_handler)
    started = time.perf_counter()
    run_log.info("start: %s", shlex.join(command_line()))
    code = 0
    try:
        yield ui
    except typer.Exit as exc:
        code = exc.exit_code
        raise
    except (typer.Abort, KeyboardInterrupt):
        code = 130
        run_log.error("error: interrupted")
        raise
    except ChronobtError as exc:
        code = exc.exit_code
        if debug:
            raise
        run_log.error("error: %s", _one_line(str(exc)))
        _print_error(ui, str(exc))
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:
        code = 1
        if debug:
            raise
        message = f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)"
        logger.debug("internal error", exc_info=True)
        run_log.error("error: %s", _one_line(message))
        _print_error(ui, message)
        raise typer.Exit(1) from None
    finally:
        run_log.info("finish: exit %d after %.1f s", code, time.perf_counter() - started)
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        if file_handler is not None:
            logger.removeHandler(file_handler)
            file_handler.close()


def _open_log(log_file: Path, ui: Ui) -> logging.Handler:
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
    except OSError as exc:
        _print_error(ui, f"cannot open log file {log_file}: {exc.strerror}; pass a writable --log-file")
        raise typer.Exit(2) from None
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def _one_line(message: str) -> str:
    return " ".join(message.split("\n"))


def _print_error(ui: Ui, message: str) -> None:
    # Errors reach stderr even with --quiet, as one line.
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"error: {_one_line(message)}", style="red", markup=False
    )


def raise_for_failures(failures: dict[str, str], *, succeeded: int) -> None:
    """Turn per-symbol failures into the exit code: none -> return; all -> 1; some -> 3 (partial).

    A single failed symbol keeps its own message (it already names the file and the fix).
    """
    if not failures:
        return
    if not succeeded and len(failures) == 1:
        raise ChronobtError(next(iter(failures.values())))
    detail = "; ".join(f"{symbol}: {message}" for symbol, message in failures.items())
    if not succeeded:
        raise ChronobtError(f"every symbol failed: {detail}")
    total = succeeded + len(failures)
    raise PartialFailure(
        f"{len(failures)} of {total} symbols failed ({detail}); the others were written", failures
    )


def model_label(model_id: object, checksum: object) -> str:
    """How every console summary names the model that ran: ``chronos2-mini (sha256 1a2b3c4d5e6f)``."""
    short = str(checksum)[:12] if checksum else "no checksum"
    return f"{model_id} (sha256 {short})"


#: p-values below this get a mark in the console tables.
SIGNIFICANT = 0.05


def p_value_text(p: object) -> str:
    """``"0.012 *"`` (marked below :data:`SIGNIFICANT`), or ``"-"`` when the test is undefined."""
    if not isinstance(p, (int, float)) or p != p:  # None or NaN
        return "-"
    return f"{float(p):.3f}" + (" *" if p < SIGNIFICANT else "")
