"""Options and helpers every command shares: global flags, consoles, error handling."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from chronobt.errors import ChronobtError, ConfigError, PartialFailure

DataDirOpt = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="CHRONOBT_DATA_DIR",
        help="Folder holding <SYMBOL>.parquet files.",
        show_default=True,
    ),
]
OutputDirOpt = Annotated[
    Path,
    typer.Option(
        "--output-dir",
        envvar="CHRONOBT_OUTPUT_DIR",
        help="Folder results are written under.",
        show_default=True,
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or messages; errors still print.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable results on stdout.")]
LogFileOpt = Annotated[
    Path | None, typer.Option("--log-file", help="Also append a log of the run to this file.")
]

DEFAULT_DATA_DIR = Path("data")
DEFAULT_OUTPUT_DIR = Path("results")


@dataclass
class Ui:
    """What a command needs to talk to the user: stderr console (progress, messages) and stdout."""

    quiet: bool = False
    debug: bool = False
    json: bool = False

    def __post_init__(self) -> None:
        self.err = Console(stderr=True, quiet=self.quiet, highlight=False, soft_wrap=True)
        # Tables are results: when stdout is a file or pipe, don't squeeze them into 80 columns.
        self.out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)

    def info(self, message: str) -> None:
        self.err.print(message)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {message}")

    def print_json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        sys.stdout.flush()


class _UiLogHandler(logging.Handler):
    """Forward library warnings to the stderr console as one line each."""

    def __init__(self, ui: Ui) -> None:
        super().__init__(level=logging.WARNING)
        self.ui = ui

    def emit(self, record: logging.LogRecord) -> None:
        if self.ui.quiet:
            return
        self.ui.warn(record.getMessage())


@contextmanager
def command_context(
    *, quiet: bool = False, debug: bool = False, json_out: bool = False, log_file: Path | None = None
) -> Iterator[Ui]:
    """Set up logging for one command and turn errors into one clean line and an exit code.

    ``ChronobtError`` -> its message on stderr and its ``exit_code``; anything else -> an
    "internal error" line and exit 1. ``--debug`` re-raises so the traceback is shown.
    """
    ui = Ui(quiet=quiet, debug=debug, json=json_out)
    logger = logging.getLogger("chronobt")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    handler = _UiLogHandler(ui)
    logger.addHandler(handler)
    file_handler: logging.Handler | None = None
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            file_handler = logging.FileHandler(log_file)
        except OSError as exc:
            ui.err.print(f"error: cannot open log file {log_file}: {exc.strerror}", style="red")
            raise typer.Exit(2) from None
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(file_handler)
    try:
        yield ui
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except ChronobtError as exc:
        if debug:
            raise
        logger.debug("error: %s", exc)
        _print_error(ui, str(exc))
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:
        if debug:
            raise
        logging.getLogger("chronobt").debug("internal error", exc_info=True)
        _print_error(ui, f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)")
        raise typer.Exit(1) from None
    finally:
        logger.removeHandler(handler)
        if file_handler is not None:
            logger.removeHandler(file_handler)
            file_handler.close()


def _print_error(ui: Ui, message: str) -> None:
    # Errors reach stderr even with --quiet, as one line.
    line = " ".join(message.split("\n"))
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {line}", style="red", markup=False)


def not_yet_available(name: str) -> None:
    """Placeholder behaviour for a command whose issue has not landed yet."""
    Console(stderr=True).print(f"error: `chronobt {name}` is not yet available", style="red", markup=False)
    raise typer.Exit(2)


def parse_float_list(text: str, *, option: str) -> tuple[float, ...]:
    """Parse "0.1,0.5,0.9" -> (0.1, 0.5, 0.9); a bad item is a usage error naming the option."""
    items = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return tuple(float(p) for p in items)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated numbers like 0.1,0.5,0.9") from None


def parse_name_list(text: str, *, option: str) -> tuple[str, ...]:
    """Parse "open, Close" -> ("open", "close")."""
    names = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    if not names:
        raise ConfigError(f"{option} is empty; give comma-separated names")
    return names


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
