"""Augmented contexts (negative values included) through a tiny local Chronos-2 and back to prices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chronobt.augment import AVAILABLE_AUGMENTATIONS, get_augmentation, inverse_quantiles

HORIZON = 6


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path):
    chronos = pytest.importorskip("chronos")
    return chronos.BaseChronosPipeline.from_pretrained(str(tiny_model_dir), device_map="cpu")


def contexts() -> np.ndarray:
    """Three windows of OHLC-like positive prices [3, 4, 64]; the last is left-padded with NaN."""
    rng = np.random.default_rng(0)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (3, 1, 64)), axis=-1))
    x = close * np.array([1.0, 1.01, 0.99, 1.0])[None, :, None]
    x[2, :, :10] = np.nan
    return x


@pytest.mark.parametrize("spec", [*sorted(set(AVAILABLE_AUGMENTATIONS) - {"none"}), "rolling_norm:window=8"])
@pytest.mark.parametrize("dependence", ["independent", "comonotonic"])
def test_negative_augmented_series_go_through_the_model_and_back_to_finite_prices(
    pipeline, spec: str, dependence: str
) -> None:
    x = contexts()
    aug = get_augmentation(spec)
    state = aug.fit(x, variates=["open", "high", "low", "close"])
    model_input = aug.transform(x, state)
    assert (model_input[np.isfinite(model_input)] < 0).any()
    preds = pipeline.predict(model_input, prediction_length=HORIZON)
    q = np.stack([p.float().numpy() for p in preds]).astype(np.float64)  # [w, v, 21, h]
    levels = list(pipeline.quantiles)
    assert q.shape == (3, 4, len(levels), HORIZON)
    prices = inverse_quantiles(
        aug, q, levels=levels, state=state, out_levels=[0.1, 0.5, 0.9], dependence=dependence, n_paths=512
    )
    assert prices.shape == (3, 4, 3, HORIZON)
    assert np.isfinite(prices).all()
    assert np.all(np.diff(prices, axis=2) >= 0)  # quantiles of prices stay ordered
