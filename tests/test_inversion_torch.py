"""The torch sample-path inversion: the numpy path's numbers, byte-identical reruns, copula kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chronobt.augment import get_augmentation, sampling
from chronobt.inversion_torch import inversion_device, path_quantiles, sample_steps
from tests.synthetic import random_walk_contexts

LEVELS = np.linspace(0.05, 0.95, 19)
OUT = (0.1, 0.25, 0.5, 0.75, 0.9)
CPU = torch.device("cpu")


def _augmented_quantiles(name: str, n_windows: int = 6, seed: int = 0):
    ctx = random_walk_contexts([120] * n_windows, n_time=120, seed=seed)
    aug = get_augmentation(name)
    state = aug.fit(ctx)
    rng = np.random.default_rng(seed)
    centre = rng.normal(0.0, 0.5, (n_windows, ctx.shape[1], 1, 8))
    spread = np.sort(rng.normal(0.0, 1.0, (n_windows, ctx.shape[1], LEVELS.size, 1)), axis=2)
    return aug, state, centre + spread * (1.0 + np.arange(8))  # [w, v, Q, h]


def test_torch_steps_and_quantiles_equal_the_numpy_ones() -> None:
    rng = np.random.default_rng(1)
    q_tf = np.sort(rng.normal(size=(5, 7, LEVELS.size)), axis=-1)
    seg, frac = sampling.stratified_draws(LEVELS, 256, 5, seed=3)
    steps = sample_steps(q_tf, seg, frac, CPU)
    np.testing.assert_allclose(steps, sampling.sample_steps(q_tf, seg, frac), rtol=1e-12, atol=1e-12)
    paths = rng.normal(size=(3, 4, 256))
    paths[0, 0, :5] = np.nan
    np.testing.assert_allclose(
        path_quantiles(paths, np.asarray(OUT), CPU),
        sampling.keyed_quantiles(paths, np.asarray(OUT)),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("name", ["differencing", "rolling_norm:window=8"])
def test_inverse_quantiles_on_a_torch_device_match_numpy_and_rerun_byte_identical(name: str) -> None:
    aug, state, q = _augmented_quantiles(name)
    kwargs = {"levels": LEVELS, "state": state, "out_levels": OUT, "n_paths": 512, "seed": 7}
    host = aug.inverse_quantiles(q, **kwargs)
    first = aug.inverse_quantiles(q, device="cpu", **kwargs)
    again = aug.inverse_quantiles(q, device=CPU, **kwargs)
    np.testing.assert_allclose(first, host, rtol=1e-10, atol=1e-10)
    assert first.tobytes() == again.tobytes()


def test_copula_dependence_runs_on_the_torch_path() -> None:
    aug, state, q = _augmented_quantiles("differencing")
    h = q.shape[-1]
    corr = 0.5 ** np.abs(np.subtract.outer(np.arange(h), np.arange(h)))
    kwargs = {"levels": LEVELS, "state": state, "out_levels": OUT, "n_paths": 512, "seed": 2}
    host = aug.inverse_quantiles(q, dependence="copula", correlation=corr, **kwargs)
    torch_path = aug.inverse_quantiles(q, dependence="copula", correlation=corr, device="cpu", **kwargs)
    np.testing.assert_allclose(torch_path, host, rtol=1e-10, atol=1e-10)


def test_inversion_runs_in_torch_on_cuda_only() -> None:
    assert inversion_device("cpu") is None and inversion_device(None) is None
    assert inversion_device(torch.device("cuda:1")) == torch.device("cuda:1")
