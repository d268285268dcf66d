"""Affine pre-augmentations give the ``none`` forecast: the claim a sweep relies on to score them once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chronobt.augment import AVAILABLE_AUGMENTATIONS, affine_equivalent
from chronobt.config import EvaluationOptions
from chronobt.data import load_ohlc
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.pipeline.jobs import forecast_jobs, make_job, prepare_windows
from chronobt.pipeline.uncertainty import invert_job
from tests.synthetic import random_walk_contexts, write_symbol

AFFINE = ("robust_scaling", "percent_change")


@pytest.fixture(scope="module")
def inverted(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Price quantiles [windows, variates, Q, horizon] per augmentation, from the tiny model."""
    data = tmp_path_factory.mktemp("data")
    write_symbol(data, "AAA", 700, seed=5)
    engine = Chronos2Engine(EngineConfig(model=str(tiny_model_dir), device="cpu", compile="off"))
    options = EvaluationOptions(horizon=12, context=256, data_dir=data)
    sw = prepare_windows(load_ohlc("AAA", data), options, windows=8, context=256)
    jobs = {s: make_job(sw, s) for s in ("none", *AFFINE, "detrending", "log_returns")}
    forecast_jobs(engine, list(jobs.values()), options.horizon)
    return {s: invert_job(job, engine.quantile_levels, options).price_q for s, job in jobs.items()}


def test_the_affine_augmentations_are_robust_scaling_and_percent_change_equivalent_to_none() -> None:
    assert {n: affine_equivalent(n) for n in AVAILABLE_AUGMENTATIONS} == {
        "none": None,
        "differencing": None,
        "detrending": None,
        "robust_scaling": "none",
        "log_returns": None,
        "percent_change": "none",
        "rolling_norm": None,
    }


@pytest.mark.parametrize("name", AFFINE)
def test_affine_augmentation_transform_is_a_positive_scale_and_shift_constant_over_time(name: str) -> None:
    aug = AVAILABLE_AUGMENTATIONS[name]()
    x = random_walk_contexts([200, 150, 90], n_time=200, seed=3)  # [w, v, t], NaN-padded on the left
    y = aug.transform(x, aug.fit(x, variates=("open", "high", "low", "close")))
    valid = ~np.isnan(x)
    # y = a x + b per (window, variate): fit a, b on two steps, check every step
    t0, t1 = -1, -2
    a = (y[..., t0] - y[..., t1]) / (x[..., t0] - x[..., t1])
    b = y[..., t0] - a * x[..., t0]
    assert (a > 0).all()
    np.testing.assert_allclose(y[valid], (a[..., None] * x + b[..., None])[valid], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", AFFINE)
def test_affine_augmentation_forecast_equals_nones_to_float32_rounding(
    inverted: dict[str, np.ndarray], name: str
) -> None:
    # Chronos-2 standardises each series: the model sees the same input up to float32 rounding
    np.testing.assert_allclose(inverted[name], inverted["none"], rtol=2e-6, atol=0)


@pytest.mark.parametrize("name", ["detrending", "log_returns"])
def test_time_varying_or_nonlinear_augmentation_forecast_differs_from_nones(
    inverted: dict[str, np.ndarray], name: str
) -> None:
    # the transform is not one scale and shift per (window, variate): an affine fit on two steps misses others
    aug = AVAILABLE_AUGMENTATIONS[name]()
    x = random_walk_contexts([200, 150, 90], n_time=200, seed=3)
    y = aug.transform(x, aug.fit(x, variates=("open", "high", "low", "close")))
    a = (y[..., -1] - y[..., -2]) / (x[..., -1] - x[..., -2])
    b = y[..., -1] - a * x[..., -1]
    valid = ~np.isnan(x) & ~np.isnan(y)
    assert not np.allclose(y[valid], (a[..., None] * x + b[..., None])[valid], rtol=1e-6, atol=1e-6)
    # so its forecast differs from none's in every window and variate, ten times the float32 rounding
    # (rtol 2e-6) the affine ones stay within, and not in a few entries only
    rel = np.abs(inverted[name] - inverted["none"]) / np.abs(inverted["none"])  # [windows, variates, Q, h]
    assert rel.max() > 1e-4
    assert (rel.max(axis=(2, 3)) > 10 * 2e-6).all()
    assert np.median(rel) > 1e-4
