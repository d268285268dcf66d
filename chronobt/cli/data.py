"""`chronobt data ...`: import, list and check OHLC files (tables/JSON on stdout, warnings on stderr)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from chronobt.cli.common import Ui, command_context
from chronobt.cli.options import (
    CalendarOpt,
    DataDirOpt,
    DebugOpt,
    JsonOpt,
    MaxGapOpt,
    QuietOpt,
    choices,
    command_app,
)
from chronobt.config import COLUMN_SETS, RunOptions, check_column_set, check_max_gap, check_time_zone
from chronobt.data import adjust_stored_splits, check_ohlc, import_csv_report, list_symbols, require_bars

app = command_app(help="Import, list and check OHLC data files.", no_args_is_help=True)
DEFAULT_DATA_DIR = RunOptions.data_dir

TzOpt = Annotated[
    str | None,
    typer.Option(
        "--tz",
        help="Zone of timestamps written without one, e.g. America/New_York (default UTC). "
        "Timestamps with a zone or offset are converted as written.",
    ),
]

AdjustSplitsOpt = Annotated[
    bool,
    typer.Option(
        "--adjust-splits",
        help="Back-adjust one-bar moves that look like unadjusted splits (prices before divided by the "
        "factor, volume multiplied). Without it they are only reported.",
    ),
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        metavar=choices(COLUMN_SETS),
        help="Which of two column sets differing only in case (open/Open) wins a row where they "
        "conflict: lower (open) or capitalized (Open). Default: a conflict is an error.",
    ),
]


@app.command("import")
def import_cmd(
    csv_file: Annotated[Path, typer.Argument(help="Exchange CSV export (banner, newest-first are fine).")],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="Symbol to store it as, e.g. ETHUSD.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing <SYMBOL>.parquet.")] = False,
    max_gap: MaxGapOpt = RunOptions.max_gap,
    tz: TzOpt = None,
    columns: ColumnsOpt = None,
    adjust_splits: AdjustSplitsOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Convert FILE.csv to <data-dir>/<SYMBOL>.parquet (validated, sorted, de-duplicated; atomic write)."""
    with command_context(quiet=quiet, debug=debug, json_out=json_out) as ui:
        check_max_gap(max_gap)  # a bad option is a usage error before the file is read
        check_time_zone(tz)
        columns = columns.strip().lower() if columns else None  # matched in any case, as other choices
        check_column_set(columns)
        path, imported = import_csv_report(
            csv_file,
            symbol=symbol,
            data_dir=data_dir,
            max_gap=max_gap,
            overwrite=force,
            tz=tz,
            columns=columns,
            adjust_splits=adjust_splits,
        )
        summary = check_ohlc(path, max_gap=max_gap).summary()
        summary["import_report"] = imported.to_dict()
        if json_out:
            ui.print_json(summary)
            return
        ui.info(f"wrote {path}")
        _print_summary(ui, summary)


@app.command("list")
def list_cmd(
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """List the symbols in the data dir: rows, first/last timestamp, bar frequency, calendar."""
    with command_context(quiet=quiet, debug=debug, json_out=json_out) as ui:
        infos = list_symbols(data_dir)
        if json_out:
            ui.print_json([info.to_dict() for info in infos])
            return
        if ui.quiet:
            return
        if not infos:
            ui.info(f"no .parquet files in {data_dir}; add one with `chronobt data import FILE.csv -s SYM`")
            return
        table = Table("symbol", "rows", "first", "last", "freq", "calendar", "notes", title=str(data_dir))
        for info in infos:
            if info.error is not None:
                table.add_row(info.symbol, "-", "-", "-", "-", "-", f"error: {info.error}")
                continue
            notes = f"{info.warnings} warning(s)" if info.warnings else ""
            table.add_row(
                info.symbol,
                f"{info.rows:,}",
                _ts(info.first),
                _ts(info.last),
                info.freq,
                f"{info.calendar} ({info.trading_calendar})" if info.trading_calendar else info.calendar,
                notes,
            )
        ui.out.print(table)


@app.command("check")
def check_cmd(
    target: Annotated[str, typer.Argument(metavar="SYMBOL|PATH", help="Symbol in --data-dir, or a path.")],
    max_gap: MaxGapOpt = RunOptions.max_gap,
    min_bars: Annotated[
        int | None, typer.Option("--min-bars", min=1, help="Fail unless the series has this many bars.")
    ] = None,
    calendar: CalendarOpt = None,
    adjust_splits: AdjustSplitsOpt = False,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Validate one series and print its report: gaps, duplicates, OHLC inconsistencies, non-positive
    prices, one-bar moves like unadjusted splits or bad prints (--adjust-splits rewrites the file)."""
    with command_context(quiet=quiet, debug=debug, json_out=json_out) as ui:
        check_max_gap(max_gap)
        adjusted = adjust_stored_splits(target, data_dir)[1].splits_adjusted if adjust_splits else ()
        ohlc = check_ohlc(target, data_dir, max_gap=max_gap, calendar=calendar)
        if min_bars is not None:
            require_bars(ohlc, min_bars, purpose=f"--min-bars {min_bars}")
        summary = ohlc.summary()
        if adjust_splits:
            summary["splits_adjusted"] = [asdict(jump) for jump in adjusted]
        if json_out:
            ui.print_json(summary)
            return
        _print_summary(ui, summary)


def _print_summary(ui: Ui, summary: dict[str, Any]) -> None:
    if ui.quiet:  # --quiet prints nothing on success (warnings still go to stderr)
        return
    report = summary["report"]
    table = Table(title=f"{summary['symbol']} ({summary['path']})", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("rows", f"{summary['rows']:,} (read {report['rows_read']:,})")
    table.add_row("span (UTC)", f"{summary['first'][:16]} .. {summary['last'][:16]}".replace("T", " "))
    trading = summary.get("trading_calendar") or "no holiday calendar"
    table.add_row("freq / calendar", f"{summary['freq']} / {summary['calendar']} ({trading})")
    annual = summary["annualisation"]
    table.add_row(
        "season / bars per year",
        f"{summary['season_length']} / {annual['bars_per_year']:.6g} ({annual['method']}, "
        f"{annual['span_years']:.2f} years)",
    )
    table.add_row("columns", ", ".join(summary["columns"]))
    table.add_row("sha256", summary["sha256"])
    adjusted = summary.get("splits_adjusted")
    if adjusted is not None:
        lines = [
            f"{j['timestamp']} ({j['where']}): factor {j['factor']:g}; file rewritten" for j in adjusted
        ] or ["no split found; file unchanged"]
        for i, line in enumerate(lines):
            table.add_row("splits adjusted" if i == 0 else "", line)
    imported = summary.get("import_report")
    if imported is not None:
        repairs = imported["warnings"] or ["none: the CSV was clean"]
        for i, line in enumerate(repairs):
            table.add_row("import repairs" if i == 0 else "", line)
    findings = report["warnings"] or ["clean: no repairs or findings"]
    for i, line in enumerate(findings):
        table.add_row(("stored file" if imported is not None else "report") if i == 0 else "", line)
    ui.out.print(table)


def _ts(ts: Any) -> str:
    return "-" if ts is None else ts.strftime("%Y-%m-%d %H:%M")
