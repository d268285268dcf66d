"""GPU checks (marker ``gpu``): skipped without CUDA, run on a lent GPU machine with ``pytest -m gpu``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chronobt.engine.core import Chronos2Engine, EngineConfig

pytestmark = pytest.mark.gpu


def _contexts(n: int, length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, 4, length)), axis=-1))


def test_cuda_engine_matches_cpu_engine_in_float32(tiny_model_dir: Path) -> None:
    ctx = _contexts(37, 300)
    cpu = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))
    gpu = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cuda", compile="off"))
    np.testing.assert_allclose(gpu.predict(ctx, 24), cpu.predict(ctx, 24), rtol=1e-4, atol=1e-4)


def test_cuda_compiled_engine_compiles_once_and_matches_eager(tiny_model_dir: Path) -> None:
    eager = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cuda", compile="off"))
    compiled = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cuda", compile="on"))
    for n, length in ((37, 300), (5, 200), (64, 512)):
        ctx = _contexts(n, length, seed=n)
        np.testing.assert_allclose(compiled.predict(ctx, 24), eager.predict(ctx, 24), rtol=1e-3, atol=1e-3)
    record = compiled.record()["compile"]
    assert record["used"] and record["fallback_reason"] is None
    assert record["compilations"] == 1


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_output_only_view_passes_its_check_within_the_dtype_tolerance(
    tiny_model_dir: Path, dtype: str
) -> None:
    engine = Chronos2Engine(
        EngineConfig(model=str(tiny_model_dir), device="cuda", dtype=dtype, compile="off")
    )
    forecast = engine.predict(_contexts(9, 300), 24)
    assert np.isfinite(forecast).all()
    record = engine.record()
    assert record["dtype"] == dtype
    check = record["output_only_check"]
    assert record["output_only_last_block"] is True and check["passed"], check
    assert check["max_abs_diff"] <= check["tolerance"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cuda_block_diagonal_groups_pass_their_check_and_batches_are_staged(
    tiny_model_dir: Path, dtype: str
) -> None:
    engine = Chronos2Engine(
        EngineConfig(model=str(tiny_model_dir), device="cuda", dtype=dtype, compile="off")
    )
    forecast = engine.predict(_contexts(300, 300), 24)  # several batches: staged one ahead
    assert np.isfinite(forecast).all()
    record = engine.record()
    check = record["block_diagonal_check"]
    assert record["block_diagonal_groups"] is True and check["passed"], check
    report = engine.last_call
    assert report is not None and report.staged is not None and report.staged[0] == record["batches"] - 1


def test_cuda_inversion_equals_the_numpy_one() -> None:
    import torch

    from chronobt.augment import get_augmentation, inverse_quantiles

    ctx = _contexts(8, 200)
    aug = get_augmentation("differencing")
    state = aug.fit(ctx)
    levels = np.linspace(0.05, 0.95, 19)
    rng = np.random.default_rng(0)
    q = np.sort(rng.normal(0, 1, (8, 4, 19, 12)), axis=2)
    kwargs = {"levels": levels, "state": state, "out_levels": (0.1, 0.5, 0.9), "n_paths": 1024}
    host = inverse_quantiles(aug, q, **kwargs)
    cuda = inverse_quantiles(aug, q, device=torch.device("cuda"), **kwargs)
    np.testing.assert_allclose(cuda, host, rtol=1e-9, atol=1e-9)
    assert cuda.tobytes() == inverse_quantiles(aug, q, device=torch.device("cuda"), **kwargs).tobytes()
