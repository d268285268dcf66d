"""`chronobt forecast SYMBOL ...`: forecast the bars after the latest one, in prices."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from chronobt.cli.common import Ui, model_label, raise_for_failures
from chronobt.cli.options import (
    PreaugOpt,
    ReportOpt,
    StrictAutoOpt,
    SymbolsArg,
    command,
    covariate_settings,
    engine_settings,
    finetune_settings,
    lock_settings,
    run_settings,
)
from chronobt.cli.progress import run_locked
from chronobt.cli.report import write_reports
from chronobt.config import ForecastConfig
from chronobt.engine.core import EngineConfig
from chronobt.pipeline.covariates import parse_covariates
from chronobt.runs.forecast import ForecastReport, run_forecast


def register(app: typer.Typer) -> None:
    @command(
        app,
        "forecast",
        run=run_settings,
        covariates=covariate_settings,
        engine=engine_settings,
        finetune=finetune_settings,
        wait=lock_settings,
    )
    def forecast(
        symbols: SymbolsArg,
        preaug: PreaugOpt = "none",
        report_html: ReportOpt = False,
        strict_auto: StrictAutoOpt = False,
        *,
        ui: Ui,
        run: dict[str, Any],
        covariates: str,
        engine: EngineConfig,
        finetune: dict[str, Any],
        wait: float,
    ) -> None:
        """Forecast the next --horizon bars of SYMBOL(s) from the latest --context bars.

        Writes <output-dir>/forecast/<SYMBOL>/<last-bar>.parquet, latest.parquet and latest.json.
        """
        config = ForecastConfig(
            symbols=tuple(symbols),
            preaug=preaug,
            strict_auto=strict_auto,
            covariates=parse_covariates(covariates),
            **run,
            **finetune,
        )
        report = run_locked(ui, run_forecast, config, engine, wait=wait)
        if report_html:
            write_reports(ui, [r.folder for r in report.results])
        render(ui, report)
        raise_for_failures(report.failures, succeeded=len(report.results))


def render(ui: Ui, report: ForecastReport) -> None:
    """--json: the forecasts on stdout; otherwise a table of the close forecast and its 80% band
    (nothing with --quiet)."""
    if ui.json:
        ui.print_json(
            {
                "results": [
                    {
                        **{
                            k: r.payload[k]
                            for k in ("symbol", "preaug", "horizon", "last_bar", "file", "forecast")
                        },
                        "model": r.payload["model"].get("id"),
                        "model_checksum": r.payload["model"].get("checksum"),
                        "folder": str(r.folder),
                    }
                    for r in report.results
                ],
                "failures": report.failures,
            }
        )
        return
    if ui.quiet:
        return
    for r in report.results:
        frame = r.frame
        target = "close" if "close" in set(frame["target"]) else str(frame["target"].iloc[-1])
        rows = frame[frame["target"] == target]
        levels = [c for c in frame.columns if _is_level(c)]
        lower, upper = ("0.1", "0.9") if {"0.1", "0.9"} <= set(levels) else (levels[0], levels[-1])
        last = r.payload["last_bar"]
        model = model_label(r.payload["model"].get("id"), r.payload["model"].get("checksum"))
        table = Table(
            title=f"{r.symbol} {target} · preaug {r.preaug} · model {model} · "
            f"after {last['timestamp']} ({target} {last.get(target, float('nan')):.6g})",
            title_justify="left",
        )
        for name in ("step", "timestamp", f"q{lower}", "median", f"q{upper}"):
            table.add_column(name, justify="left" if name == "timestamp" else "right")
        for step, stamp, lo, med, hi in zip(
            rows["step"], rows["timestamp"], rows[lower], rows["median"], rows[upper], strict=True
        ):
            table.add_row(str(step), stamp.isoformat(), f"{lo:.6g}", f"{med:.6g}", f"{hi:.6g}")
        ui.out.print(table)
        ui.out.print(f"written: {r.folder / r.payload['file']}")


def _is_level(name: object) -> bool:
    try:
        return 0.0 < float(str(name)) < 1.0
    except ValueError:
        return False
