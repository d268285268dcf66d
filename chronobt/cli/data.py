"""`chronobt data ...`: import, list and check OHLC files (placeholder)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Import, list and check OHLC data files.", no_args_is_help=True)


@app.command("list")
def list_cmd() -> None:
    """List symbols in the data dir."""
    raise typer.Exit(2)
