"""`chronobt forecast SYMBOL ...`: forecast the bars after the latest one, in prices."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from chronobt.backtest import DEFAULT_QUANTILES
from chronobt.cli import engine_options as eo
from chronobt.cli.backtest import (
    ContextOpt,
    DependenceOpt,
    HorizonOpt,
    MaxGapOpt,
    PathsOpt,
    PreaugOpt,
    SeedOpt,
    WaitOpt,
)
from chronobt.cli.common import (
    DEFAULT_DATA_DIR,
    DEFAULT_OUTPUT_DIR,
    DataDirOpt,
    DebugOpt,
    JsonOpt,
    LogFileOpt,
    OutputDirOpt,
    QuietOpt,
    Ui,
    command_context,
    model_label,
    parse_float_list,
    parse_name_list,
    raise_for_failures,
)
from chronobt.cli.progress import run_locked
from chronobt.data import TARGETS
from chronobt.forecast import ForecastConfig, ForecastReport, run_forecast

ALL_TARGETS = ",".join(TARGETS)
ALL_QUANTILES = ",".join(str(q) for q in DEFAULT_QUANTILES)


def register(app: typer.Typer) -> None:
    @app.command("forecast")
    def forecast(
        symbols: Annotated[
            list[str], typer.Argument(help="Symbols (files <data-dir>/<SYMBOL>.parquet) or paths.")
        ],
        preaug: PreaugOpt = "none",
        horizon: HorizonOpt = 24,
        context: ContextOpt = 2048,
        targets: Annotated[str, typer.Option("--targets", help="Comma-separated variates.")] = ALL_TARGETS,
        quantiles: Annotated[
            str, typer.Option("--quantiles", help="Comma-separated quantile levels to write.")
        ] = ALL_QUANTILES,
        seed: SeedOpt = 0,
        dependence: DependenceOpt = "independent",
        paths: PathsOpt = None,
        max_gap: MaxGapOpt = None,
        model: eo.ModelOpt = "auto",
        device: eo.DeviceOpt = "auto",
        dtype: eo.DtypeOpt = "auto",
        compile: eo.CompileOpt = None,
        compile_backend: eo.CompileBackendOpt = None,
        compile_mode: eo.CompileModeOpt = None,
        batch_size: eo.BatchSizeOpt = None,
        data_dir: DataDirOpt = DEFAULT_DATA_DIR,
        output_dir: OutputDirOpt = DEFAULT_OUTPUT_DIR,
        wait: WaitOpt = 0.0,
        json_out: JsonOpt = False,
        quiet: QuietOpt = False,
        debug: DebugOpt = False,
        log_file: LogFileOpt = None,
    ) -> None:
        """Forecast the next --horizon bars of SYMBOL(s) from the latest --context bars.

        Writes <output-dir>/forecast/<SYMBOL>/<last-bar>.parquet, latest.parquet and latest.json.
        """
        with command_context(quiet=quiet, debug=debug, json_out=json_out, log_file=log_file) as ui:
            config = ForecastConfig(
                symbols=tuple(symbols),
                preaug=preaug,
                horizon=horizon,
                context=context,
                targets=parse_name_list(targets, option="--targets"),
                quantiles=parse_float_list(quantiles, option="--quantiles"),
                seed=seed,
                dependence=dependence,
                n_paths=paths,
                data_dir=data_dir,
                output_dir=output_dir,
                max_gap=max_gap,
            )
            engine_config = eo.engine_config_from_options(
                model=model,
                device=device,
                dtype=dtype,
                compile=compile,
                compile_backend=compile_backend,
                compile_mode=compile_mode,
                batch_size=batch_size,
            )
            with eo.quiet_transformers():
                report = run_locked(ui, run_forecast, config, engine_config, wait=wait)
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
