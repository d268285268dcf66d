"""The sample-path inversion's two heavy steps in torch, on a chosen device (the engine's GPU).

Path-dependent inversion (:meth:`chronobt.augment.base.Augmentation.inverse_quantiles`) draws
``P`` sample paths per window, inverts them to prices and reads quantiles off the prices. Two steps
dominate: drawing the step values (a gather from the quantile forecasts, :func:`sample_steps`) and
reading quantiles off ``P`` prices per step (:func:`path_quantiles`). The inverse itself stays the
augmentation's numpy code. These functions compute what :func:`chronobt.augment.sampling.sample_steps`
and :func:`~chronobt.augment.sampling.keyed_quantiles` compute, in float64, so the numbers equal the
numpy path to float rounding and a rerun on the same device is byte-identical (gathers, integer sorts
and elementwise arithmetic are deterministic).

Why a sort of 16-bit keys and not a partial selection: the quantiles read need 2 order statistics per
level (interpolation), 18 for the 9 default levels; ``torch.kthvalue`` runs one selection per order
statistic and ``torch.topk`` needs ``k`` up to ``0.9 P``, while an integer sort is a radix sort, one
linear pass per digit. On a CPU numpy's 16-bit radix sort beats every torch variant (timings in
``benchmarks/RESULTS.md``), so the library uses this module only on CUDA (:func:`inversion_device`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from chronobt.augment import sampling


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
    """:func:`chronobt.augment.sampling.keyed_quantiles` of ``paths`` ``[..., P]`` on ``device``.

    The same 16-bit keys (as int32: what CUDA sorts fastest among the types that hold them), the same
    order statistics and interpolation; rows holding a NaN or an infinity are sorted exactly.
    """
    n = paths.shape[-1]
    lo, hi, frac = sampling.hazen_positions(targets, n)
    at_lo, at_hi = torch.as_tensor(lo, device=device), torch.as_tensor(hi, device=device)
    f = torch.as_tensor(frac, dtype=torch.float64, device=device)
    flat = torch.as_tensor(paths, dtype=torch.float64).to(device).reshape(-1, n)
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    step = (high - low) / sampling.KEY_STEPS
    finite = torch.isfinite(step)
    out = torch.empty((flat.shape[0], lo.size), dtype=torch.float64, device=device)
    if not bool(finite.all()):
        ordered = torch.sort(flat[~finite], dim=-1).values
        out[~finite] = ordered[:, at_lo] * (1.0 - f) + ordered[:, at_hi] * f
    scale = torch.where(step > 0, 1.0 / torch.where(step > 0, step, 1.0), 0.0)
    keys = flat[finite] * scale[finite, None] - (low[finite] * scale[finite] - 0.5)[:, None]
    keyed = torch.sort(keys.to(torch.int32), dim=-1).values
    read = keyed[:, at_lo] * (1.0 - f) + keyed[:, at_hi] * f
    out[finite] = low[finite, None] + read * step[finite, None]
    return out.reshape(*paths.shape[:-1], -1).cpu().numpy()
