"""`chronobt track [SYMBOL ...]`: score the archived forecasts as their bars arrive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from chronobt.cli.common import Ui, command_context, command_line, p_value_text, raise_for_failures
from chronobt.cli.options import (
    AllowShortOpt,
    CalendarOpt,
    DataDirOpt,
    DebugOpt,
    FeeOpt,
    JsonOpt,
    LogFileOpt,
    MaxGapOpt,
    OutputDirOpt,
    QuietOpt,
    ReportOpt,
    WaitOpt,
    build_config,
    command_app,
    ui_options,
)
from chronobt.config import LockOptions
from chronobt.config import TrackConfig as T

if TYPE_CHECKING:
    from chronobt.runs.track import TrackReport

app = command_app()


@app.command("track")
def track(
    symbols: Annotated[
        list[str] | None,
        typer.Argument(help="Symbols to track (default: every symbol with a forecast archive)."),
    ] = None,
    fail_on_drift: Annotated[
        bool,
        typer.Option(
            "--fail-on-drift", help="Exit 4 when live losses are significantly worse than the backtest's."
        ),
    ] = T.fail_on_drift,
    drift_alpha: Annotated[
        float, typer.Option("--drift-alpha", help="Significance level of the live-vs-backtest test.")
    ] = T.drift_alpha,
    report_html: ReportOpt = False,
    fee_bps: FeeOpt = T.fee_bps,
    allow_short: AllowShortOpt = T.allow_short,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap skill intervals.")] = T.seed,
    max_gap: MaxGapOpt = T.max_gap,
    calendar: CalendarOpt = T.calendar,
    data_dir: DataDirOpt = T.data_dir,
    output_dir: OutputDirOpt = T.output_dir,
    wait: WaitOpt = LockOptions.wait,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    json_out: JsonOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Score every archived forecast whose bars have arrived, beside the backtest it came from.

    Writes <output-dir>/track/<SYMBOL>/<label>/ledger.parquet, metrics.json, trades.parquet,
    orders.parquet, manifest.json.
    """
    options = locals()
    with command_context(**ui_options(options)) as ui:
        from chronobt.cli.progress import stage_progress
        from chronobt.errors import DriftError
        from chronobt.locking import output_lock
        from chronobt.runs.track import run_track

        config = build_config(T, {**options, "symbols": tuple(symbols or ())})
        lock = build_config(LockOptions, options)
        line = command_line()
        with output_lock(config.output_dir, wait=lock.wait, command=line), stage_progress(ui) as progress:
            report = run_track(config, progress=progress, command=line)
        if report_html:
            from chronobt.cli.report import write_reports

            write_reports(ui, [r.folder for r in report.results])
        render(ui, report)
        drifted = report.drifted() if config.fail_on_drift else []
        if drifted:
            more = f" (and {len(drifted) - 1} more)" if len(drifted) > 1 else ""
            raise DriftError(f"live forecasts worse than their backtest: {drifted[0]}{more}")
        raise_for_failures(report.failures, succeeded=len(report.results))


def _row(metrics: dict[str, Any], target: str) -> list[str]:
    scores = (metrics.get("metrics") or {}).get(target) or {}
    naive = ((metrics.get("baselines") or {}).get("naive") or {}).get(target) or {}
    test = (((metrics.get("significance") or {}).get(target) or {}).get("naive") or {}).get("mae") or {}
    drift = (metrics.get("drift") or {}).get(target) or {}

    def num(x: object) -> str:
        return "-" if x is None else f"{float(x):.4g}"  # type: ignore[arg-type]

    return [
        num(scores.get("mase")),
        num(naive.get("mase")),
        num(scores.get("coverage_80")),
        p_value_text(test.get("p_value")) if test else "-",
        num(drift.get("backtest_mase")),
        p_value_text(drift.get("p_value")) if drift else "-",
    ]


def render(ui: Ui, report: TrackReport) -> None:
    """--json: each label's counts, scores, drift and orders; otherwise a table on close (nothing with
    --quiet)."""
    if ui.json:
        keys: tuple[str, ...] = ("forecasts", "windows", "pending", "metrics", "skill", "significance")
        keys += ("drift", "revised", "orders")
        ui.print_json(
            {
                "results": [
                    {
                        "symbol": r.symbol,
                        "label": r.label,
                        "folder": str(r.folder),
                        "written": r.written,
                        **{k: r.metrics.get(k) for k in keys},
                        "refused": r.metrics.get("refused"),
                    }
                    for r in report.results
                ],
                "failures": report.failures,
            }
        )
        return
    if ui.quiet:
        return
    table = Table(title="live track record (close)", title_justify="left")
    for name in ("symbol", "label", "forecasts", "scored", "pending", "MASE", "naive MASE", "cov 80%"):
        table.add_column(name, justify="left" if name in ("symbol", "label") else "right")
    for name in ("p vs naive", "backtest MASE", "drift p"):
        table.add_column(name, justify="right")
    for r in report.results:
        m = r.metrics
        target = "close" if "close" in m.get("targets", ()) else str((m.get("targets") or ["-"])[-1])
        table.add_row(
            r.symbol, r.label, str(m["forecasts"]), str(m["windows"]), str(m["pending"]), *_row(m, target)
        )
    ui.out.print(table)
    for r in report.results:
        revised = (r.metrics.get("revised") or {}).get("count", 0)
        if revised:
            ui.info(
                f"{r.symbol} {r.label}: {revised} forecast(s) made before a revision of their bars (flagged)"
            )
