"""Covariates: volume, calendar and other symbols beside the targets (reference, look-ahead, errors, CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.config import BacktestConfig, ForecastConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ConfigError, DataError
from chronobt.pipeline.covariates import RunLabel, calendar_features, parse_covariate_sets, parse_covariates
from chronobt.pipeline.jobs import forecast_jobs, latest_window, load_symbol, make_job, prepare_windows
from chronobt.runs.backtest import run_backtest
from chronobt.runs.forecast import run_forecast
from tests.synthetic import ohlc_frame, write_symbol

HORIZON = 8


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off", batch_size=6))


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    write_symbol(tmp_path / "data", "AAA", 300, seed=1)
    write_symbol(tmp_path / "data", "BBB", 300, seed=2)
    return tmp_path / "data"


def _options(data_dir: Path, covariates: tuple[str, ...], **kw: object) -> BacktestConfig:
    base: dict[str, object] = dict(
        symbols=("AAA",), horizon=HORIZON, context=64, windows=3, data_dir=data_dir, covariates=covariates
    )
    base.update(kw)
    return BacktestConfig(**base)  # type: ignore[arg-type]


def _forecast(engine: Chronos2Engine, data_dir: Path, covariates: tuple[str, ...], spec: str = "none"):
    options = _options(data_dir, covariates, targets=("close",))
    sw = prepare_windows(load_symbol("AAA", options), options, windows=3, context=64)
    job = make_job(sw, spec)
    forecast_jobs(engine, [job], HORIZON)
    return sw, job


def test_engine_with_future_covariates_equals_chronos_predict_with_covariate_dict(
    engine: Chronos2Engine,
) -> None:
    rng = np.random.default_rng(0)
    n_tasks, length = 5, 70  # batch_size 6 over 3 rows: 2 tasks per forward, a padded dummy task
    target = 100 + rng.normal(size=(n_tasks, 1, length)).cumsum(axis=-1)
    past_only = rng.lognormal(size=(n_tasks, 1, length))
    known = np.sin(np.arange(length + HORIZON) / 5.0)[None, None, :] + rng.normal(size=(n_tasks, 1, 1))
    contexts = np.concatenate([target, past_only, known[..., :length]], axis=1)
    future = np.full((n_tasks, 3, HORIZON), np.nan)
    future[:, 2] = known[:, 0, length:]
    forecast = engine.predict(contexts, HORIZON, future=future)
    inputs = [
        {
            "target": target[i, 0],
            "past_covariates": {"a_volume": past_only[i, 0], "b_calendar": known[i, 0, :length]},
            "future_covariates": {"b_calendar": known[i, 0, length:]},
        }
        for i in range(n_tasks)
    ]
    expected = engine.pipeline.predict(inputs, prediction_length=HORIZON)
    for i in range(n_tasks):
        np.testing.assert_allclose(forecast[i, :1], expected[i].numpy(), rtol=1e-5, atol=1e-5)
    without = engine.predict(contexts, HORIZON)
    assert not np.allclose(without[:, 0], forecast[:, 0])  # the known future reached the model


def test_all_unknown_future_gives_the_same_forecast_as_none(engine: Chronos2Engine) -> None:
    contexts = 100 + np.random.default_rng(1).normal(size=(3, 2, 40)).cumsum(axis=-1)
    future = np.full((3, 2, HORIZON), np.nan)
    np.testing.assert_array_equal(
        engine.predict(contexts, HORIZON, future=future), engine.predict(contexts, HORIZON)
    )


def test_future_of_the_wrong_shape_is_a_config_error(engine: Chronos2Engine) -> None:
    with pytest.raises(ConfigError, match="tasks, variates, horizon"):
        engine.predict(np.ones((2, 2, 40)), HORIZON, future=np.ones((2, 2, HORIZON + 1)))


def test_pipeline_window_equals_chronos_predict_with_volume_calendar_and_other_symbol(
    engine: Chronos2Engine, data_dir: Path
) -> None:
    sw, job = _forecast(engine, data_dir, ("volume", "BBB", "calendar"))
    assert sw.covariate_names == ("volume", "BBB", "hour_sin", "hour_cos", "dow_sin", "dow_cos")
    frame = sw.ohlc.frame
    other = load_symbol("BBB", _options(data_dir, ())).frame["close"].reindex(frame.index).to_numpy()
    hours = calendar_features(frame.index, with_hour=True)
    origin, length = int(sw.origins[-1]), sw.context_length
    past = slice(origin + 1 - length, origin + 1)
    fut = slice(origin + 1, origin + 1 + HORIZON)
    names = ["hour_sin", "hour_cos", "dow_sin", "dow_cos"]
    (expected,) = engine.pipeline.predict(
        [
            {
                "target": frame["close"].to_numpy()[past],
                "past_covariates": {
                    "a_volume": np.log1p(frame["volume"].to_numpy()[past]),
                    "b_other": other[past],
                    **{f"c{k}_{n}": hours[past, k] for k, n in enumerate(names)},
                },
                "future_covariates": {f"c{k}_{n}": hours[fut, k] for k, n in enumerate(names)},
            }
        ],
        prediction_length=HORIZON,
    )
    assert job.raw_quantiles is not None and job.raw_quantiles.shape[1] == 1  # covariate rows dropped
    np.testing.assert_allclose(job.raw_quantiles[-1], expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("covariate", ["volume", "BBB"])
def test_perturbing_bars_after_an_origin_leaves_that_windows_forecast_unchanged(
    engine: Chronos2Engine, data_dir: Path, covariate: str
) -> None:
    covariates = (covariate, "calendar")
    sw, job = _forecast(engine, data_dir, covariates)
    first = int(sw.origins[0])
    for symbol, column in (("AAA", "close"), ("AAA", "volume"), ("BBB", "close")):
        path = data_dir / f"{symbol}.parquet"
        frame = pd.read_parquet(path)
        after = frame.index > first
        frame.loc[after, column] *= np.exp(np.random.default_rng(3).normal(0, 0.5, int(after.sum())))
        frame.loc[after, "high"] = frame.loc[after, ["open", "high", "low", "close"]].max(axis=1)
        frame.loc[after, "low"] = frame.loc[after, ["open", "high", "low", "close"]].min(axis=1)
        frame.to_parquet(path, index=False)
    perturbed_sw, perturbed = _forecast(engine, data_dir, covariates)
    assert perturbed_sw.origins[0] == first
    assert job.raw_quantiles is not None and perturbed.raw_quantiles is not None
    np.testing.assert_array_equal(perturbed.raw_quantiles[0], job.raw_quantiles[0])
    assert not np.array_equal(perturbed.raw_quantiles[-1], job.raw_quantiles[-1])


def test_augmentation_applies_to_targets_only(engine: Chronos2Engine, data_dir: Path) -> None:
    sw, job = _forecast(engine, data_dir, ("volume",), spec="differencing")
    assert sw.covariate_contexts is not None
    np.testing.assert_array_equal(job.model_input[:, 1:], sw.covariate_contexts)
    assert job.future is not None and np.isnan(job.future).all()  # volume has no future


def test_calendar_features_are_sin_cos_of_hour_and_day_of_week() -> None:
    ts = pd.DatetimeIndex(["2024-01-01 06:00", "2024-01-03 18:00"], tz="UTC")  # Monday, Wednesday
    feats = calendar_features(ts, with_hour=True)
    np.testing.assert_allclose(feats[0, :2], [1.0, 0.0], atol=1e-12)  # 06:00 is a quarter day
    np.testing.assert_allclose(feats[1, :2], [-1.0, 0.0], atol=1e-12)
    week = 2 * np.pi * np.array([0.25, 2.75]) / 7
    np.testing.assert_allclose(feats[:, 2:], np.stack([np.sin(week), np.cos(week)], axis=1))


def test_daily_bars_drop_the_constant_hour_of_day_rows(tmp_path: Path) -> None:
    write_symbol(tmp_path / "d", "DAY", 200, freq="D")
    options = _options(tmp_path / "d", ("calendar",), symbols=("DAY",))
    sw = prepare_windows(load_symbol("DAY", options), options, windows=2, context=64)
    assert sw.covariate_names == ("dow_sin", "dow_cos")


def test_forecast_calendar_future_comes_from_future_timestamps(data_dir: Path) -> None:
    options = ForecastConfig(symbols=("AAA",), horizon=HORIZON, data_dir=data_dir, covariates=("calendar",))
    ohlc = load_symbol("AAA", options)
    sw = latest_window(ohlc, options, context=64, history=2)
    assert sw.covariate_futures is not None and sw.covariate_contexts is not None
    assert sw.covariate_contexts.shape[-1] == sw.context_length
    times = ohlc.future_timestamps(ohlc.index[-1], HORIZON)
    np.testing.assert_allclose(sw.covariate_futures[-1].T, calendar_features(times, with_hour=True))


def test_volume_covariate_without_a_volume_column_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    ohlc_frame(200).drop(columns="volume").to_parquet(tmp_path / "d" / "NOV.parquet", index=False)
    options = _options(tmp_path / "d", ("volume",), symbols=("NOV",))
    with pytest.raises(DataError, match=r"NOV\.parquet: has no volume column"):
        prepare_windows(load_symbol("NOV", options), options, windows=2, context=64)


def test_symbols_without_shared_timestamps_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    ohlc_frame(200, seed=1).to_parquet(tmp_path / "d" / "AAA.parquet", index=False)
    ohlc_frame(200, seed=2, start="2030-01-01").to_parquet(tmp_path / "d" / "LATE.parquet", index=False)
    options = _options(tmp_path / "d", ("LATE",))
    with pytest.raises(DataError, match=r"AAA\.parquet and .*LATE\.parquet share no timestamps"):
        prepare_windows(load_symbol("AAA", options), options, windows=2, context=64)


def test_other_symbol_bars_it_lacks_stay_missing(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    ohlc_frame(300, seed=1).to_parquet(tmp_path / "d" / "AAA.parquet", index=False)
    ohlc_frame(300, seed=2).iloc[::2].to_parquet(tmp_path / "d" / "HALF.parquet", index=False)  # 2-hourly
    options = _options(tmp_path / "d", ("HALF",))
    sw = prepare_windows(load_symbol("AAA", options), options, windows=2, context=64)
    assert sw.covariate_contexts is not None
    observed = ~np.isnan(sw.covariate_contexts[:, 0])
    assert observed.any() and not observed.all()  # every other bar missing, never filled


def test_parse_covariates_normalises_names_and_sets() -> None:
    assert parse_covariates("Volume, calendar,btcusd") == ("volume", "calendar", "BTCUSD")
    assert parse_covariates("none") == ()
    assert parse_covariate_sets("none,volume,volume+calendar") == ((), ("volume",), ("volume", "calendar"))
    assert str(RunLabel("differencing", ("volume", "calendar"))) == "differencing+volume+calendar"
    assert parse_covariates("volume,volume+calendar") == ("volume", "calendar")
    with pytest.raises(ConfigError, match="twice"):
        BacktestConfig(symbols=("AAA",), covariates=("volume", "volume"))


def test_backtest_with_covariates_writes_a_folder_named_after_preaug_and_covariates(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    args = ["backtest", "AAA", "--preaug", "differencing", "--covariates", "volume,calendar"]
    args += ["--horizon", "8", "--context", "64", "--windows", "3", "--compile", "off"]
    args += ["--data-dir", str(data_dir), "--output-dir", str(out), "--model", str(tiny_model_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = out / "backtest" / "AAA" / "differencing+volume+calendar"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["covariates"] == "volume+calendar" and metrics["run"] == "differencing+volume+calendar"
    fc = pd.read_parquet(folder / "forecasts.parquet")
    assert set(fc["target"]) == {"open", "high", "low", "close"}  # covariates are not forecasts
    assert set(fc["covariates"]) == {"volume+calendar"}


def test_forecast_with_covariates_records_them(
    data_dir: Path, tmp_path: Path, engine: Chronos2Engine
) -> None:
    config = ForecastConfig(
        symbols=("AAA",),
        horizon=HORIZON,
        context=64,
        data_dir=data_dir,
        output_dir=tmp_path / "out",
        covariates=("BBB", "calendar"),
    )
    report = run_forecast(config, engine=engine)
    assert not report.failures, report.failures
    payload = json.loads((tmp_path / "out" / "forecast" / "AAA" / "latest.json").read_text())
    assert payload["covariates"] == "BBB+calendar"
    assert payload["covariate_rows"][0] == "BBB"


def test_backtest_api_with_covariates_scores_the_targets_only(
    data_dir: Path, tmp_path: Path, engine: Chronos2Engine
) -> None:
    config = _options(data_dir, ("volume",), output_dir=tmp_path / "out", preaug="none")
    report = run_backtest(config, engine=engine)
    assert not report.failures, report.failures
    (result,) = report.results
    assert result.folder.name == "none+volume"
    assert result.summary["targets"] == ["open", "high", "low", "close"]
    assert result.summary["covariate_rows"] == ["volume"]


def test_sweep_ranks_augmentation_and_covariate_pairs_and_auto_brings_back_the_chosen_covariates(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    common = ["--horizon", "8", "--context", "64", "--compile", "off", "--model", str(tiny_model_dir)]
    common += ["--data-dir", str(data_dir), "--output-dir", str(out)]
    sweep = [
        "sweep",
        "AAA",
        "--preaug",
        "none,differencing,robust_scaling",
        "--covariates",
        "none,volume+BBB",
    ]
    sweep += ["--validation-windows", "4", "--test-windows", "3"]
    result = CliRunner().invoke(app, [*sweep, *common])
    assert result.exit_code == 0, result.output
    board = pd.read_parquet(out / "sweep" / "leaderboard.parquet")
    labels = ["none", "differencing", "robust_scaling"]
    labels += ["none+volume+BBB", "differencing+volume+BBB", "robust_scaling+volume+BBB"]
    assert list(board.loc[board["split"] == "validation", "preaug"]) == labels
    assert list(board.loc[board["split"] == "validation", "covariates"]) == ["none"] * 3 + ["volume+BBB"] * 3
    assert board["mase_seasonal"].notna().all()
    equivalent = dict(zip(board["preaug"], board["equivalent_to"], strict=False))
    assert equivalent["robust_scaling+volume+BBB"] == "none+volume+BBB"  # affine: not forecast again
    best = json.loads((out / "sweep" / "best" / "AAA.json").read_text())
    val = board[board["split"] == "validation"].reset_index(drop=True)
    assert best["best"] == val.loc[int(np.argmin(val["mase"].to_numpy())), "preaug"]
    assert str(RunLabel(best["best_preaug"], parse_covariates(best["best_covariates"]))) == best["best"]

    backtest = ["backtest", "AAA", "--preaug", "auto", "--windows", "2", *common]
    result = CliRunner().invoke(app, backtest)
    assert result.exit_code == 0, result.output
    (folder,) = (out / "backtest" / "AAA").iterdir()
    assert folder.name == "auto"  # an auto run's own folder; its run label names the choice
    assert json.loads((folder / "metrics.json").read_text())["run"] == best["best"]


def test_compiled_engine_with_known_futures_compiles_on_the_first_call_only_and_gives_eager_numbers(
    tiny_model_dir: Path, engine: Chronos2Engine
) -> None:
    import torch
    from torch._dynamo.backends.registry import register_backend

    counter = {"compilations": 0}

    def backend(graph_module, example_inputs):
        counter["compilations"] += 1
        return graph_module.forward

    register_backend(backend, name="chronobt_test_counting_covariates")
    torch._dynamo.reset()
    compiled = Chronos2Engine(
        EngineConfig(
            model=str(tiny_model_dir),
            device="cpu",
            compile="on",
            compile_backend="chronobt_test_counting_covariates",
            batch_size=6,
        )
    )
    rng = np.random.default_rng(5)
    counts = []
    for n_tasks in (5, 3):  # two calls, the last batch of each padded with a dummy task
        contexts = 100 + rng.normal(size=(n_tasks, 3, 48)).cumsum(axis=-1)
        future = np.full((n_tasks, 3, HORIZON), np.nan)
        future[:, 2] = rng.normal(size=(n_tasks, HORIZON))
        got = compiled.predict(contexts, HORIZON, future=future)
        np.testing.assert_allclose(
            got, engine.predict(contexts, HORIZON, future=future), rtol=1e-5, atol=1e-5
        )
        counts.append(counter["compilations"])
    record = compiled.record()["compile"]
    # chronos' forward checks the known future for NaN (`if torch.isnan(...).any()`): dynamo splits the
    # forward at that data-dependent branch into a few graphs, all compiled by the first call, none after
    assert counts[0] >= 1 and counts[1] == counts[0]
    assert record["used"] and record["fallback_reason"] is None


def test_long_horizon_unrolling_with_known_futures_matches_chronos_predict(tmp_path: Path) -> None:
    from chronobt.engine.checkpoints import ArchSpec, save_random_checkpoint

    spec = ArchSpec(
        d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4, context_length=256, max_output_patches=2
    )
    model = save_random_checkpoint(tmp_path / "unroll", spec, seed=1)
    unrolling = Chronos2Engine(EngineConfig(model=str(model), device="cpu", compile="off"))
    horizon = 3 * unrolling.output_patch_size + 5  # beyond 2 output patches: chronos' unrolling
    rng = np.random.default_rng(6)
    length = 60
    target = 100 + rng.normal(size=(2, length)).cumsum(axis=-1)
    known = np.sin(np.arange(length + horizon) / 4.0)[None] + rng.normal(size=(2, 1))
    contexts = np.stack([target, known[:, :length]], axis=1)
    future = np.full((2, 2, horizon), np.nan)
    future[:, 1] = known[:, length:]
    forecast = unrolling.predict(contexts, horizon, future=future)
    assert unrolling.record()["long_horizon_unrolling"] is True
    for i in range(2):
        inputs = {
            "target": target[i],
            "past_covariates": {"k": known[i, :length]},
            "future_covariates": {"k": known[i, length:]},
        }
        with pytest.warns(UserWarning, match="prediction length"):
            (expected,) = unrolling.pipeline.predict([inputs], prediction_length=horizon)
        np.testing.assert_allclose(forecast[i, :1], expected.numpy(), rtol=1e-5, atol=1e-5)
