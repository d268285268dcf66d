"""The ``chronobt`` command line: a thin Typer layer over the library (one file per command)."""

from __future__ import annotations

import typer

from chronobt._version import __version__
from chronobt.cli import backtest, data, forecast, report, sweep
from chronobt.engine.allocator import keep_freed_memory
from chronobt.errors import ConfigError

app = typer.Typer(
    name="chronobt",
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
    try:
        keep_freed_memory()  # opt-in: CHRONOBT_MALLOC=keep keeps freed memory for the next forward
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


app.add_typer(data.app, name="data")
backtest.register(app)
sweep.register(app)
forecast.register(app)
report.register(app)


def main() -> None:
    app()
