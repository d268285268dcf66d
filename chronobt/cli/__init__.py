"""The ``chronobt`` command line: a thin Typer layer over the library (one file per command).

Commands load lazily: ``chronobt --help`` imports no command module, and a command module imports the
library (torch, chronos) inside its body only, so ``chronobt <command> --help`` and ``chronobt data ...``
start without them. :data:`COMMANDS` names each command's module and the one-line help the root listing
shows (tests/test_cli_startup.py keeps it equal to the command's own).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from chronobt._version import __version__

#: name -> (module whose ``app`` holds the command, the short help of the root listing), in listing order
COMMANDS: dict[str, tuple[str, str]] = {
    "backtest": ("chronobt.cli.backtest", "Backtest Chronos-2 on SYMBOL(s) over rolling origins."),
    "sweep": (
        "chronobt.cli.sweep",
        "Try every pre-augmentation on every symbol; earlier windows choose, later windows report.",
    ),
    "forecast": (
        "chronobt.cli.forecast",
        "Forecast the next --horizon bars of SYMBOL(s) from the latest --context bars.",
    ),
    "track": (
        "chronobt.cli.track",
        "Score every archived forecast whose bars have arrived, beside the backtest it came from.",
    ),
    "report": (
        "chronobt.cli.report",
        "Write report.html (charts as inline SVG, works offline) beside the outputs in PATH.",
    ),
    "data": ("chronobt.cli.data", "Import, list and check OHLC data files."),
}


class _LoadedOnUse(Mapping[str, Any]):
    """The root's commands: a command's module is imported when the command is first looked up."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            module = importlib.import_module(COMMANDS[name][0])
            self._loaded[name] = typer.main.get_command(module.app)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class LazyGroup(TyperGroup):
    """A Typer group whose commands are imported on use; its help lists them from :data:`COMMANDS`."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LoadedOnUse()  # type: ignore[assignment]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        listing = TyperGroup(commands=[TyperCommand(name, help=text) for name, (_, text) in COMMANDS.items()])
        TyperGroup.format_commands(listing, ctx, formatter)


app = typer.Typer(
    name="chronobt",
    cls=LazyGroup,
    help="Backtest Amazon's Chronos-2 on OHLC price data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chronobt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Backtest Amazon's Chronos-2 on OHLC price data."""
    from chronobt.engine.allocator import keep_freed_memory
    from chronobt.errors import ConfigError

    try:
        keep_freed_memory()  # opt-in: CHRONOBT_MALLOC=keep keeps freed memory for the next forward
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def main() -> None:
    app()
