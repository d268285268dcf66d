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

    The same bracket (:func:`~chronobt.augment.sampling.key_bracket`, on the host), the same 16-bit keys
    (as int32: what CUDA sorts fastest among the types that hold them), order statistics and
    interpolation; rows the keys cannot read are sorted exactly.
    """
    n = paths.shape[-1]
    lo, hi, frac = sampling.hazen_positions(targets, n)
    flat_host = paths.reshape(-1, n)
    low, step, usable = sampling.key_bracket(flat_host, targets)
    scale = np.divide(1.0, step, out=np.zeros_like(step), where=usable)

    def column(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float64, device=device)[:, None]

    at_lo, at_hi = torch.as_tensor(lo, device=device), torch.as_tensor(hi, device=device)
    f = torch.as_tensor(frac, dtype=torch.float64, device=device)
    flat = torch.as_tensor(flat_host, dtype=torch.float64).to(device)
    keys = torch.nan_to_num((flat - column(low - 0.5 * step)) * column(scale)).clamp_(0.0, sampling.KEY_STEPS)
    keyed = torch.sort(keys.to(torch.int32), dim=-1).values
    out = column(low) + (keyed[:, at_lo] * (1.0 - f) + keyed[:, at_hi] * f) * column(step)
    first, last = keyed[:, int(lo.min())], keyed[:, int(hi.max())]
    inside = (first > 0) & (last < sampling.KEY_STEPS) & (last - first >= sampling.MIN_KEY_SPAN)
    missed = ~(torch.as_tensor(usable, device=device) & inside)
    if bool(missed.any()):
        ordered = torch.sort(flat[missed], dim=-1).values
        out[missed] = ordered[:, at_lo] * (1.0 - f) + ordered[:, at_hi] * f
    return out.reshape(*paths.shape[:-1], -1).cpu().numpy()
