"""End-to-end backtests on a tiny local Chronos-2 model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.augment import AVAILABLE_AUGMENTATIONS
from chronobt.cli import app
from chronobt.config import BacktestConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.runs.backtest import run_backtest
from tests.synthetic import ohlc_frame, write_symbol

SMALL = ["--horizon", "8", "--context", "128", "--windows", "6", "--compile", "off"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


def _config(data_dir: Path, out: Path, **kw) -> BacktestConfig:
    base = dict(symbols=("AAA",), horizon=8, context=128, windows=6, data_dir=data_dir, output_dir=out)
    base.update(kw)
    return BacktestConfig(**base)


def _assert_metrics_agree_with_forecasts(
    metrics: dict, fc: pd.DataFrame, raw: pd.DataFrame, returned: dict
) -> None:
    """metrics.json's values: the run's identity, counts that match the windows, and scores that equal
    their recomputation from forecasts.parquet (model MAE, coverage, width; naive's MAE from the bars)."""
    targets = ["open", "high", "low", "close"]
    assert returned == metrics  # the summary run_backtest returns is the file's
    assert (metrics["symbol"], metrics["preaug"], metrics["run"]) == ("AAA", "differencing", "differencing")
    assert metrics["covariates"] == "none" and metrics["covariate_rows"] == []
    assert (metrics["horizon"], metrics["context_length"], metrics["windows"]) == (8, 128, 6)
    assert metrics["targets"] == targets
    assert metrics["quantiles"] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    origins = fc["origin"].drop_duplicates().sort_values()
    assert len(origins) == metrics["windows"]
    assert pd.Timestamp(metrics["first_origin"]) == origins.iloc[0]
    assert pd.Timestamp(metrics["last_origin"]) == origins.iloc[-1]
    assert metrics["filled"] == {"actual_bars": 0, "context_bars": 0, "windows_dropped": 0}
    assert metrics["compile"]["requested"] == "off" and metrics["compile"]["used"] is False
    assert "timings" not in metrics  # wall-clock seconds live in manifest.json: metrics.json is reproducible
    for t in targets:
        rows = fc[fc["target"] == t]
        m = metrics["metrics"][t]
        assert m["mae"] == pytest.approx(float(np.mean(np.abs(rows["actual"] - rows["median"]))), rel=1e-9)
        inside = (rows["actual"] >= rows["0.1"]) & (rows["actual"] <= rows["0.9"])
        assert 0.0 <= m["coverage_80"] <= 1.0 and m["coverage_80"] == pytest.approx(inside.mean())
        assert m["width_80"] == pytest.approx(float((rows["0.9"] - rows["0.1"]).mean()), rel=1e-9)
        assert 0.0 <= m["directional_accuracy"] <= 1.0
        assert m["rmse"] >= m["mae"] > 0 and m["mase"] > 0 and m["wql"] > 0
        per_step = metrics["per_step"][t]
        assert all(len(per_step[name]) == metrics["horizon"] for name in per_step)
        assert float(np.mean(per_step["mae"])) == pytest.approx(m["mae"], rel=1e-9)  # 6 windows per step
        # naive forecasts every step with the origin's price
        last = raw.loc[rows["origin"], t].to_numpy()
        naive_mae = float(np.mean(np.abs(rows["actual"].to_numpy() - last)))
        naive = metrics["baselines"]["naive"][t]
        assert naive["mae"] == pytest.approx(naive_mae, rel=1e-9)
        assert metrics["skill"][t] == pytest.approx(1 - m["mase"] / naive["mase"], rel=1e-9)
        for baseline in ("naive", "seasonal_naive", "drift"):
            assert 0.0 <= metrics["significance"][t][baseline]["mae"]["p_value"] <= 1.0
    trading = metrics["trading"]["sign"]  # the default strategy
    assert isinstance(trading["n_trades"], int) and 0 <= trading["n_trades"] <= trading["windows_used"] <= 6


def test_backtest_writes_documented_files_and_columns(tmp_path: Path, engine: Chronos2Engine) -> None:
    write_symbol(tmp_path / "data", "AAA", 400)
    report = run_backtest(_config(tmp_path / "data", tmp_path / "out", preaug="differencing"), engine=engine)
    assert not report.failures
    folder = tmp_path / "out" / "backtest" / "AAA" / "differencing"
    assert sorted(p.name for p in folder.iterdir()) == [
        "equity.parquet",
        "forecasts.parquet",
        "manifest.json",
        "metrics.json",
        "trades.parquet",
    ]
    fc = pd.read_parquet(folder / "forecasts.parquet")
    quantile_cols = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    assert list(fc.columns) == [
        "symbol",
        "origin",
        "step",
        "timestamp",
        "target",
        "actual",
        "filled",
        "median",
        *quantile_cols,
        "preaug",
    ]
    assert len(fc) == 6 * 8 * 4
    # plain strings, UTC timestamps and integer steps (not categoricals): usable without conversion
    for col in ("symbol", "target", "preaug"):
        assert pd.api.types.is_string_dtype(fc[col]) and not isinstance(fc[col].dtype, pd.CategoricalDtype)
    assert set(fc["symbol"]) == {"AAA"} and set(fc["preaug"]) == {"differencing"}
    assert list(fc["target"].iloc[:4]) == ["open", "high", "low", "close"]
    assert str(fc["origin"].dt.tz) == "UTC" and pd.api.types.is_integer_dtype(fc["step"])
    # each row's timestamp is `step` bars after its origin (hourly data)
    assert ((fc["timestamp"] - fc["origin"]) == pd.to_timedelta(fc["step"], unit="h")).all()
    assert (fc["median"] == fc["0.5"]).all()
    assert (np.diff(fc[quantile_cols].to_numpy(), axis=1) >= -1e-9).all()
    # actuals are the real future bars
    raw = ohlc_frame(400).set_index("timestamp")
    sample = fc.iloc[17]
    assert sample["actual"] == pytest.approx(raw.loc[sample["timestamp"], sample["target"]])

    metrics = json.loads((folder / "metrics.json").read_text())
    for key in (
        "symbol",
        "preaug",
        "model",
        "horizon",
        "context_length",
        "windows",
        "first_origin",
        "last_origin",
        "metrics",
        "per_step",
        "baselines",
        "skill",
        "trading",
        "compile",
    ):
        assert key in metrics, key
    assert set(metrics["metrics"]["close"]) >= {
        "mae",
        "rmse",
        "mape",
        "smape",
        "mase",
        "wql",
        "coverage_80",
        "width_80",
        "directional_accuracy",
    }
    assert set(metrics["baselines"]) == {"naive", "seasonal_naive", "drift"}
    assert len(metrics["per_step"]["close"]["mae"]) == 8
    _assert_metrics_agree_with_forecasts(metrics, fc, raw, report.results[0].summary.to_json())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["timings"]) >= {"load", "inference", "invert", "metrics", "write"}
    assert all(isinstance(v, float) and v >= 0 for v in manifest["timings"].values())
    assert manifest["timings"] == report.results[0].summary.timings and manifest["created_at"]
    assert manifest["data"]["sha256"] and manifest["model"]["checksum"]
    assert manifest["seed"] == 0 and "versions" in manifest


@pytest.mark.parametrize("preaug", sorted(AVAILABLE_AUGMENTATIONS))
def test_every_augmentation_runs_end_to_end_to_finite_prices(
    tmp_path: Path, engine: Chronos2Engine, preaug: str
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300, seed=3)
    report = run_backtest(_config(tmp_path / "data", tmp_path / "out", preaug=preaug), engine=engine)
    assert not report.failures, report.failures
    (result,) = report.results
    fc = pd.read_parquet(result.folder / "forecasts.parquet")
    assert np.isfinite(fc[["median", "0.1", "0.9"]].to_numpy()).all()
    assert (
        result.summary["preaug"].split(":")[0] == preaug
    )  # defaults are spelled out: rolling_norm:window=20


def test_changing_bars_after_an_origin_leaves_that_windows_forecast_unchanged(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    frame = ohlc_frame(400, seed=5)
    data = tmp_path / "data"
    data.mkdir()
    frame.to_parquet(data / "AAA.parquet", index=False)
    cfg = _config(data, tmp_path / "out1", preaug="rolling_norm")
    first = pd.read_parquet(run_backtest(cfg, engine=engine).results[0].folder / "forecasts.parquet")
    origins = sorted(first["origin"].unique())
    cut = origins[2]  # perturb every bar after the third origin
    later = frame["timestamp"] > cut
    frame.loc[later, ["open", "high", "low", "close"]] *= 1.5
    frame.to_parquet(data / "AAA.parquet", index=False)
    cfg2 = _config(data, tmp_path / "out2", preaug="rolling_norm")
    second = pd.read_parquet(run_backtest(cfg2, engine=engine).results[0].folder / "forecasts.parquet")
    early = first["origin"] <= cut
    cols = ["median", "0.1", "0.9"]
    np.testing.assert_array_equal(first.loc[early, cols].to_numpy(), second.loc[early, cols].to_numpy())
    assert not np.allclose(first.loc[~early, cols].to_numpy(), second.loc[~early, cols].to_numpy())


def test_same_inputs_and_seed_give_byte_identical_forecasts(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    runner = CliRunner()
    blobs = []
    for out in ("o1", "o2"):
        args = [
            "backtest",
            "AAA",
            "--preaug",
            "differencing",
            "--model",
            str(tiny_model_dir),
            *SMALL,
            "--data-dir",
            str(tmp_path / "data"),
            "--output-dir",
            str(tmp_path / out),
            "--quiet",
        ]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        blobs.append((tmp_path / out / "backtest/AAA/differencing/forecasts.parquet").read_bytes())
    assert blobs[0] == blobs[1]


def test_one_bad_symbol_does_not_stop_the_others_and_exits_3(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = tmp_path / "data"
    write_symbol(data, "GOOD", 300)
    bad = ohlc_frame(300)
    bad.loc[280:285, "close"] = -1.0  # inside the last contexts: log returns need positive prices
    bad.to_parquet(data / "BAD.parquet", index=False)
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "GOOD",
            "BAD",
            "--preaug",
            "log_returns",
            "--model",
            str(tiny_model_dir),
            *SMALL,
            "--data-dir",
            str(data),
            "--output-dir",
            str(tmp_path / "out"),
            "--json",
        ],
    )
    assert result.exit_code == 3, result.output
    assert "BAD" in result.stderr and "Traceback" not in result.output
    payload = json.loads(result.stdout)
    assert [r["symbol"] for r in payload["results"]] == ["GOOD"]
    assert (tmp_path / "out/backtest/GOOD/log_returns/metrics.json").exists()
    assert not (tmp_path / "out/backtest/BAD").exists()


def test_missing_symbol_is_one_clean_line_and_exit_2_with_nothing_written(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "NOPE",
            "--model",
            str(tiny_model_dir),
            *SMALL,
            "--data-dir",
            str(tmp_path / "data"),
            "--output-dir",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 2  # an unknown symbol is a usage error, found before the model loads
    assert "NOPE" in result.stderr and "AAA" in result.stderr  # names what exists
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_short_data_uses_the_windows_that_fit_and_warns(
    tmp_path: Path, engine: Chronos2Engine, caplog
) -> None:
    write_symbol(tmp_path / "data", "AAA", 160)
    report = run_backtest(_config(tmp_path / "data", tmp_path / "out", windows=50), engine=engine)
    (result,) = report.results
    assert 1 <= result.summary["windows"] < 50
    assert any("50" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_preaug_auto_without_a_sweep_falls_back_to_none_with_a_warning(
    tmp_path: Path, engine: Chronos2Engine, caplog
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    report = run_backtest(_config(tmp_path / "data", tmp_path / "out", preaug="auto"), engine=engine)
    assert report.results[0].preaug == "none"
    assert any("sweep" in r.getMessage() for r in caplog.records)


def test_bad_options_are_usage_errors(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    for extra, needle in (
        (["--preaug", "wavelets"], "wavelets"),
        (["--targets", "close,volume"], "--targets"),
        (["--quantiles", "0.1,0.9"], "0.5"),
        (["--horizon", "0"], "--horizon"),
    ):
        result = CliRunner().invoke(
            app,
            [
                "backtest",
                "AAA",
                "--model",
                str(tiny_model_dir),
                *SMALL,
                *extra,
                "--data-dir",
                str(tmp_path / "data"),
                "--output-dir",
                str(tmp_path / "out"),
            ],
        )
        assert result.exit_code == 2, (extra, result.output)
        assert needle in result.stderr and "Traceback" not in result.output


USAGE_CASES = ("missing_file", "symbol_dot_dot", "symbol_leading_dot", "symbol_with_space")


def test_every_bad_input_fails_backtest_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    from tests.data_cases import bad_input_cases

    (tmp_path / "cases").mkdir()
    cases = bad_input_cases(tmp_path / "cases")
    assert len(cases) >= 15
    runner = CliRunner()
    for name, path, fragment in cases:
        out = tmp_path / "out" / name
        result = runner.invoke(
            app,
            ["backtest", str(path), *SMALL, "--data-dir", str(tmp_path / "cases"), "--output-dir", str(out)],
        )
        # a path to no file, or a file whose name is no symbol, is a usage error (exit 2, before the
        # model); a file that fails validation is a data error
        assert result.exit_code == (2 if name in USAGE_CASES else 1), (name, result.output)
        assert fragment.lower() in result.stderr.lower(), (name, result.stderr)
        assert "Traceback" not in result.output and result.stdout == "", name
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and fragment.lower() in errors[0].lower(), (name, result.stderr)
        assert not (out / "backtest").exists(), name


def test_dependence_and_paths_options_change_the_inversion_of_path_dependent_augmentations(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    frames = {}
    for name, extra in (
        ("independent", ["--dependence", "independent", "--paths", "512"]),
        ("comonotonic", ["--dependence", "comonotonic"]),
    ):
        out = tmp_path / name
        result = CliRunner().invoke(
            app,
            ["backtest", "AAA", "--preaug", "differencing", "--model", str(tiny_model_dir), *SMALL, *extra,
             "--data-dir", str(tmp_path / "data"), "--output-dir", str(out), "--quiet"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        frames[name] = pd.read_parquet(out / "backtest/AAA/differencing/forecasts.parquet")
        assert (
            json.loads((out / "backtest/AAA/differencing/manifest.json").read_text())["config"]["dependence"]
            == name
        )
    ind, com = frames["independent"], frames["comonotonic"]
    # comonotonic steps add up spread linearly, independent ones like sqrt(k): wider bands at the last step
    last = ind["step"] == ind["step"].max()
    width = lambda f: (f.loc[last, "0.9"] - f.loc[last, "0.1"]).mean()  # noqa: E731
    assert width(com) > width(ind)
    bad = CliRunner().invoke(
        app,
        ["backtest", "AAA", "--dependence", "bogus", "--model", str(tiny_model_dir), *SMALL,
         "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "bad")],
    )  # fmt: skip
    assert bad.exit_code == 2 and "--dependence" in bad.stderr


def test_a_bad_preaug_is_a_usage_error_even_with_several_symbols(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    write_symbol(tmp_path / "data", "AAA", 300)
    write_symbol(tmp_path / "data", "BBB", 300, seed=1)
    result = CliRunner().invoke(
        app,
        ["backtest", "AAA", "BBB", "--preaug", "wavelets", "--model", str(tiny_model_dir), *SMALL,
         "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == 2 and "wavelets" in result.stderr
    assert not (tmp_path / "out" / "backtest").exists()
