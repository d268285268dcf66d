"""`chronobt forecast` (placeholder until its issue lands)."""

from __future__ import annotations

import typer

from chronobt.cli.common import not_yet_available


def register(app: typer.Typer) -> None:
    @app.command("forecast")
    def _cmd(symbols: list[str] = typer.Argument(None, help="Symbols.")) -> None:
        """Not yet available."""
        not_yet_available("forecast")
