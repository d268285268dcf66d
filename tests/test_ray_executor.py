"""`--executor ray`: the same cells, leaderboard and backtests as a local run; faults retried; clear errors.

The Ray tests share one local Ray instance (2 CPUs, no dashboard) that the module starts and stops.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from chronobt.cli import app
from chronobt.config import BacktestConfig, SweepConfig
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ConfigError
from chronobt.runs.executors import RayExecutor, package_env
from chronobt.runs.sweep import run_sweep
from tests.synthetic import write_symbol

ray = pytest.importorskip("ray")

SYMBOLS = ("AAA", "BBB", "CCC")
PREAUGS = "none,differencing,log_returns,robust_scaling"  # robust_scaling takes none's cell
SMALL = ["--horizon", "8", "--context", "128", "--validation-windows", "4", "--test-windows", "3"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray") / "data"
    for seed, symbol in enumerate(SYMBOLS, start=1):
        write_symbol(folder, symbol, 300, seed=seed)
    return folder


@pytest.fixture(scope="module")
def engine_config(tiny_model_dir: Path) -> EngineConfig:
    return EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off")


@pytest.fixture(scope="module")
def local_sweep(
    data_dir: Path, engine_config: EngineConfig, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The reference: the same sweep with the local executor."""
    out = tmp_path_factory.mktemp("local")
    run_sweep(_config(data_dir, out), engine_config)
    return out


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    # the workers import this checkout's chronobt, as when the executor starts Ray itself
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=package_env())
    yield
    ray.shutdown()


def _config(data_dir: Path, out: Path, **kw: Any) -> SweepConfig:
    kw.setdefault("symbols", SYMBOLS)
    return SweepConfig(
        preaugs=(PREAUGS,),
        horizon=8,
        context=128,
        validation_windows=4,
        test_windows=3,
        data_dir=data_dir,
        output_dir=out,
        **kw,
    )


def _cli(model: Path, data_dir: Path, out: Path, *extra: str) -> Any:
    args = ["sweep", *SYMBOLS, "--preaug", PREAUGS, *SMALL, "--model", str(model), "--compile", "off"]
    args += ["--device", "cpu", "--data-dir", str(data_dir), "--output-dir", str(out), *extra]
    return CliRunner().invoke(app, args)


def _leaderboard(out: Path) -> pd.DataFrame:
    frame = pd.read_parquet(out / "sweep" / "leaderboard.parquet")
    return frame.sort_values(["symbol", "split", "preaug"]).reset_index(drop=True)


def _choices(out: Path) -> dict[str, str]:
    return {p.stem: json.loads(p.read_text())["best_preaug"] for p in (out / "sweep" / "best").glob("*.json")}


def _assert_same_leaderboard(out: Path, reference: Path) -> None:
    # the same cells; actors run 1 torch thread where the local engine may run several, so the floats may
    # differ in their last bits
    pd.testing.assert_frame_equal(_leaderboard(out), _leaderboard(reference), check_exact=False, rtol=1e-5)
    assert _choices(out) == _choices(reference)


# -- before any Ray instance is started ------------------------------------------------------------------


def test_when_the_ray_cluster_cannot_be_reached_then_one_line_names_the_address(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    result = _cli(
        tiny_model_dir, data_dir, tmp_path, "--executor", "ray", "--ray-address", "ray://127.0.0.1:1"
    )
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "ray://127.0.0.1:1 cannot be reached" in line and "ray start --head" in line
    assert "Traceback" not in result.stderr
    assert not ray.is_initialized()
    assert not (tmp_path / "sweep" / "cells").exists()


def test_when_ray_is_not_installed_then_the_error_names_the_extra(
    tiny_model_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = _cli(tiny_model_dir, data_dir, tmp_path, "--executor", "ray")
    assert result.exit_code == 2
    assert "pip install 'chronobt[ray]'" in result.stderr


def test_executor_and_address_are_validated_with_the_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="local, ray"):
        _config(tmp_path, tmp_path, executor="dask")
    with pytest.raises(ConfigError, match="needs --executor ray"):
        _config(tmp_path, tmp_path, ray_address="auto")
    with pytest.raises(ConfigError, match="ray://HOST:PORT"):
        _config(tmp_path, tmp_path, executor="ray", ray_address="ray://nohost")
    assert _config(tmp_path, tmp_path, executor="ray", ray_address="ray://head:10001").executor == "ray"


# -- on a local Ray instance -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_sweep_on_ray_gives_the_local_leaderboard_and_shares_its_cache(
    tiny_model_dir: Path, data_dir: Path, local_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHRONOBT_EXECUTOR", "ray")
    result = _cli(tiny_model_dir, data_dir, tmp_path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cells"] == {"cached": 0, "computed": 9, "derived": 3}
    _assert_same_leaderboard(tmp_path, local_sweep)
    assert json.loads((tmp_path / "sweep" / "manifest.json").read_text())["config"]["executor"] == "ray"

    # a local rerun finds every cell the Ray run stored
    again = _cli(tiny_model_dir, data_dir, tmp_path, "--json", "--executor", "local")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["cells"] == {"cached": 12, "computed": 0, "derived": 0}


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_when_an_actor_is_killed_mid_sweep_its_chunk_is_retried_and_the_sweep_completes(
    engine_config: EngineConfig, data_dir: Path, local_sweep: Path, tmp_path: Path
) -> None:
    killed: list[int] = []
    attempts: list[int] = []

    def kill_first(actor: Any, index: int, attempt: int) -> None:
        # the third chunk goes to an actor that has finished one: it is alive and takes the chunk at once
        if index == 2:
            attempts.append(attempt)
        if index == 2 and not killed:
            killed.append(index)
            ray.kill(actor, no_restart=False)  # dies with the chunk in flight, then restarts

    engine = Chronos2Engine(engine_config)
    with RayExecutor(engine_config, actors=2, on_dispatch=kill_first) as executor:
        report = run_sweep(_config(data_dir, tmp_path, executor="ray"), engine=engine, executor=executor)
    # however slow the restart, the retry goes to a live actor: the other one, or the killed one once back
    assert killed and executor.retries == 1 and attempts == [1, 2]
    assert report.cells_computed == 9 and not report.failures
    assert report.engine_record["calls"] >= 1  # the manifest records what a worker's engine ran
    _assert_same_leaderboard(tmp_path, local_sweep)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_when_a_chunk_exhausts_its_attempts_only_its_symbol_fails(
    engine_config: EngineConfig, data_dir: Path, tmp_path: Path
) -> None:
    def kill_second(actor: Any, index: int, attempt: int) -> None:
        if index == 1:  # one actor: it has finished AAA and is alive
            ray.kill(actor, no_restart=False)

    engine = Chronos2Engine(engine_config)
    config = _config(data_dir, tmp_path, executor="ray", symbols=("AAA", "BBB"))
    with RayExecutor(engine_config, actors=1, max_attempts=1, on_dispatch=kill_second) as executor:
        report = run_sweep(config, engine=engine, executor=executor)
    assert set(report.best) == {"AAA"}
    assert "lost after 1 attempts" in report.failures["BBB"]
    assert not (tmp_path / "sweep" / "cells" / "BBB").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_backtest_on_ray_writes_the_local_metrics(
    engine_config: EngineConfig, data_dir: Path, tmp_path: Path
) -> None:
    from chronobt.runs.backtest import run_backtest

    engine = Chronos2Engine(engine_config)
    metrics = {}
    for kind in ("local", "ray"):
        config = BacktestConfig(
            symbols=SYMBOLS[:2],
            preaug="differencing",
            windows=5,
            horizon=8,
            context=128,
            data_dir=data_dir,
            output_dir=tmp_path / kind,
            executor=kind,
            strategies=("sign", "band", "range:stop=0.1"),  # the trading options reach the actors
            entry="close",
            slippage_bps=2.0,
        )
        report = run_backtest(config, engine=engine)
        assert not report.failures
        metrics[kind] = {r.symbol: r.summary["metrics"] for r in report.results}
        for r in report.results:
            trading = r.summary["trading"]
            assert list(trading) == ["sign", "band", "range:stop=0.1"]
            assert (
                trading["sign"]["costs"]["entry"] == "close"
                and trading["band"]["costs"]["slippage_bps"] == 2.0
            )
    assert metrics["ray"].keys() == metrics["local"].keys()
    for symbol, by_target in metrics["local"].items():
        for target, values in by_target.items():
            assert metrics["ray"][symbol][target] == pytest.approx(values, rel=1e-5, nan_ok=True)
