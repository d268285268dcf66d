"""Shared fixtures: tiny local Chronos-2 checkpoints (no network, no GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chronobt.engine.checkpoints import save_random_checkpoint


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Chronos-2 checkpoint (1 layer, d_model 32, context 512, 21 quantiles)."""
    return save_random_checkpoint(tmp_path_factory.mktemp("models") / "tiny-chronos2", "tiny", seed=0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when CUDA is not available (CI has no GPU)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
