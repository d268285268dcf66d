"""Step dependence, conformal calibration and significance as backtest, sweep and forecast report them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chronobt.config import BacktestConfig, ForecastConfig, SweepConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.runs.backtest import run_backtest
from chronobt.runs.forecast import run_forecast
from chronobt.runs.sweep import run_sweep
from tests.synthetic import ohlc_frame

HORIZON = 8
WINDOWS = 40  # window i has i resolved windows before it: the copula engages from window 20


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


def _write(data: Path, frame: pd.DataFrame) -> None:
    data.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(data / "AAA.parquet", index=False)


def _config(data: Path, out: Path, **kw: object) -> BacktestConfig:
    base: dict[str, object] = dict(
        symbols=("AAA",), preaug="differencing", horizon=HORIZON, context=128, windows=WINDOWS,
        data_dir=data, output_dir=out, calibrate="conformal",
    )  # fmt: skip
    base.update(kw)
    return BacktestConfig(**base)  # type: ignore[arg-type]


def test_backtest_reports_dependence_significance_seasonal_mase_and_calibrated_scores(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    _write(tmp_path / "data", ohlc_frame(600, seed=11))
    (result,) = run_backtest(_config(tmp_path / "data", tmp_path / "out"), engine=engine).results
    metrics = json.loads((result.folder / "metrics.json").read_text())
    dep = metrics["dependence"]
    assert dep["requested"] == "auto" and dep["n_fits"] >= 2
    assert dep["windows_per_method"].get("independent", 0) >= 20  # windows with < 20 resolved before them
    assert dep["latest"]["method"] in ("ar1", "shrunk", "independent")
    assert dep["latest"]["criterion"] == "calibration"  # chosen by the held-out price calibration
    assert set(dep["latest"]["holdout_scores"]) == {"independent", "ar1", "shrunk"}
    test = metrics["significance"]["close"]["naive"]
    for loss in ("mae", "quantile"):
        assert set(test[loss]) >= {"statistic", "p_value", "n", "lag", "skill", "skill_ci95"}
        assert test[loss]["n"] == WINDOWS and test[loss]["lag"] == 0  # stride = horizon: no overlap
        assert 0.0 <= test[loss]["p_value"] <= 1.0
    assert set(metrics["significance"]["close"]) == {"naive", "seasonal_naive", "drift"}
    assert metrics["metrics"]["close"]["mase_seasonal"] > 0
    assert len(metrics["per_step"]["close"]["mase_seasonal"]) == HORIZON
    assert "mase_seasonal" in metrics["baselines"]["naive"]["close"]
    calibrated = metrics["calibrated"]
    assert set(calibrated["metrics"]["close"]) == {"coverage_80", "width_80", "wql"}
    assert len(calibrated["per_step"]["close"]["coverage_80"]) == HORIZON
    assert calibrated["method"]["method"] == "aci"
    assert metrics["trading"]["sign"]["annualisation"]["method"] in ("measured", "nominal")


def test_outcomes_after_an_origin_never_change_its_dependence_calibration_or_forecast(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    frame = ohlc_frame(600, seed=12)
    _write(tmp_path / "d1", frame)
    first = run_backtest(_config(tmp_path / "d1", tmp_path / "o1"), engine=engine).results[0]
    a = pd.read_parquet(first.folder / "forecasts.parquet")
    origins = np.sort(a["origin"].unique())
    cut = origins[30]  # window 30 uses a fitted copula and calibrated levels from 30 resolved windows
    changed = frame.copy()
    after = changed["timestamp"] > cut
    changed.loc[after, ["open", "high", "low", "close"]] *= np.linspace(1.0, 1.5, int(after.sum()))[:, None]
    _write(tmp_path / "d2", changed)
    second = run_backtest(_config(tmp_path / "d2", tmp_path / "o2"), engine=engine).results[0]
    b = pd.read_parquet(second.folder / "forecasts.parquet")
    early = a["origin"] <= cut
    cols = ["median", "0.1", "0.9"]
    np.testing.assert_array_equal(a.loc[early, cols].to_numpy(), b.loc[early, cols].to_numpy())
    assert not np.allclose(a.loc[~early, cols].to_numpy(), b.loc[~early, cols].to_numpy())


def test_calibration_of_early_windows_ignores_later_outcomes(tmp_path: Path, engine: Chronos2Engine) -> None:
    from chronobt.data import load_ohlc
    from chronobt.pipeline.jobs import forecast_jobs, make_job, prepare_windows
    from chronobt.pipeline.uncertainty import calibrate, invert_job

    frame = ohlc_frame(600, seed=13)
    _write(tmp_path / "data", frame)
    config = _config(tmp_path / "data", tmp_path / "out")
    sw = prepare_windows(load_ohlc("AAA", tmp_path / "data"), config, windows=WINDOWS, context=128)
    job = make_job(sw, "differencing")
    forecast_jobs(engine, [job], HORIZON)
    price_q = invert_job(job, engine.quantile_levels, config).price_q
    calibrated, _ = calibrate(sw, price_q, config)
    sw.futures[25:] *= 2.0  # outcomes of windows 25.. (resolved after origin 25)
    again, _ = calibrate(sw, price_q, config)
    np.testing.assert_array_equal(calibrated[:26], again[:26])
    assert not np.array_equal(calibrated[27:], again[27:])


def test_forecast_learns_dependence_and_calibration_from_the_latest_resolved_windows(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    _write(tmp_path / "data", ohlc_frame(1500, seed=14))
    config = ForecastConfig(
        symbols=("AAA",), preaug="differencing", horizon=HORIZON, context=128, data_dir=tmp_path / "data",
        output_dir=tmp_path / "out", calibrate="conformal",
    )  # fmt: skip
    (result,) = run_forecast(config, engine=engine).results
    payload = json.loads((result.folder / "latest.json").read_text())
    assert payload["history_windows"] == 100
    assert payload["dependence"]["requested"] == "auto"
    assert payload["dependence"]["latest"]["n_windows"] >= 20
    assert payload["calibration"]["method"] == "aci" and payload["calibration"]["n_resolved"] == 100
    assert len(result.frame) == HORIZON * 4  # only the live window is written
    assert (result.frame["origin"] == pd.Timestamp(ohlc_frame(1500)["timestamp"].iloc[-1])).all()


def test_forecast_of_a_pointwise_augmentation_without_calibration_needs_no_history(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    _write(tmp_path / "data", ohlc_frame(400, seed=15))
    config = ForecastConfig(
        symbols=("AAA",), preaug="detrending", horizon=HORIZON, context=128, data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
    )  # fmt: skip
    (result,) = run_forecast(config, engine=engine).results
    assert result.payload["history_windows"] == 0
    assert result.payload["dependence"]["method"] == "exact"


def test_sweep_cells_carry_dependence_and_calibration_settings(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    _write(tmp_path / "data", ohlc_frame(500, seed=16))
    config = SweepConfig(
        symbols=("AAA",), preaugs=("differencing",), horizon=HORIZON, context=128, validation_windows=30,
        test_windows=10, data_dir=tmp_path / "data", output_dir=tmp_path / "out", calibrate="conformal",
    )  # fmt: skip
    report = run_sweep(config, engine=engine)
    assert not report.failures
    cells = [json.loads(p.read_text()) for p in (tmp_path / "out/sweep/cells").rglob("*.json")]
    assert {c["preaug"] for c in cells} == {"none", "differencing"}
    board = pd.read_parquet(tmp_path / "out/sweep/leaderboard.parquet")
    assert board["p_value_naive"].between(0, 1).all()
    diff = board[board["preaug"] == "differencing"]
    assert (
        diff["p_value_none"].between(0, 1).all()
        and board.loc[board["preaug"] == "none", "p_value_none"].isna().all()
    )
    best = json.loads((tmp_path / "out/sweep/best/AAA.json").read_text())
    assert set(best["test"]["significance"]) == {"vs_naive", "vs_none"}
    assert 0 <= best["test"]["significance"]["vs_naive"]["p_value"] <= 1
