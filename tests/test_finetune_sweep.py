"""`chronobt sweep --finetune`: fine-tuned twins of the candidates, cached weights, resumable cells, no
look-ahead past the first validation origin, covariates, and `--preaug auto` reading a fine-tuned choice."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import chronobt.runs.finetune_cells as tuned_cells
from chronobt.cli import app
from chronobt.config import BacktestConfig, SweepConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ConfigError
from chronobt.pipeline.covariates import RunLabel, equivalent_label
from chronobt.runs.backtest import run_backtest
from chronobt.runs.executors import LocalExecutor
from chronobt.runs.sweep import run_sweep
from tests.synthetic import ohlc_frame, write_symbol

#: A few training steps of a few short series: fast on a CPU.
TUNE: dict[str, Any] = {"finetune_steps": 3, "finetune_batch": 8, "finetune_context": 64}
CLI_TUNE = ["--finetune-steps", "3", "--finetune-batch", "8", "--finetune-context", "64"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    write_symbol(tmp_path / "data", "AAA", 300, seed=1)
    write_symbol(tmp_path / "data", "BBB", 300, seed=2)
    return tmp_path / "data"


def _config(data_dir: Path, out: Path, **kw: Any) -> SweepConfig:
    base: dict[str, Any] = dict(
        symbols=("AAA", "BBB"),
        preaugs=("none,differencing",),
        horizon=8,
        context=128,
        validation_windows=4,
        test_windows=3,
        data_dir=data_dir,
        output_dir=out,
        finetune="full",
        **TUNE,
    )
    base.update(kw)
    return SweepConfig(**base)


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "sweep" / "manifest.json").read_text())


def _stages(into: list[str]) -> Any:
    return lambda stage, done, total: into.append(stage)


def test_run_labels_carry_the_finetune_mode_and_stay_parseable() -> None:
    label = str(RunLabel("rolling_norm:window=20", ("volume", "BTCUSD"), "lora"))
    assert label == "rolling_norm:window=20+volume+BTCUSD+finetune-lora"
    parsed = RunLabel.parse(label)
    assert (parsed.spec, parsed.covariates) == ("rolling_norm:window=20", ("volume", "BTCUSD"))
    assert parsed.finetune == "lora" and RunLabel.parse("differencing+volume").finetune is None
    assert str(parsed.zero_shot()) == "rolling_norm:window=20+volume+BTCUSD"
    assert equivalent_label("robust_scaling+calendar+finetune-full") == "none+calendar+finetune-full"


def test_sweep_finetune_lora_adds_a_finetuned_twin_of_every_candidate_ranked_with_the_zero_shot_ones(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine
) -> None:
    pytest.importorskip("peft")
    config = _config(
        data_dir, tmp_path / "out", finetune="lora", preaugs=("none,differencing,robust_scaling",)
    )
    report = run_sweep(config, engine=engine)
    assert not report.failures
    board = report.leaderboard
    tuned = ["none+finetune-lora", "differencing+finetune-lora", "robust_scaling+finetune-lora"]
    assert list(dict.fromkeys(board["preaug"])) == ["none", "differencing", "robust_scaling", *tuned]
    assert set(board.loc[board["preaug"].isin(tuned), "finetune"]) == {"lora"}
    assert set(board.loc[~board["preaug"].isin(tuned), "finetune"]) == {"off"}
    for _, part in board.groupby(["symbol", "split"]):
        assert sorted(part["rank"]) == [1, 2, 3, 4, 5, 6]  # one ranking over both kinds
        assert part["selected"].sum() == 1
    rows = board.set_index(["symbol", "split", "preaug"])
    assert rows.loc[("AAA", "test", "robust_scaling+finetune-lora"), "equivalent_to"] == "none+finetune-lora"
    assert np.isfinite(rows.loc[("AAA", "test", "differencing+finetune-lora"), "p_value_zero_shot"])
    assert np.isnan(rows.loc[("AAA", "test", "differencing"), "p_value_zero_shot"])
    # affine: not trained, it takes none+finetune-lora's cell
    assert (report.cells_computed, report.cells_derived, report.models_trained) == (8, 4, 2)

    best = json.loads((tmp_path / "out" / "sweep" / "best" / "AAA.json").read_text())
    assert best["best_finetune"] == RunLabel.parse(best["best"]).finetune
    assert set(best["validation"]) == {"none", "differencing", "robust_scaling", *tuned}
    assert best["config"]["finetune"]["mode"] == "lora" and best["config"]["finetune"]["steps"] == 3
    models = _manifest(tmp_path / "out")["finetune"]["models"]
    assert [m["label"] for m in models] == ["none+finetune-lora", "differencing+finetune-lora"]
    for m in models:
        assert m["symbols"] == ["AAA", "BBB"] and m["steps"] == 3 and m["loss"]["logged"] >= 1
        assert (m["cached"], m["used"]) == (False, True)
        assert (tmp_path / "out" / "finetune" / m["key"] / "finetune.json").is_file()
    cell = json.loads(
        next((tmp_path / "out" / "sweep" / "cells" / "AAA").glob("differencing+finetune*")).read_text()
    )
    assert cell["finetune"]["refits"][0]["key"] == models[1]["key"]


def test_rerun_serves_finetuned_cells_from_the_cache_and_force_reuses_the_cached_weights(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine
) -> None:
    config = _config(data_dir, tmp_path / "out")
    first = run_sweep(config, engine=engine)
    assert (first.models_trained, first.models_cached) == (2, 0)

    stages: list[str] = []
    rerun = run_sweep(config, engine=engine, progress=_stages(stages))
    assert (rerun.cells_cached, rerun.cells_computed) == (8, 0)
    assert (rerun.models_trained, rerun.models_cached) == (0, 2)
    assert not {"finetune", "finetune cached"} & set(stages)  # nothing loaded: the cells were done
    assert [m["used"] for m in rerun.finetune["models"]] == [False, False]  # type: ignore[index]

    stages.clear()
    forced = run_sweep(
        _config(data_dir, tmp_path / "out", force=True), engine=engine, progress=_stages(stages)
    )
    assert forced.cells_computed == 8 and (forced.models_trained, forced.models_cached) == (0, 2)
    assert "finetune cached" in stages and "finetune" not in stages
    before, after = (r.finetune["models"] for r in (first, forced))  # type: ignore[index]
    assert [m["checksum"] for m in after] == [m["checksum"] for m in before]
    assert all(m["cached"] and m["used"] for m in after)
    pd.testing.assert_frame_equal(forced.leaderboard, first.leaderboard)


def test_a_sweep_after_a_backtest_of_the_same_windows_reuses_its_finetuned_weights(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine
) -> None:
    out = tmp_path / "out"
    backtest = BacktestConfig(
        symbols=("AAA",),
        horizon=8,
        context=128,
        windows=7,
        data_dir=data_dir,
        output_dir=out,
        finetune="full",
        **TUNE,
    )
    result = next(r for r in run_backtest(backtest, engine=engine).results if r.finetune)
    key = result.summary["finetune"]["refits"][0]["key"]
    report = run_sweep(_config(data_dir, out, symbols=("AAA",), preaugs=("none",)), engine=engine)
    (model,) = report.finetune["models"]  # type: ignore[index]
    assert model["key"] == key and model["cached"] and model["used"]
    assert report.models_trained == 0


def test_an_interrupted_finetune_sweep_resumes_with_its_finished_cells_skipped(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = run_sweep(_config(data_dir, tmp_path / "ref"), engine=engine).leaderboard
    real = tuned_cells.fit_models
    calls: list[int] = []

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # training the second fine-tuned candidate (differencing)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(tuned_cells, "fit_models", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_config(data_dir, out), engine=engine)
    assert len(list((out / "sweep" / "cells").rglob("none+finetune-full__*.json"))) == 2
    assert not list((out / "sweep" / "cells").rglob("differencing+finetune-full__*.json"))
    assert not (out / "sweep" / "leaderboard.parquet").exists()

    monkeypatch.setattr(tuned_cells, "fit_models", real)
    report = run_sweep(_config(data_dir, out), engine=engine)
    assert (report.cells_cached, report.cells_computed) == (6, 2)
    assert (report.models_trained, report.models_cached) == (1, 1)
    pd.testing.assert_frame_equal(report.leaderboard, reference)


def test_bars_after_the_first_validation_origin_leave_the_sweeps_finetuned_weights_unchanged(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    data = tmp_path / "data"
    frames = {"AAA": ohlc_frame(300, seed=1), "BBB": ohlc_frame(300, seed=2)}
    data.mkdir()
    for symbol, frame in frames.items():
        frame.to_parquet(data / f"{symbol}.parquet", index=False)
    run_sweep(_config(data, tmp_path / "out1"), engine=engine)
    first = _manifest(tmp_path / "out1")["finetune"]["models"]
    best = json.loads((tmp_path / "out1" / "sweep" / "best" / "AAA.json").read_text())
    cutoff = pd.Timestamp(best["splits"]["validation"]["first_origin"])
    assert {pd.Timestamp(m["cutoff"]) for m in first} == {cutoff}

    rng = np.random.default_rng(9)
    for symbol, frame in frames.items():  # every bar after the cutoff, in every symbol trained on
        later = frame["timestamp"] > cutoff
        frame.loc[later, ["open", "high", "low", "close"]] *= np.exp(rng.normal(0, 0.05, int(later.sum())))[
            :, None
        ]
        frame.to_parquet(data / f"{symbol}.parquet", index=False)
    run_sweep(_config(data, tmp_path / "out2"), engine=engine)
    second = _manifest(tmp_path / "out2")["finetune"]["models"]
    assert not any(m["cached"] for m in second)  # trained again, on identical series
    assert [(m["key"], m["checksum"]) for m in second] == [(m["key"], m["checksum"]) for m in first]


def test_refit_every_walks_the_sweeps_windows_forward_and_per_symbol_trains_one_model_each(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine
) -> None:
    config = _config(data_dir, tmp_path / "out", preaugs=("none",), refit_every=4, finetune_per_symbol=True)
    run_sweep(config, engine=engine)
    models = _manifest(tmp_path / "out")["finetune"]["models"]
    assert [(m["symbols"], m["first_window"]) for m in models] == [
        (["AAA"], 0),
        (["BBB"], 0),
        (["AAA"], 4),
        (["BBB"], 4),
    ]
    best = json.loads((tmp_path / "out" / "sweep" / "best" / "AAA.json").read_text())
    assert pd.Timestamp(models[2]["cutoff"]) == pd.Timestamp(best["splits"]["test"]["first_origin"])
    cell = json.loads(next((tmp_path / "out" / "sweep" / "cells" / "AAA").glob("none+finetune*")).read_text())
    assert [r["windows"] for r in cell["finetune"]["refits"]] == [4, 3]


def test_a_symbol_without_bars_before_the_joint_cutoff_loses_its_finetuned_cells_until_per_symbol(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    ohlc_frame(300, seed=1).to_parquet(data / "AAA.parquet", index=False)
    ohlc_frame(300, seed=2, start="2022-01-14").to_parquet(data / "BBB.parquet", index=False)  # after AAA's
    joint = run_sweep(_config(data, tmp_path / "out1", preaugs=("none",)), engine=engine)
    assert not joint.failures  # BBB still has its zero-shot cells
    labels = joint.leaderboard.groupby("symbol")["preaug"].unique()
    assert list(labels["AAA"]) == ["none", "none+finetune-full"] and list(labels["BBB"]) == ["none"]
    assert "--finetune-per-symbol" in joint.best["BBB"]["failed"]["none+finetune-full"]

    apart = run_sweep(
        _config(data, tmp_path / "out2", preaugs=("none",), finetune_per_symbol=True), engine=engine
    )
    labels = apart.leaderboard.groupby("symbol")["preaug"].unique()
    assert list(labels["BBB"]) == ["none", "none+finetune-full"]


def test_sweep_finetune_with_covariates_trains_each_candidate_on_its_covariates_up_to_the_cutoff(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.pipeline.fit
    rows: list[list[tuple[int, int]]] = []

    def spy(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        rows.append([(s["context"].shape[0], s["context"].shape[1]) for s in inputs])
        return real(inputs, *args, **kwargs)

    monkeypatch.setattr(engine.pipeline, "fit", spy)
    config = _config(data_dir, tmp_path / "out", preaugs=("none",), covariate_sets=((), ("volume",)))
    report = run_sweep(config, engine=engine)
    assert not report.failures
    labels = list(dict.fromkeys(report.leaderboard["preaug"]))
    assert labels == ["none", "none+volume", "none+finetune-full", "none+volume+finetune-full"]
    models = _manifest(tmp_path / "out")["finetune"]["models"]
    assert [m.get("covariates") for m in models] == [None, ["volume"]]
    cutoff = pd.Timestamp(models[1]["cutoff"])
    bars = int((ohlc_frame(300, seed=1)["timestamp"] <= cutoff).sum())
    assert rows == [[(4, bars), (4, bars)], [(5, bars), (5, bars)]]  # targets (+ volume), up to the cutoff


def test_ray_like_executor_runs_finetuned_cells_here_and_says_so(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine, caplog: pytest.LogCaptureFixture
) -> None:
    class RayLike:  # stands in for the Ray executor: any executor that does not run here
        def __init__(self) -> None:
            self.local = LocalExecutor(engine)

        def map(self, *args: Any, **kwargs: Any) -> Any:
            return self.local.map(*args, **kwargs)

        def close(self) -> None:
            pass

    with caplog.at_level(logging.WARNING, logger="chronobt"):
        report = run_sweep(
            _config(data_dir, tmp_path / "out", preaugs=("none",)), engine=engine, executor=RayLike()
        )
    assert not report.failures and report.cells_computed == 4
    assert any("fine-tuned cells run in this process" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------- auto


def _choose_finetuned(out: Path, symbol: str, mode: str) -> None:
    """Make the stored choice of ``symbol`` its fine-tuned ``none`` cell, whichever won."""
    path = out / "sweep" / "best" / f"{symbol}.json"
    best = json.loads(path.read_text())
    best.update(best_preaug="none", best_covariates="none", best=f"none+finetune-{mode}", best_finetune=mode)
    path.write_text(json.dumps(best))


def _backtest_auto(model: Path, data_dir: Path, out: Path, *extra: str) -> Any:
    args = ["backtest", "AAA", "--preaug", "auto", "--horizon", "8", "--context", "128", "--windows", "3"]
    args += ["--model", str(model), "--compile", "off", "--device", "cpu"]
    return CliRunner().invoke(app, [*args, "--data-dir", str(data_dir), "--output-dir", str(out), *extra])


def test_preaug_auto_with_a_finetuned_choice_needs_the_same_finetune_and_then_runs_it(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    run_sweep(_config(data_dir, out, symbols=("AAA",), preaugs=("none",)), engine=engine)
    _choose_finetuned(out, "AAA", "full")

    refused = _backtest_auto(tiny_model_dir, data_dir, out)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    error = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "none+finetune-full" in error[0] and "add --finetune full" in error[0]
    assert not (out / "backtest").exists()

    ran = _backtest_auto(tiny_model_dir, data_dir, out, "--finetune", "full", *CLI_TUNE)
    assert ran.exit_code == 0, ran.output
    assert "chosen under other conditions" not in ran.stderr
    assert sorted(p.name for p in (out / "backtest" / "AAA").iterdir()) == ["auto", "auto+finetune-full"]
    metrics = json.loads((out / "backtest" / "AAA" / "auto+finetune-full" / "metrics.json").read_text())
    assert metrics["run"] == "none+finetune-full"
    assert metrics["auto"]["finetune"] == "full"

    other = _backtest_auto(
        tiny_model_dir, data_dir, tmp_path / "out", "--finetune", "full", "--finetune-steps", "4"
    )
    assert other.exit_code == 0
    assert "finetune steps 4 (the sweep's was 3)" in other.stderr


# ----------------------------------------------------------------------------------------------- CLI


def test_sweep_help_lists_the_finetune_options() -> None:
    result = CliRunner().invoke(app, ["sweep", "-h"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--finetune",
        "--finetune-steps",
        "--finetune-lr",
        "--finetune-context",
        "--finetune-batch",
        "--refit-every",
        "--finetune-per-symbol",
    ):
        assert option in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--finetune-steps", "3"], "--finetune-steps need --finetune lora or --finetune full"),
        (["--refit-every", "2"], "--refit-every need --finetune lora or --finetune full"),
        (["--finetune", "half"], "--finetune must be one of off, lora, full"),
        (["--finetune", "full", "--finetune-steps", "0"], "--finetune-steps must be >= 1"),
    ],
)
def test_sweep_bad_finetune_options_are_one_line_usage_errors(
    tmp_path: Path, data_dir: Path, extra: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        app, ["sweep", "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "out"), *extra]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "out").exists()


def test_sweep_finetune_lora_without_peft_names_the_extra(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"chronobt\[finetune\]"):
        run_sweep(_config(data_dir, tmp_path / "out", finetune="lora"), engine=engine)
    assert not (tmp_path / "out").exists()


def test_cli_sweep_finetune_prints_the_models_and_shows_them_cached_on_rerun(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path
) -> None:
    args = ["sweep", "AAA", "--preaug", "none", "--horizon", "8", "--context", "128"]
    args += ["--validation-windows", "4", "--test-windows", "3", "--model", str(tiny_model_dir)]
    args += ["--compile", "off", "--device", "cpu", "--data-dir", str(data_dir)]
    args += ["--output-dir", str(tmp_path / "out"), "--finetune", "full", *CLI_TUNE]
    runner = CliRunner()
    first = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert "none+finetune-full" in first.stdout and "p vs zero-shot" in first.stdout
    assert "fine-tuned models (full): 1 trained, 0 cached" in first.stdout
    again = runner.invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    payload = json.loads(again.stdout)
    assert payload["cells"]["cached"] == 2 and payload["cells"]["computed"] == 0
    assert [m["cached"] for m in payload["finetune"]["models"]] == [True]
    assert payload["best"]["AAA"]["best"] in ("none", "none+finetune-full")
