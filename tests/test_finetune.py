"""Walk-forward fine-tuning on a tiny local Chronos-2 model (a few training steps, CPU)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from chronobt import finetune as ft
from chronobt.cli import app
from chronobt.config import BacktestConfig, ForecastConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ConfigError
from chronobt.runs.backtest import run_backtest
from chronobt.runs.forecast import run_forecast
from tests.synthetic import ohlc_frame, write_symbol

#: Small enough for a test: 3 steps of 8 series of 64 bars.
TUNE: dict[str, Any] = {
    "finetune": "full",
    "finetune_steps": 3,
    "finetune_batch": 8,
    "finetune_context": 64,
}
CLI_TUNE = ["--finetune-steps", "3", "--finetune-batch", "8", "--finetune-context", "64"]
SMALL = ["--horizon", "8", "--context", "128", "--windows", "6", "--compile", "off"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


def _config(data_dir: Path, out: Path, **kw: Any) -> BacktestConfig:
    base: dict[str, Any] = dict(
        symbols=("AAA",), horizon=8, context=128, windows=6, data_dir=data_dir, output_dir=out, **TUNE
    )
    base.update(kw)
    return BacktestConfig(**base)


def _perturb_after(frame: pd.DataFrame, cut: pd.Timestamp) -> None:
    """Scale every bar after ``cut`` by its own random factor (a bar's OHLC stay consistent)."""
    later = frame["timestamp"] > cut
    factor = np.exp(np.random.default_rng(9).normal(0.0, 0.05, int(later.sum())))
    frame.loc[later, ["open", "high", "low", "close"]] *= factor[:, None]


def _tuned(report: Any, symbol: str = "AAA") -> Any:
    return next(r for r in report.results if r.finetune and r.symbol == symbol)


def _forecasts(result: Any) -> pd.DataFrame:
    return pd.read_parquet(result.folder / "forecasts.parquet")


def test_bars_after_a_cutoff_change_neither_the_tuned_weights_nor_the_forecasts_up_to_it(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    frame = ohlc_frame(400, seed=5)
    data = tmp_path / "data"
    data.mkdir()
    frame.to_parquet(data / "AAA.parquet", index=False)
    first = _tuned(run_backtest(_config(data, tmp_path / "out1", refit_every=3), engine=engine))
    refits = first.summary["finetune"]["refits"]
    assert [r["first_window"] for r in refits] == [0, 3]
    fc1 = _forecasts(first)
    origins = sorted(fc1["origin"].unique())
    assert pd.Timestamp(refits[1]["cutoff"]) == origins[3]

    cut = origins[3]  # every bar after the second refit's cutoff
    _perturb_after(frame, cut)
    frame.to_parquet(data / "AAA.parquet", index=False)
    second = _tuned(run_backtest(_config(data, tmp_path / "out2", refit_every=3), engine=engine))

    assert [r["checksum"] for r in second.summary["finetune"]["refits"]] == [r["checksum"] for r in refits]
    assert not any(r["cached"] for r in second.summary["finetune"]["refits"])  # trained again, same weights
    fc2 = _forecasts(second)
    early = fc1["origin"] <= cut
    cols = ["median", "0.1", "0.9"]
    np.testing.assert_array_equal(fc1.loc[early, cols].to_numpy(), fc2.loc[early, cols].to_numpy())


def test_bars_before_a_refit_cutoff_change_that_refits_training_data_only(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    frame = ohlc_frame(400, seed=5)
    data = tmp_path / "data"
    data.mkdir()
    frame.to_parquet(data / "AAA.parquet", index=False)
    first = _tuned(run_backtest(_config(data, tmp_path / "out1", refit_every=3), engine=engine))
    cut = pd.Timestamp(first.summary["finetune"]["refits"][0]["cutoff"])
    _perturb_after(frame, cut)
    frame.to_parquet(data / "AAA.parquet", index=False)
    second = _tuned(run_backtest(_config(data, tmp_path / "out2", refit_every=3), engine=engine))
    old, new = (r.summary["finetune"]["refits"] for r in (first, second))
    assert (old[0]["key"], old[0]["checksum"]) == (new[0]["key"], new[0]["checksum"])
    assert old[1]["key"] != new[1]["key"]  # the key hashes the training arrays


def test_rerun_reuses_the_cached_weights_and_reports_them_as_cached(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    write_symbol(tmp_path / "data", "AAA", 400)
    config = _config(tmp_path / "data", tmp_path / "out")
    first = _tuned(run_backtest(config, engine=engine))
    stages: list[str] = []
    second = _tuned(run_backtest(config, engine=engine, progress=lambda s, d, t: stages.append(s)))
    assert first.summary["finetune"]["refits"][0]["cached"] is False
    refit = second.summary["finetune"]["refits"][0]
    assert refit["cached"] is True and refit["checksum"] == first.summary["finetune"]["refits"][0]["checksum"]
    assert "finetune cached" in stages and "finetune" not in stages
    folder = tmp_path / "out" / "finetune" / refit["key"]
    record = json.loads((folder / "finetune.json").read_text())
    assert record["steps"] == 3 and record["loss"]["logged"] >= 1
    assert {"first", "last", "min"} <= set(record["loss"])


def test_finetuned_results_sit_beside_zero_shot_with_the_test_against_it(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    write_symbol(tmp_path / "data", "AAA", 400)
    report = run_backtest(_config(tmp_path / "data", tmp_path / "out", preaug="differencing"), engine=engine)
    assert not report.failures
    zero = next(r for r in report.results if not r.finetune)
    tuned = _tuned(report)
    assert zero.folder.name == "differencing" and tuned.folder.name == "differencing+finetune-full"
    assert list(_forecasts(zero)["origin"].unique()) == list(_forecasts(tuned)["origin"].unique())
    versus = tuned.summary["finetune"]["versus_zero_shot"]
    assert set(versus) == {"open", "high", "low", "close"}
    assert {"p_value", "skill", "mean_diff"} <= set(versus["close"]["mae"])
    manifest = json.loads((tuned.folder / "manifest.json").read_text())
    model = manifest["model"]
    assert model["source"] == "finetune" and model["checksum"] != model["base_checksum"]
    assert model["cache_key"] == tuned.summary["finetune"]["refits"][0]["key"]
    assert {"cutoff", "steps", "loss"} <= set(model)


def test_one_model_for_all_symbols_by_default_and_one_each_with_per_symbol(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    write_symbol(tmp_path / "data", "AAA", 400, seed=1)
    write_symbol(tmp_path / "data", "BBB", 400, seed=2)
    both = ("AAA", "BBB")
    joint = run_backtest(_config(tmp_path / "data", tmp_path / "out1", symbols=both), engine=engine)
    keys = {_tuned(joint, s).summary["finetune"]["refits"][0]["key"] for s in both}
    assert len(keys) == 1
    assert _tuned(joint).summary["finetune"]["refits"][0]["symbols"] == ["AAA", "BBB"]
    apart = run_backtest(
        _config(tmp_path / "data", tmp_path / "out2", symbols=both, finetune_per_symbol=True), engine=engine
    )
    refits = {s: _tuned(apart, s).summary["finetune"]["refits"][0] for s in both}
    assert refits["AAA"]["key"] != refits["BBB"]["key"]
    assert refits["BBB"]["symbols"] == ["BBB"]


def test_lora_merges_the_adapter_into_weights_that_differ_from_the_base(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    pytest.importorskip("peft")
    write_symbol(tmp_path / "data", "AAA", 400)
    report = run_backtest(_config(tmp_path / "data", tmp_path / "out", finetune="lora"), engine=engine)
    tuned = _tuned(report)
    assert tuned.folder.name == "none+finetune-lora"
    assert tuned.summary["model_checksum"] != ft.weights_checksum(engine.pipeline.model)
    assert np.isfinite(tuned.summary["metrics"]["close"]["mase"])


def test_lora_training_is_reproducible_whatever_the_global_torch_generator_state(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    pytest.importorskip("peft")
    write_symbol(tmp_path / "data", "AAA", 400)
    checksums = []
    for run in (1, 2):
        torch.manual_seed(100 + run)
        report = run_backtest(
            _config(tmp_path / "data", tmp_path / f"out{run}", finetune="lora"), engine=engine
        )
        checksums.append(_tuned(report).summary["model_checksum"])
    assert checksums[0] == checksums[1]


def test_lora_without_peft_is_an_error_naming_the_extra(
    tmp_path: Path, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a)
    )
    write_symbol(tmp_path / "data", "AAA", 400)
    with pytest.raises(ConfigError, match=r"chronobt\[finetune\]"):
        run_backtest(_config(tmp_path / "data", tmp_path / "out", finetune="lora"), engine=engine)
    assert not (tmp_path / "out").exists()


def test_interrupted_training_leaves_no_cache_folder(
    tmp_path: Path, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        (Path(kwargs["output_dir"]) / "half-written").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.pipeline, "fit", interrupted)
    write_symbol(tmp_path / "data", "AAA", 400)
    with pytest.raises(KeyboardInterrupt):
        run_backtest(_config(tmp_path / "data", tmp_path / "out"), engine=engine)
    assert list((tmp_path / "out" / "finetune").iterdir()) == []


def test_out_of_memory_halves_the_training_batch_and_retries(
    tmp_path: Path, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.pipeline.fit
    batches: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        batches.append(kwargs["batch_size"])
        if len(batches) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.pipeline, "fit", flaky)
    write_symbol(tmp_path / "data", "AAA", 400)
    report = run_backtest(_config(tmp_path / "data", tmp_path / "out"), engine=engine)
    assert batches == [8, 4]
    key = _tuned(report).summary["finetune"]["refits"][0]["key"]
    record = json.loads((tmp_path / "out" / "finetune" / key / "finetune.json").read_text())
    assert record["batch_size_used"] == 4


def test_forecast_finetunes_on_every_bar_up_to_the_last(tmp_path: Path, engine: Chronos2Engine) -> None:
    write_symbol(tmp_path / "data", "AAA", 400)
    config = ForecastConfig(
        symbols=("AAA",),
        horizon=8,
        context=128,
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
        **TUNE,
    )
    result = run_forecast(config, engine=engine).results[0]
    refit = result.payload["finetune"]["refits"][0]
    assert refit["cutoff"] == result.payload["last_bar"]["timestamp"]
    assert result.payload["model"]["source"] == "finetune"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"finetune": "half"}, "--finetune must be one of off, lora, full"),
        ({"finetune_steps": 10}, "--finetune-steps need --finetune lora or --finetune full"),
        ({"finetune": "full", "finetune_steps": 0}, "--finetune-steps must be >= 1"),
        ({"finetune": "full", "finetune_lr": -1.0}, "--finetune-lr must be > 0"),
        ({"finetune": "full", "refit_every": 0}, "--refit-every must be >= 1"),
    ],
)
def test_bad_finetune_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BacktestConfig(symbols=("AAA",), **options)


def test_unset_finetune_options_take_the_settings_defaults_per_mode() -> None:
    for mode in ("full", "lora"):
        settings = ft.FinetuneSettings.from_config(BacktestConfig(symbols=("AAA",), finetune=mode, seed=7))
        assert settings is not None
        assert settings.record() == {
            "mode": mode,
            "steps": ft.FinetuneSettings.steps,
            "learning_rate": ft.FinetuneSettings.LEARNING_RATES[mode],
            "context": None,
            "refit_every": None,
            "per_symbol": False,
            "batch_size": ft.FinetuneSettings.batch_size,
            "seed": 7,
        }
    assert (ft.FinetuneSettings.steps, ft.FinetuneSettings.LEARNING_RATES) == (  # chronos' fit defaults
        1000,
        {"full": 1e-6, "lora": 1e-5},
    )
    assert ft.FinetuneSettings.from_config(BacktestConfig(symbols=("AAA",))) is None


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), 0.0])
def test_a_learning_rate_that_is_not_a_finite_positive_number_is_a_config_error(lr: float) -> None:
    with pytest.raises(ConfigError, match="--finetune-lr must be > 0 and finite"):
        BacktestConfig(symbols=("AAA",), finetune="full", finetune_lr=lr)


def test_cli_backtest_finetune_quiet_prints_nothing_and_writes_both_folders(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    write_symbol(tmp_path / "data", "AAA", 400)
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "AAA",
            "--model",
            str(tiny_model_dir),
            "--data-dir",
            str(tmp_path / "data"),
            "--output-dir",
            str(tmp_path / "out"),
            *SMALL,
            "--finetune",
            "full",
            *CLI_TUNE,
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""
    folders = sorted(p.name for p in (tmp_path / "out" / "backtest" / "AAA").iterdir())
    assert folders == ["none", "none+finetune-full"]


def _spy_fit(engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    """Record the inputs of every ``pipeline.fit`` call (training still runs)."""
    real = engine.pipeline.fit
    calls: list[list[dict[str, Any]]] = []

    def spy(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(list(inputs))
        return real(inputs, *args, **kwargs)

    monkeypatch.setattr(engine.pipeline, "fit", spy)
    return calls


def test_finetune_with_covariates_trains_on_targets_and_covariates_up_to_the_cutoff(
    tmp_path: Path, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = ohlc_frame(400, seed=5)
    data = tmp_path / "data"
    data.mkdir()
    frame.to_parquet(data / "AAA.parquet", index=False)
    calls = _spy_fit(engine, monkeypatch)
    config = _config(data, tmp_path / "out", covariates=("volume", "calendar"), preaug="differencing")
    report = run_backtest(config, engine=engine)
    assert not report.failures
    tuned = _tuned(report)
    assert tuned.folder.name == "differencing+volume+calendar+finetune-full"
    assert tuned.summary["run"] == "differencing+volume+calendar+finetune-full"
    assert tuned.summary["covariate_rows"] == ["volume", "hour_sin", "hour_cos", "dow_sin", "dow_cos"]
    refit = tuned.summary["finetune"]["refits"][0]
    cutoff = pd.Timestamp(refit["cutoff"])
    assert cutoff == pd.Timestamp(_forecasts(tuned)["origin"].min())  # the first evaluated origin
    (series,) = calls[0]
    rows = int((frame["timestamp"] <= cutoff).sum())  # bars up to and including the cutoff
    assert series["context"].shape == (4 + 5, rows)
    assert (series["n_targets"], series["n_covariates"], series["n_future_covariates"]) == (4, 5, 4)
    volume = np.log1p(frame["volume"].to_numpy()[:rows])
    np.testing.assert_allclose(series["context"][4].numpy(), volume, rtol=1e-6)

    _perturb_after(frame, cutoff)  # prices and volume after the cutoff
    frame.loc[frame["timestamp"] > cutoff, "volume"] *= 3.0
    frame.to_parquet(data / "AAA.parquet", index=False)
    again = _tuned(run_backtest(replace(config, output_dir=tmp_path / "out2"), engine=engine))
    assert again.summary["finetune"]["refits"][0]["checksum"] == refit["checksum"]


def test_finetune_with_another_symbols_close_as_covariate_runs_in_forecast(
    tmp_path: Path, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_symbol(tmp_path / "data", "AAA", 400, seed=1)
    write_symbol(tmp_path / "data", "BBB", 400, seed=2)
    calls = _spy_fit(engine, monkeypatch)
    config = ForecastConfig(
        symbols=("AAA",),
        horizon=8,
        context=128,
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
        covariates=("BBB",),
        **TUNE,
    )
    result = run_forecast(config, engine=engine).results[0]
    assert result.payload["model"]["source"] == "finetune"
    (series,) = calls[0]
    assert series["context"].shape == (5, 400)  # every bar up to the last, with BBB's close beside
    assert series["n_future_covariates"] == 0


def test_the_finetune_mode_is_a_typed_choice_checked_once_with_the_other_choices() -> None:
    import inspect
    from typing import get_args, get_type_hints

    import chronobt.config as config

    modes = get_args(get_type_hints(ft.FinetuneSettings)["mode"])
    assert set(modes) == set(ft.FinetuneSettings.LEARNING_RATES) == set(config.FINETUNE_CHOICES) - {"off"}
    with pytest.raises(ConfigError, match=r"^--finetune must be one of off, lora, full, got 'half'$"):
        ForecastConfig(symbols=("AAA",), finetune="half")  # type: ignore[arg-type]
    assert inspect.getsource(config).count('"--finetune"') == 1  # one check, not one per class
