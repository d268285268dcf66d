"""The sample-path inversion's two heavy steps in torch, on a chosen device (the engine's GPU).

Path-dependent inversion (:meth:`chronobt.augment.base.Augmentation.inverse_quantiles`) draws
``P`` sample paths per window, inverts them to prices and reads quantiles off the prices. Two steps
dominate: drawing the step values (a gather from the quantile forecasts, :func:`sample_steps`) and
reading quantiles off ``P`` prices per step (a sort, :func:`path_quantiles`). The inverse itself stays
the augmentation's numpy code. These functions compute exactly what
:func:`chronobt.augment.sampling.sample_steps` and :func:`~chronobt.augment.sampling.path_quantiles`
compute, in float64, so the numbers equal the numpy path to float rounding and a rerun on the same
device is byte-identical (gathers, sorts and elementwise arithmetic are deterministic).

Why a sort and not a partial selection: the quantiles read need 2 order statistics per level
(interpolation), 18 for the 9 default levels; ``torch.kthvalue`` runs one selection per order statistic
and ``torch.topk`` needs ``k`` up to ``0.9 P``. On CUDA a segmented sort of 4,096 values per row is one
pass of a radix sort. On a CPU numpy's SIMD sort beats every torch variant (timings in
``benchmarks/RESULTS.md``), so the library uses this module only on CUDA (:func:`inversion_device`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def inversion_device(device: Any) -> torch.device | None:
    """The device the torch inversion should run on for an engine on ``device``: CUDA only, else ``None``."""
    resolved = torch.device(device) if device is not None else None
    return resolved if resolved is not None and resolved.type == "cuda" else None


def sample_steps(q_tf: np.ndarray, seg: np.ndarray, frac: np.ndarray, device: torch.device) -> np.ndarray:
    """Sampled step values ``[h, rows, P]`` from per-step quantiles ``q_tf`` ``[h, rows, Q]`` on ``device``.

    ``seg``, ``frac`` ``[h, P]``: segment and fraction of each path's draw (the same for every row).
    """
    q = torch.as_tensor(q_tf, dtype=torch.float64).to(device)
    h, rows, _ = q.shape
    index = torch.as_tensor(seg, dtype=torch.int64).to(device)[:, None, :].expand(h, rows, -1)
    lo = torch.gather(q, 2, index)
    hi = torch.gather(q, 2, index + 1)
    f = torch.as_tensor(frac, dtype=torch.float64).to(device)[:, None, :]
    return (lo + (hi - lo) * f).cpu().numpy()


def path_quantiles(paths: np.ndarray, targets: np.ndarray, device: torch.device) -> np.ndarray:
    """Empirical quantiles ``[..., K]`` of ``paths`` ``[..., P]`` at ``targets`` on ``device`` (Hazen).

    The rule of :func:`chronobt.augment.sampling.path_quantiles`: the ``j``-th smallest of ``P`` values
    sits at level ``(j + 0.5) / P``, linear in between, the extremes beyond.
    """
    n = paths.shape[-1]
    pos = np.clip(np.asarray(targets, dtype=np.float64) * n - 0.5, 0.0, n - 1.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    x = torch.as_tensor(paths, dtype=torch.float64).to(device)
    ordered = torch.sort(x, dim=-1).values
    at_lo = ordered[..., torch.as_tensor(lo, device=device)]
    at_hi = ordered[..., torch.as_tensor(hi, device=device)]
    f = torch.as_tensor(pos - lo, dtype=torch.float64, device=device)
    return (at_lo * (1.0 - f) + at_hi * f).cpu().numpy()
