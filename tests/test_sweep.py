"""`chronobt sweep`: nested selection, cached/resumable cells, outputs read by `--preaug auto`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.augment import candidate_specs
from chronobt.augment import expand_specs as expand_preaugs
from chronobt.cli import app
from chronobt.config import SweepConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ConfigError, DataError
from chronobt.runs.leaderboard import LEADERBOARD_COLUMNS, rank_specs
from chronobt.runs.sweep import run_sweep, split_windows
from tests.synthetic import write_symbol

PREAUGS = "none,differencing,robust_scaling"
SMALL = ["--horizon", "8", "--context", "128", "--validation-windows", "4", "--test-windows", "3"]
METRICS = ["mae", "rmse", "mape", "smape", "mase", "wql", "coverage_80", "width_80", "directional_accuracy"]
BEST_KEYS = {
    "symbol",
    "best_preaug",
    "best_params",
    "selection_metric",
    "selection_target",
    "validation",
    "test",
    "splits",
    "config",
    "model",
}


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
        preaugs=(PREAUGS,),
        horizon=8,
        context=128,
        validation_windows=4,
        test_windows=3,
        data_dir=data_dir,
        output_dir=out,
    )
    base.update(kw)
    return SweepConfig(**base)


def _cli(runner: CliRunner, model: Path, data_dir: Path, out: Path, *extra: str) -> Any:
    args = ["sweep", *extra, "--preaug", PREAUGS, *SMALL, "--model", str(model), "--compile", "off"]
    return runner.invoke(
        app, [*args, "--device", "cpu", "--data-dir", str(data_dir), "--output-dir", str(out)]
    )


def own_output(stderr: str) -> str:
    """``stderr`` without transformers' "Loading weights" bar (a third-party print while the model loads)."""
    return "".join(line for line in stderr.splitlines(keepends=True) if "Loading weights" not in line).strip()


class CountingEngine:
    """Delegates to a real engine; counts predict calls, raises KeyboardInterrupt on call ``interrupt_at``."""

    def __init__(self, engine: Chronos2Engine, interrupt_at: int | None = None) -> None:
        self._engine = engine
        self.interrupt_at = interrupt_at
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def predict(self, *args: Any, **kwargs: Any) -> np.ndarray:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self._engine.predict(*args, **kwargs)


# ---------------------------------------------------------------------------------------------- units


def test_expand_preaugs_expands_grids_in_order_and_drops_duplicates() -> None:
    specs = expand_preaugs("none, rolling_norm:window=20|48,differencing,none")
    assert specs == ("none", "rolling_norm:window=20", "rolling_norm:window=48", "differencing")


def test_expand_preaugs_rejects_auto_and_unknown_names() -> None:
    with pytest.raises(ConfigError, match="auto"):
        expand_preaugs("auto")
    with pytest.raises(ConfigError):
        expand_preaugs("no_such_augmentation")


def test_default_candidates_are_every_registered_augmentation_with_none_first() -> None:
    from chronobt.augment import AVAILABLE_AUGMENTATIONS

    specs = candidate_specs(())
    assert specs[0] == "none"
    assert [s.split(":")[0] for s in specs] == ["none", *(n for n in AVAILABLE_AUGMENTATIONS if n != "none")]
    assert candidate_specs(("differencing",)) == ("none", "differencing")


def test_rank_specs_orders_best_first_breaks_ties_by_position_and_puts_nan_last() -> None:
    assert rank_specs([0.5, 0.2, 0.2, float("nan"), 0.1], higher_is_better=False) == [4, 2, 3, 5, 1]
    assert rank_specs([0.5, 0.7, 0.7, float("nan")], higher_is_better=True) == [3, 1, 2, 4]


def test_split_puts_validation_before_test_and_drops_windows_whose_futures_reach_the_test() -> None:
    origins = np.arange(100, 100 + 4 * 10, 4)  # stride 4
    split = split_windows(origins, validation=5, test=3, horizon=8, label="X")
    first_test = origins[split["test"][0]]
    assert list(split["test"]) == [7, 8, 9]
    assert (origins[split["validation"]] + 8 <= first_test).all()
    assert list(split["validation"]) == [
        1,
        2,
        3,
        4,
        5,
    ]  # window 6's future reaches past the first test origin
    with pytest.raises(DataError, match="at least 2"):
        split_windows(origins[:1], validation=5, test=3, horizon=8, label="X")


# ---------------------------------------------------------------------------------------------- sweep


def test_sweep_writes_leaderboard_and_best_files_and_chooses_the_validation_argmin(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    result = _cli(CliRunner(), tiny_model_dir, data_dir, out)
    assert result.exit_code == 0, result.output

    board = pd.read_parquet(out / "sweep" / "leaderboard.parquet")
    assert list(board.columns) == list(LEADERBOARD_COLUMNS)
    assert set(METRICS) <= set(board.columns)
    csv = pd.read_csv(out / "sweep" / "leaderboard.csv")
    assert list(csv.columns) == list(LEADERBOARD_COLUMNS) and len(csv) == len(board)
    assert len(board) == 2 * 3 * 2  # symbols x augmentations x splits
    assert set(board["split"]) == {"validation", "test"}
    assert (board.loc[board["split"] == "validation", "windows"] == 4).all()
    assert (board.loc[board["split"] == "test", "windows"] == 3).all()

    for symbol in ("AAA", "BBB"):
        best = json.loads((out / "sweep" / "best" / f"{symbol}.json").read_text())
        assert set(best) >= BEST_KEYS and "created_at" not in best  # the stamp is in manifest.json
        assert best["selection_metric"] == "mase" and best["model"]["checksum"]
        val = board[(board["symbol"] == symbol) & (board["split"] == "validation")].reset_index(drop=True)
        # argmin over validation MASE, ties to the earliest candidate
        expected = val.loc[int(np.argmin(val["mase"].to_numpy())), "preaug"]
        assert best["best_preaug"] == expected
        assert best["validation"] == pytest.approx(dict(zip(val["preaug"], val["mase"], strict=True)))
        test = board[(board["symbol"] == symbol) & (board["split"] == "test")].set_index("preaug")
        assert best["test"]["best"]["mase"] == pytest.approx(test.loc[expected, "mase"])
        assert best["test"]["none"]["mase"] == pytest.approx(test.loc["none", "mase"])
        assert best["test"]["naive"]["mase"] > 0
        assert set(best["test"]["best"]) >= set(METRICS)
        # the validation windows come before the test windows
        assert best["splits"]["validation"]["last_origin"] < best["splits"]["test"]["first_origin"]
        selected = board[(board["symbol"] == symbol) & board["selected"]]
        assert set(selected["preaug"]) == {expected}


def test_rerun_is_served_from_the_cache_and_force_recomputes(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    runner = CliRunner()
    assert _cli(runner, tiny_model_dir, data_dir, out).exit_code == 0
    first = pd.read_parquet(out / "sweep" / "leaderboard.parquet")
    cells = sorted((out / "sweep" / "cells").rglob("*.json"))
    assert len(cells) == 6

    def no_predict(self: Chronos2Engine, *args: Any, **kwargs: Any) -> np.ndarray:
        raise AssertionError("the engine ran although every cell is cached")

    with monkeypatch.context() as m:
        m.setattr(Chronos2Engine, "predict", no_predict)
        again = _cli(runner, tiny_model_dir, data_dir, out)
    assert again.exit_code == 0, again.output
    assert "cached" in again.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep" / "leaderboard.parquet"), first)

    calls: list[int] = []
    real_predict = Chronos2Engine.predict

    def counting(self: Chronos2Engine, *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        return real_predict(self, *args, **kwargs)

    monkeypatch.setattr(Chronos2Engine, "predict", counting)
    assert _cli(runner, tiny_model_dir, data_dir, out, "--force").exit_code == 0
    assert len(calls) == 2  # one batched call per symbol chunk
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep" / "leaderboard.parquet"), first)


def test_changed_data_invalidates_that_symbols_cells_only(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine
) -> None:
    out = tmp_path / "out"
    run_sweep(_config(data_dir, out), engine=engine)
    write_symbol(data_dir, "BBB", 300, seed=3)  # new bars for BBB
    report = run_sweep(_config(data_dir, out), engine=engine)
    # BBB: none and differencing through the model, robust_scaling takes none's cell
    assert (report.cells_cached, report.cells_computed, report.cells_derived) == (3, 2, 1)


def test_interrupted_sweep_resumes_to_the_same_leaderboard_as_an_uninterrupted_one(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine
) -> None:
    reference = run_sweep(_config(data_dir, tmp_path / "ref"), engine=engine).leaderboard

    out = tmp_path / "out"
    interrupting = CountingEngine(engine, interrupt_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_config(data_dir, out), engine=interrupting)  # type: ignore[arg-type]
    # the first chunk (symbol AAA) was stored; nothing of the chunk in flight, no leaderboard
    assert len(list((out / "sweep" / "cells" / "AAA").glob("*.json"))) == 3
    assert not (out / "sweep" / "cells" / "BBB").exists()
    assert not (out / "sweep" / "leaderboard.parquet").exists()
    assert not list(out.rglob("*.tmp"))

    resumed_engine = CountingEngine(engine)
    report = run_sweep(_config(data_dir, out), engine=resumed_engine)  # type: ignore[arg-type]
    assert resumed_engine.calls == 1
    assert (report.cells_cached, report.cells_computed, report.cells_derived) == (3, 2, 1)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep" / "leaderboard.parquet"), reference)


def test_interrupted_rerun_leaves_the_previous_results_intact(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine
) -> None:
    out = tmp_path / "out"
    run_sweep(_config(data_dir, out), engine=engine)
    files = ["leaderboard.parquet", "leaderboard.csv", "best/AAA.json", "best/BBB.json"]
    before = {f: (out / "sweep" / f).read_bytes() for f in files}
    with pytest.raises(KeyboardInterrupt):
        run_sweep(_config(data_dir, out, force=True), engine=CountingEngine(engine, interrupt_at=1))  # type: ignore[arg-type]
    assert {f: (out / "sweep" / f).read_bytes() for f in files} == before


def test_preaug_auto_in_backtest_and_forecast_uses_the_sweep_choice(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    runner = CliRunner()
    assert _cli(runner, tiny_model_dir, data_dir, out).exit_code == 0
    best = json.loads((out / "sweep" / "best" / "AAA.json").read_text())["best_preaug"]
    common = ["--model", str(tiny_model_dir), "--device", "cpu", "--compile", "off"]
    dirs = ["--data-dir", str(data_dir), "--output-dir", str(out)]
    bt = runner.invoke(
        app,
        [
            "backtest",
            "AAA",
            "--preaug",
            "auto",
            "--horizon",
            "8",
            "--context",
            "128",
            "--windows",
            "2",
            "--json",
            *common,
            *dirs,
        ],
    )
    assert bt.exit_code == 0, bt.output
    written = [p.name for p in (out / "backtest" / "AAA").iterdir()]
    assert written == ["auto"]  # an auto run's own folder: never an explicit --preaug result's
    assert json.loads((out / "backtest" / "AAA" / written[0] / "metrics.json").read_text())["preaug"] == best

    fc = runner.invoke(
        app, ["forecast", "AAA", "--preaug", "auto", "--horizon", "8", "--context", "128", *common, *dirs]
    )
    assert fc.exit_code == 0, fc.output
    assert json.loads((out / "forecast" / "AAA" / "latest.json").read_text())["preaug"] == best


def test_a_symbol_with_bad_data_is_reported_and_the_others_are_written(
    tmp_path: Path, data_dir: Path, tiny_model_dir: Path
) -> None:
    write_symbol(data_dir, "SHORT", 40)  # too few bars for one window
    out = tmp_path / "out"
    runner = CliRunner()
    args = [
        "sweep",
        "--preaug",
        "none,differencing",
        *SMALL,
        "--model",
        str(tiny_model_dir),
        "--compile",
        "off",
    ]
    result = runner.invoke(app, [*args, "--json", "--data-dir", str(data_dir), "--output-dir", str(out)])
    assert result.exit_code == 3, result.output
    assert "SHORT" in result.stderr
    payload = json.loads(result.stdout)
    assert sorted(payload["best"]) == ["AAA", "BBB"] and "SHORT" in payload["failures"]
    assert payload["best"]["AAA"]["best_preaug"] in ("none", "differencing")
    assert sorted(p.name for p in (out / "sweep" / "best").iterdir()) == ["AAA.json", "BBB.json"]


def test_sweep_quiet_prints_nothing_on_success(tmp_path: Path, data_dir: Path, tiny_model_dir: Path) -> None:
    result = _cli(CliRunner(), tiny_model_dir, data_dir, tmp_path / "out", "--quiet")
    assert result.exit_code == 0
    assert result.stdout == "" and own_output(result.stderr) == ""


def test_baselines_are_scored_once_per_symbol_and_split_and_match_a_backtest_of_those_windows(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chronobt.runs.cells as cells_module
    from chronobt.data import load_ohlc
    from chronobt.evaluation.evaluate import score_reference
    from chronobt.pipeline.jobs import prepare_windows

    calls: list[int] = []

    def counting(sw: Any, levels: Any, *, horizon: int) -> Any:
        calls.append(len(sw.origins))
        return score_reference(sw, levels, horizon=horizon)

    monkeypatch.setattr(cells_module, "score_reference", counting)
    config = _config(data_dir, tmp_path / "out")
    report = run_sweep(config, engine=engine)
    n_specs = len(expand_preaugs(PREAUGS))
    assert n_specs > 1 and report.cells_computed + report.cells_derived == 2 * n_specs
    assert sorted(calls) == [3, 3, 4, 4]  # 2 symbols x (validation, test), not per augmentation
    # every augmentation's cell carries the same baselines, equal to scoring that split's windows directly
    sw = prepare_windows(
        load_ohlc("AAA", config.data_dir), config, windows=config.windows, context=config.context
    )
    test_windows = sw.subset(np.arange(len(sw.origins))[-config.test_windows :])
    direct = score_reference(test_windows, config.quantiles, horizon=config.horizon).baselines
    cells = [json.loads(p.read_text()) for p in (tmp_path / "out" / "sweep" / "cells").rglob("*.json")]
    aaa = [c for c in cells if c["symbol"] == "AAA"]
    assert len(aaa) == n_specs
    for cell in aaa:
        stored = cell["splits"]["test"]["baselines"]
        assert set(stored) == set(direct)
        for name, by_target in direct.items():
            for target, values in by_target.items():
                assert stored[name][target] == pytest.approx(values), (name, target)


# ------------------------------------------------------------------------ equivalent cells, partial sweeps


def test_rank_specs_treats_scores_within_relative_tolerance_as_a_tie_for_the_earlier_candidate() -> None:
    # float noise must not beat the simpler augmentation listed first
    assert rank_specs([1.0 + 1e-12, 1.0, 2.0], higher_is_better=False) == [1, 2, 3]
    assert rank_specs([0.7 - 1e-12, 0.7, 0.1], higher_is_better=True) == [1, 2, 3]
    assert rank_specs([1.0 + 1e-6, 1.0], higher_is_better=False) == [2, 1]  # a real difference still counts


def test_affine_augmentations_are_not_forecast_but_take_nones_scores_and_are_marked_equivalent(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine
) -> None:
    counting = CountingEngine(engine)
    config = _config(data_dir, tmp_path / "out", preaugs=("none,robust_scaling,percent_change,differencing",))
    report = run_sweep(config, engine=counting)  # type: ignore[arg-type]
    assert (report.cells_computed, report.cells_derived) == (2 * 2, 2 * 2)

    board = pd.read_parquet(tmp_path / "out" / "sweep" / "leaderboard.parquet")
    marked = dict(zip(board["preaug"], board["equivalent_to"], strict=True))
    assert marked["robust_scaling"] == marked["percent_change"] == "none"
    assert pd.isna(marked["none"]) and pd.isna(marked["differencing"])
    for (_symbol, _split), rows in board.groupby(["symbol", "split"]):
        scores = rows.set_index("preaug")[["mase", "wql", "mae"]]
        for spec in ("robust_scaling", "percent_change"):
            assert scores.loc[spec].tolist() == scores.loc["none"].tolist()
    for symbol, best in report.best.items():
        assert best["best_preaug"] not in ("robust_scaling", "percent_change"), symbol
        assert best["equivalent_to"] == {"robust_scaling": "none", "percent_change": "none"}
        stored = json.loads((tmp_path / "out" / "sweep" / "best" / f"{symbol}.json").read_text())
        assert stored["equivalent_to"] == best["equivalent_to"]


def test_equivalent_cell_is_skipped_where_its_augmentation_does_not_apply(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    from tests.synthetic import ohlc_frame

    frame = ohlc_frame(300, seed=4)
    frame[["open", "high", "low", "close"]] -= frame["low"].iloc[-100:].min() + 1.0  # recent prices <= 0
    (tmp_path / "data").mkdir()
    frame.to_parquet(tmp_path / "data" / "NEG.parquet", index=False)
    config = _config(
        tmp_path / "data", tmp_path / "out", symbols=("NEG",), preaugs=("none,percent_change,robust_scaling",)
    )
    report = run_sweep(config, engine=engine)
    assert set(report.best["NEG"]["failed"]) == {"percent_change"}
    assert set(report.leaderboard["preaug"]) == {"none", "robust_scaling"}


def test_sweep_over_some_symbols_keeps_the_other_symbols_leaderboard_rows(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine
) -> None:
    out = tmp_path / "out"
    first = run_sweep(_config(data_dir, out), engine=engine).leaderboard
    write_symbol(data_dir, "AAA", 300, seed=7)  # AAA changes; BBB's rows must survive a sweep of AAA
    report = run_sweep(_config(data_dir, out, symbols=("AAA",)), engine=engine)

    board = pd.read_parquet(out / "sweep" / "leaderboard.parquet")
    assert sorted(set(board["symbol"])) == sorted(p.stem for p in (out / "sweep" / "best").glob("*.json"))
    pd.testing.assert_frame_equal(
        board[board["symbol"] == "BBB"].reset_index(drop=True),
        first[first["symbol"] == "BBB"].reset_index(drop=True),
    )
    new_aaa = report.leaderboard[report.leaderboard["symbol"] == "AAA"].reset_index(drop=True)
    pd.testing.assert_frame_equal(board[board["symbol"] == "AAA"].reset_index(drop=True), new_aaa)
    assert not new_aaa.equals(first[first["symbol"] == "AAA"].reset_index(drop=True))
    assert len(pd.read_csv(out / "sweep" / "leaderboard.csv")) == len(board) == len(first)


def test_an_unreadable_leaderboard_is_replaced_by_this_sweeps_rows_with_a_warning(
    tmp_path: Path, data_dir: Path, engine: Chronos2Engine, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    (out / "sweep").mkdir(parents=True)
    (out / "sweep" / "leaderboard.parquet").write_bytes(b"not parquet")
    run_sweep(_config(data_dir, out, symbols=("AAA",)), engine=engine)
    assert set(pd.read_parquet(out / "sweep" / "leaderboard.parquet")["symbol"]) == {"AAA"}
    assert any("unreadable" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
