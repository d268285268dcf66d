"""Small synthetic OHLC files for tests (geometric random walks, deterministic by seed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def ohlc_frame(
    n: int = 400, *, freq: str = "h", seed: int = 0, start: str = "2022-01-03", price: float = 100.0
):
    """A DataFrame with timestamp, open, high, low, close, volume: a consistent random-walk OHLC series."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate([[price], close[:-1]])
    spread = np.abs(rng.normal(0.0, 0.004, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq=freq, tz="UTC"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(1, 10, n),
        }
    )


def write_symbol(data_dir: Path, symbol: str, n: int = 400, *, freq: str = "h", seed: int = 0) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"{symbol}.parquet"
    ohlc_frame(n, freq=freq, seed=seed).to_parquet(path, index=False)
    return path


def random_walk_contexts(
    lengths: list[int], *, n_time: int, n_variates: int = 4, seed: int = 0
) -> np.ndarray:
    """[tasks, variates, n_time] price-like walks, task i observed only in its last lengths[i] steps."""
    rng = np.random.default_rng(seed)
    walks = 100.0 + np.cumsum(rng.normal(size=(len(lengths), n_variates, n_time)), axis=2)
    for i, length in enumerate(lengths):
        walks[i, :, : n_time - length] = np.nan
    return walks
