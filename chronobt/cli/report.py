"""`chronobt report PATH`: a self-contained HTML report beside backtest, sweep or forecast outputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chronobt.cli.common import Ui, command_context
from chronobt.cli.options import DebugOpt, JsonOpt, LogFileOpt, QuietOpt, command_app, ui_options

if TYPE_CHECKING:
    from chronobt.report import ReportSet

PathArg = Annotated[
    Path,
    typer.Argument(
        help="A backtest, sweep or forecast output folder, or a folder holding several "
        "(such as the whole --output-dir).",
        show_default=False,
    ),
]


app = command_app()


@app.command("report")
def report(
    path: PathArg,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    json_out: JsonOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Write report.html (charts as inline SVG, works offline) beside the outputs in PATH.

    A folder of several outputs gets one report in each output folder and an index,
    PATH/report.html, linking them.
    """
    options = locals()
    with command_context(**ui_options(options)) as ui:
        from chronobt.report import write_reports as write_all

        render(ui, write_all(path))


def render(ui: Ui, written: ReportSet) -> None:
    """--json: the reports written; otherwise one line per report (nothing with --quiet)."""
    everything = [*written.reports, *([written.index] if written.index else [])]
    if ui.json:
        ui.print_json(
            {
                "report": str(written.main),
                "reports": [
                    {
                        "path": str(r.path),
                        "folder": str(r.folder),
                        "kind": r.kind,
                        "bytes": r.bytes,
                        "seconds": round(r.seconds, 3),
                    }
                    for r in everything
                ],
            }
        )
        return
    if ui.quiet:
        return
    for r in everything:
        ui.out.print(
            f"written: {r.path} ({r.kind}, {r.bytes / 1024:.0f} KiB, {r.seconds:.2f} s)", markup=False
        )


def write_reports(ui: Ui, folders: list[Path]) -> None:
    """``--report`` on backtest, sweep and forecast: one report.html in each result folder."""
    from chronobt.report import write_report

    for folder in folders:
        ui.info(f"report: {write_report(folder)}")
