"""The torch sample-path inversion: the CPU path's numbers to the keyed bound, byte-identical reruns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from chronobt.augment import get_augmentation, inverse_quantiles, inversion_torch, sampling
from chronobt.augment import inversion as augment_inversion
from chronobt.augment.inversion_torch import inversion_device, path_quantiles, sample_steps
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
    keyed, exact = (
        path_quantiles(paths, np.asarray(OUT), CPU),
        sampling.path_quantiles(paths, np.asarray(OUT)),
    )
    np.testing.assert_array_equal(keyed[0, 0], exact[0, 0])  # a row with NaN is sorted exactly
    _assert_within_the_key_bound(keyed, exact)


def _assert_within_the_key_bound(keyed: np.ndarray, exact: np.ndarray, axis: int = -1) -> None:
    """Every keyed value within 1/(2 MIN_KEY_SPAN) of the spread of the row's needed order statistics."""
    spread = np.nanmax(exact, axis=axis, keepdims=True) - np.nanmin(exact, axis=axis, keepdims=True)
    bound = spread / (2 * inversion_torch.MIN_KEY_SPAN) * 1.01 + 1e-12
    assert np.all((np.abs(keyed - exact) <= bound) | (np.isnan(keyed) & np.isnan(exact)))


def test_keyed_quantiles_are_within_half_a_key_step_of_the_exact_ones() -> None:
    rng = np.random.default_rng(4)
    paths = np.concatenate(
        [rng.normal(1e5, 300.0, (3, 4096)), rng.standard_t(2.0, (3, 4096)), rng.normal(size=(2, 4096))]
    )
    paths[-2:, ::97] = 1e12  # exploding paths (rolling_norm under strong dependence) stay outside
    paths[-1, 5::97] = -1e12
    targets = np.array([0.1, 0.25, 0.5, 0.75, 0.9])
    exact = sampling.path_quantiles(paths, targets)
    keyed = path_quantiles(paths, targets, CPU)
    _low, step, usable = inversion_torch.key_bracket(paths, targets)
    assert usable.all()
    assert np.all(np.abs(keyed - exact) <= 0.5 * step[:, None] * (1 + 1e-9))
    assert np.all(step[-2:] < 1e-3)  # the bracket ignores the outliers


def test_keyed_quantiles_fall_back_to_the_exact_read_where_the_bracket_misses() -> None:
    targets = np.array([0.01, 0.5, 0.99])
    paths = np.tile(np.linspace(0.0, 1.0, 512), (3, 1))
    paths[1] = 7.5  # a constant row
    paths[2, ::4] = np.linspace(10.0, 11.0, 128)  # the pilot sees only the upper quarter
    np.testing.assert_array_equal(
        path_quantiles(paths, targets, CPU)[1:], sampling.path_quantiles(paths, targets)[1:]
    )


@pytest.mark.parametrize(
    ("n_paths", "outliers", "targets"),
    [
        (4096, [0], (0.05, 0.1, 0.5, 0.9, 0.95)),  # an outlier in the pilot, levels beyond its margin
        (4096, [0, 32, 64, 96, 128, 160], (0.1, 0.3, 0.5, 0.7, 0.9)),  # six pilot paths explode
        (8, [0], (0.1, 0.5, 0.9)),  # a tiny pilot
    ],
)
def test_keyed_quantiles_stay_close_when_a_few_paths_explode(
    n_paths: int, outliers: list, targets: tuple
) -> None:
    rng = np.random.default_rng(6)
    paths = rng.normal(size=(3, n_paths))
    paths[:, outliers] = 1e12
    t = np.asarray(targets)
    _assert_within_the_key_bound(path_quantiles(paths, t, CPU), sampling.path_quantiles(paths, t))


def test_keyed_quantiles_bound_survives_a_large_level() -> None:
    paths = 1e15 + np.random.default_rng(7).normal(size=(2, 4096))  # the key arithmetic must not cancel
    t = np.array([0.1, 0.5, 0.9])
    _low, step, _usable = inversion_torch.key_bracket(paths, t)
    exact, keyed = sampling.path_quantiles(paths, t), path_quantiles(paths, t, CPU)
    # half a key step is far below the values' own resolution here: at most half an ulp of 1e15 (keying
    # x * scale - offset instead of (x - offset) * scale loses a whole ulp, 0.125, to cancellation)
    assert np.all(np.abs(keyed - exact) <= np.maximum(0.5 * step[:, None], 0.5 * np.spacing(1e15)))


def test_keyed_quantiles_read_rows_with_nan_or_inf_exactly() -> None:
    rng = np.random.default_rng(5)
    paths = rng.normal(size=(2, 3, 512))
    paths[0, 1, 7] = np.nan
    paths[1, 2, 9] = np.inf
    targets = np.array([0.1, 0.5, 0.9])
    keyed = path_quantiles(paths, targets, CPU)
    exact = sampling.path_quantiles(paths, targets)
    assert keyed.shape == (2, 3, 3)
    np.testing.assert_array_equal(keyed[0, 1], exact[0, 1])
    np.testing.assert_array_equal(keyed[1, 2], exact[1, 2])
    np.testing.assert_allclose(keyed, exact, atol=1e-3)


@pytest.mark.parametrize("name", ["differencing", "rolling_norm:window=8"])
def test_inverse_quantiles_on_a_torch_device_match_numpy_and_rerun_byte_identical(name: str) -> None:
    aug, state, q = _augmented_quantiles(name)
    kwargs = {"levels": LEVELS, "state": state, "out_levels": OUT, "n_paths": 512, "seed": 7}
    host = inverse_quantiles(aug, q, **kwargs)
    first = inverse_quantiles(aug, q, device="cpu", **kwargs)
    again = inverse_quantiles(aug, q, device=CPU, **kwargs)
    _assert_within_the_key_bound(first, host, axis=2)
    assert first.tobytes() == again.tobytes()


def test_copula_dependence_runs_on_the_torch_path() -> None:
    aug, state, q = _augmented_quantiles("differencing")
    h = q.shape[-1]
    corr = 0.5 ** np.abs(np.subtract.outer(np.arange(h), np.arange(h)))
    kwargs = {"levels": LEVELS, "state": state, "out_levels": OUT, "n_paths": 512, "seed": 2}
    host = inverse_quantiles(aug, q, dependence="copula", correlation=corr, **kwargs)
    torch_path = inverse_quantiles(aug, q, dependence="copula", correlation=corr, device="cpu", **kwargs)
    _assert_within_the_key_bound(torch_path, host, axis=2)


def test_inversion_runs_in_torch_on_cuda_only() -> None:
    assert inversion_device("cpu") is None and inversion_device(None) is None
    assert inversion_device(torch.device("cuda:1")) == torch.device("cuda:1")


def test_inversion_device_picks_cuda_only_and_imports_torch_only_for_cuda() -> None:
    code = (
        "import sys; from chronobt.augment.inversion import inversion_device; "
        "assert inversion_device(None) is None and inversion_device('cpu') is None; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)
    assert augment_inversion.inversion_device(torch.device("cuda:1")) == torch.device("cuda:1")
    assert augment_inversion.inversion_device("cuda") == torch.device("cuda")
