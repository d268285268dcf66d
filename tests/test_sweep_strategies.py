"""A sweep's strategies as candidates: trading-metric selection and the Deflated Sharpe Ratio."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from chronobt.config import SweepConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ConfigError
from chronobt.evaluation.metrics import METRIC_NAMES
from chronobt.runs.choice import split_score
from chronobt.runs.selection import candidate_rows, deflated_sharpe, rank_candidates
from tests.synthetic import write_symbol

STRATEGIES = ("sign", "band:level=0.2")


def _config(tmp_path: Path, **kw: Any) -> SweepConfig:
    base: dict[str, Any] = dict(
        symbols=("AAA",),
        preaugs=("none,differencing",),
        horizon=4,
        context=128,
        validation_windows=16,
        test_windows=10,
        data_dir=tmp_path / "data",
        output_dir=tmp_path / "out",
        strategies=STRATEGIES,
        metric="sharpe",
    )
    base.update(kw)
    return SweepConfig(**base)


def _trading(sharpe: float | None, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "sharpe": sharpe,
        "sortino": None if sharpe is None else 1.5 * sharpe,
        "calmar": 0.5,
        "total_return": 0.01 if sharpe is None else sharpe / 10,
        "n_trades": 12,
        "psr": 0.6,
        "sharpe_period": None if sharpe is None else sharpe / 10,
        "n_periods": 40,
        "skew": float(rng.normal()) * 0.1,
        "kurtosis": 3.0 + abs(float(rng.normal())),
    }


def _cell(label: str, sharpes: dict[str, dict[str, float | None]], seed: int, **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("validation", "test"):
        splits[split] = {
            "windows": 5,
            "metrics": {"close": {m: 1.0 + seed for m in METRIC_NAMES}},
            "skill": {"close": 0.1},
            "significance": {"close": {"naive": {"mae": {"p_value": 0.5}}}},
            "window_loss": list(rng.uniform(0.5, 1.5, 5)),
            "trading": {s: _trading(v[split], rng) for s, v in sharpes.items()},
        }
    return {"preaug": label, "splits": splits, **extra}


def _cells() -> dict[str, dict[str, Any]]:
    return {
        "none": _cell(
            "none",
            {"sign": {"validation": 0.4, "test": 0.3}, "band:level=0.2": {"validation": 1.2, "test": 0.9}},
            0,
        ),
        "differencing": _cell(
            "differencing",
            {"sign": {"validation": 0.8, "test": 0.1}, "band:level=0.2": {"validation": None, "test": 0.5}},
            1,
        ),
        "robust_scaling": _cell(
            "robust_scaling",
            {"sign": {"validation": 0.4, "test": 0.3}, "band:level=0.2": {"validation": 1.2, "test": 0.9}},
            0,
            equivalent_to="none",
        ),
    }


def test_a_trading_metric_ranks_every_label_and_strategy_pair_on_validation(tmp_path: Path) -> None:
    config = _config(tmp_path)
    best, ranks = rank_candidates(_cells(), config)
    assert best == ("none", "band:level=0.2")  # the tie with its affine copy goes to the earlier label
    validation = ranks["validation"]
    assert validation[("robust_scaling", "band:level=0.2")] == 2
    assert validation[("differencing", "sign")] == 3
    assert validation[("differencing", "band:level=0.2")] == 6  # no Sharpe: last
    assert split_score(_cells()["none"], "test", config, "sign") == 0.3


def test_a_forecast_metric_ties_the_strategies_of_a_label_and_keeps_the_first(tmp_path: Path) -> None:
    config = _config(tmp_path, metric="mase")
    best, ranks = rank_candidates(_cells(), config)
    assert best == ("none", "sign")
    assert ranks["validation"][("none", "band:level=0.2")] == 2


def test_dsr_counts_every_scored_pair_and_the_variance_of_their_sharpes(tmp_path: Path) -> None:
    config = _config(tmp_path)
    cells = _cells()
    got = deflated_sharpe(cells, ("none", "band:level=0.2"), config)
    trials = [0.04, 0.12, 0.08]  # per-period validation Sharpes; the copy and the undefined one left out
    assert got["n_trials"] == 3
    assert got["sharpe_variance"] == pytest.approx(np.var(trials, ddof=1))
    test = cells["none"]["splits"]["test"]["trading"]["band:level=0.2"]
    sr, g3, g4 = 0.09, test["skew"], test["kurtosis"]
    gamma = 0.5772156649015329
    sr0 = math.sqrt(np.var(trials, ddof=1)) * (
        (1 - gamma) * stats.norm.ppf(1 - 1 / 3) + gamma * stats.norm.ppf(1 - 1 / (3 * math.e))
    )
    hand = stats.norm.cdf((sr - sr0) * math.sqrt(39) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert got["dsr"] == pytest.approx(hand, rel=1e-12) and got["reason"] is None
    assert got["psr"] == 0.6 and got["sharpe"] == 0.9 and got["strategy"] == "band:level=0.2"


def test_dsr_is_null_with_a_reason_when_the_test_sharpe_is_undefined(tmp_path: Path) -> None:
    cells = _cells()
    cells["differencing"]["splits"]["test"]["trading"]["sign"].update(sharpe=None, sharpe_period=None)
    got = deflated_sharpe(cells, ("differencing", "sign"), _config(tmp_path))
    assert got["dsr"] is None and "undefined" in got["reason"]


def test_leaderboard_rows_hold_each_pair_with_its_trading_results_and_the_dsr_on_the_choice(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    cells = _cells()
    best, ranks = rank_candidates(cells, config)
    rows = candidate_rows("AAA", cells, best, ranks, config, dsr=0.42)
    assert len(rows) == 2 * 3 * 2  # splits x labels x strategies
    assert [r["split"] for r in rows] == ["validation"] * 6 + ["test"] * 6
    selected = [(r["split"], r["preaug"], r["strategy"]) for r in rows if r["selected"]]
    assert selected == [("validation", "none", "band:level=0.2"), ("test", "none", "band:level=0.2")]
    assert [r["dsr"] for r in rows if r["dsr"] is not None] == [0.42]
    row = next(r for r in rows if r["split"] == "test" and r["preaug"] == "differencing")
    assert (
        row["strategy"] == "sign"
        and row["sharpe"] == 0.1
        and row["rank"] == ranks["test"][("differencing", "sign")]
    )


def test_a_trading_metric_needs_the_close_forecast(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="add close to --targets"):
        _config(tmp_path, targets=("open",), target="open")


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Chronos2Engine:
    return Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))


def test_sweep_selects_a_strategy_on_validation_sharpe_and_deflates_its_test_sharpe(
    tmp_path: Path, engine: Chronos2Engine
) -> None:
    from chronobt.runs.sweep import run_sweep

    write_symbol(tmp_path / "data", "AAA", 300, seed=3)
    config = _config(tmp_path, allow_short=True, fee_bps=0.0)
    report = run_sweep(config, engine=engine)
    board = pd.read_parquet(tmp_path / "out" / "sweep" / "leaderboard.parquet")
    assert set(board["strategy"]) == set(STRATEGIES)
    assert len(board) == 2 * 2 * len(STRATEGIES)  # none, differencing x splits x strategies
    best = json.loads((tmp_path / "out" / "sweep" / "best" / "AAA.json").read_text())
    assert best == json.loads(json.dumps(report.best["AAA"]))
    chosen = board[board["selected"] & (board["split"] == "validation")]
    assert len(chosen) == 1 and chosen["strategy"].iloc[0] == best["best_strategy"]
    validation = board[board["split"] == "validation"]
    assert chosen["sharpe"].iloc[0] == validation["sharpe"].max()
    deflated = best["deflated_sharpe"]
    assert deflated["n_trials"] == int(validation["sharpe"].notna().sum()) >= 2
    test_row = board[board["selected"] & (board["split"] == "test")]
    assert test_row["dsr"].iloc[0] == pytest.approx(deflated["dsr"], nan_ok=True)
    assert test_row["sharpe"].iloc[0] == pytest.approx(deflated["sharpe"], nan_ok=True)
    assert best["test_trading"]["sharpe"] == deflated["sharpe"]
    assert set(best["validation_by_strategy"]) == set(STRATEGIES)


def test_sweep_command_shows_each_pair_and_the_deflated_sharpe(tmp_path: Path, tiny_model_dir: Path) -> None:
    from typer.testing import CliRunner

    from chronobt.cli import app

    write_symbol(tmp_path / "data", "AAA", 300, seed=3)
    args = ["sweep", "AAA", "--preaug", "none,differencing", "--strategy", "sign,band", "--metric", "SHARPE"]
    args += ["--horizon", "4", "--context", "128", "--validation-windows", "16", "--test-windows", "10"]
    args += ["--model", str(tiny_model_dir), "--device", "cpu", "--compile", "off", "--allow-short"]
    args += ["--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "none · sign" in result.stdout and "differencing · band" in result.stdout
    assert "deflated" in result.stdout and "trials" in result.stdout


@pytest.mark.slow
def test_a_strategy_sweep_on_ray_chooses_and_deflates_as_the_local_one(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    ray = pytest.importorskip("ray")
    from chronobt.runs.executors import package_env
    from chronobt.runs.sweep import run_sweep

    write_symbol(tmp_path / "data", "AAA", 300, seed=3)
    engine_config = EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=package_env())
    try:
        best = {}
        for kind in ("local", "ray"):
            config = _config(tmp_path, output_dir=tmp_path / kind, executor=kind, allow_short=True)
            best[kind] = run_sweep(config, engine_config).best["AAA"]
    finally:
        ray.shutdown()
    assert best["ray"]["best"] == best["local"]["best"]
    assert best["ray"]["best_strategy"] == best["local"]["best_strategy"]
    local, remote = best["local"]["deflated_sharpe"], best["ray"]["deflated_sharpe"]
    assert remote["n_trials"] == local["n_trials"]
    assert remote["dsr"] == pytest.approx(local["dsr"], rel=1e-4, nan_ok=True)
