"""`chronobt backtest SYMBOL ...`: rolling-origin evaluation of Chronos-2 with a pre-augmentation."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from chronobt.backtest import DEFAULT_QUANTILES, BacktestConfig, BacktestReport, run_backtest
from chronobt.cli import engine_options as eo
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

PreaugOpt = Annotated[
    str,
    typer.Option(
        "--preaug",
        help="Pre-augmentation NAME[:k=v] (none, differencing, detrending, robust_scaling, log_returns, "
        "percent_change, rolling_norm[:window=20]) or 'auto' for the sweep's choice.",
    ),
]
HorizonOpt = Annotated[int, typer.Option("--horizon", help="Bars to forecast after each origin.")]
ContextOpt = Annotated[int, typer.Option("--context", help="Bars of history per window (at most).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for sampling-based quantile inversion.")]
DependenceOpt = Annotated[
    str,
    typer.Option(
        "--dependence",
        help="How forecast steps are coupled when inverting quantiles of path-dependent augmentations "
        "(differencing, rolling_norm): independent (sample paths) or comonotonic (per-quantile inversion).",
    ),
]
PathsOpt = Annotated[
    int | None,
    typer.Option("--paths", help="Sample paths for path-dependent inversion (default 4096).", min=2),
]
WaitOpt = Annotated[
    float, typer.Option("--wait", help="Seconds to wait for another run holding the output dir's lock.")
]
MaxGapOpt = Annotated[
    int | None,
    typer.Option("--max-gap", help="Largest gap (bars) in 24/7 data to fill; a larger one is an error."),
]


def register(app: typer.Typer) -> None:
    @app.command("backtest")
    def backtest(
        symbols: Annotated[
            list[str], typer.Argument(help="Symbols (files <data-dir>/<SYMBOL>.parquet) or paths.")
        ],
        preaug: PreaugOpt = "none",
        horizon: HorizonOpt = 24,
        context: ContextOpt = 2048,
        windows: Annotated[
            int, typer.Option("--windows", help="Number of rolling windows (latest first).")
        ] = 100,
        stride: Annotated[
            int | None, typer.Option("--stride", help="Bars between origins (default: the horizon).")
        ] = None,
        start: Annotated[str | None, typer.Option("--start", help="Earliest origin date.")] = None,
        end: Annotated[str | None, typer.Option("--end", help="Latest origin date.")] = None,
        targets: Annotated[str, typer.Option("--targets", help="Comma-separated variates.")] = ",".join(
            TARGETS
        ),
        quantiles: Annotated[
            str, typer.Option("--quantiles", help="Comma-separated quantile levels to report.")
        ] = ",".join(str(q) for q in DEFAULT_QUANTILES),
        fee_bps: Annotated[
            float, typer.Option("--fee-bps", help="Trading fee per side, basis points.")
        ] = 10.0,
        allow_short: Annotated[
            bool, typer.Option("--allow-short", help="Let the trading view go short.")
        ] = False,
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
        """Backtest Chronos-2 on SYMBOL(s) over rolling origins.

        Writes <output-dir>/backtest/<SYMBOL>/<preaug>/ (forecasts, metrics, trades, manifest).
        """
        with command_context(quiet=quiet, debug=debug, json_out=json_out, log_file=log_file) as ui:
            config = BacktestConfig(
                symbols=tuple(symbols),
                preaug=preaug,
                horizon=horizon,
                context=context,
                windows=windows,
                stride=stride,
                start=start,
                end=end,
                targets=parse_name_list(targets, option="--targets"),
                quantiles=parse_float_list(quantiles, option="--quantiles"),
                fee_bps=fee_bps,
                allow_short=allow_short,
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
                report = run_locked(ui, run_backtest, config, engine_config, wait=wait)
            render(ui, report)
            raise_for_failures(report.failures, succeeded=len(report.results))


def render(ui: Ui, report: BacktestReport) -> None:
    if ui.json:
        ui.print_json(
            {
                "results": [
                    {
                        "symbol": r.symbol,
                        "preaug": r.preaug,
                        "folder": str(r.folder),
                        **{
                            k: r.summary[k]
                            for k in ("model", "model_checksum", "windows", "metrics", "skill")
                        },
                        "baselines": r.summary["baselines"],
                        "trading": r.summary["trading"],
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
        s = r.summary
        table = Table(
            title=f"{r.symbol} · preaug {r.preaug} · {s['windows']} windows · horizon {s['horizon']} · "
            f"model {model_label(s['model'], s['model_checksum'])}",
            title_justify="left",
        )
        table.add_column("target")
        table.add_column("model MASE", justify="right")
        for name in s["baselines"]:
            table.add_column(f"{name} MASE", justify="right")
        table.add_column("skill", justify="right")
        table.add_column("WQL", justify="right")
        table.add_column("naive WQL", justify="right")
        table.add_column("cov80", justify="right")
        table.add_column("dir. acc", justify="right")
        for target, m in s["metrics"].items():
            table.add_row(
                target,
                _fmt(m["mase"]),
                *[_fmt(b[target]["mase"]) for b in s["baselines"].values()],
                _fmt(s["skill"][target]),
                _fmt(m["wql"]),
                _fmt(s["baselines"]["naive"][target]["wql"]),
                _fmt(m["coverage_80"]),
                _fmt(m["directional_accuracy"]),
            )
        ui.out.print(table)
        if s.get("trading"):
            t = s["trading"]
            ui.out.print(
                f"trading: total {_pct(t['total_return'])} vs buy-and-hold {_pct(t['buy_and_hold'])}, "
                f"sharpe {_fmt(t['sharpe'], 2)}, {t['n_trades']} trades, "
                f"max drawdown {_fmt(t['max_drawdown'] and 100 * t['max_drawdown'], 2)}%"
            )
        ui.out.print(f"written: {r.folder}")


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2%}"
