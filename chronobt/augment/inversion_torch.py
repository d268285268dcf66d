"""The sample-path inversion's two heavy steps in torch, on a chosen device (the engine's GPU).

Path-dependent inversion (:func:`chronobt.augment.inversion.inverse_quantiles`) draws
``P`` sample paths per window, inverts them to prices and reads quantiles off the prices. Two steps
dominate: drawing the step values (a gather from the quantile forecasts, :func:`sample_steps`) and
reading quantiles off ``P`` prices per step (:func:`path_quantiles`). The inverse itself stays the
augmentation's numpy code. :func:`sample_steps` computes what
:func:`chronobt.augment.sampling.sample_steps` computes, in float64; :func:`path_quantiles` reads the
quantiles off 16-bit keys, within 1/8,192 of the spread of the order statistics needed of the exact
read the CPU path makes (:func:`chronobt.augment.sampling.read_quantiles`). A rerun on the same
device is byte-identical (gathers, integer sorts and elementwise arithmetic are deterministic).

Why a sort of 16-bit keys and not a partial selection: the quantiles read need 2 order statistics per
level (interpolation), 18 for the 9 default levels; ``torch.kthvalue`` runs one selection per order
statistic and ``torch.topk`` needs ``k`` up to ``0.9 P``, while an integer sort is a radix sort, one
linear pass per digit. On a CPU the compiled loops of :mod:`chronobt.augment.kernels` beat every torch
variant (timings: ``benchmarks/RESULTS.md``, section ``inversion_speed.py``), so the library uses this
module only on CUDA (:func:`inversion_device`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from chronobt.augment import sampling

#: Key steps over a row's bracket in :func:`path_quantiles` (16-bit keys).
KEY_STEPS = 65535
#: Fewest keys between the lowest and the highest order statistic needed for a keyed read to stand.
MIN_KEY_SPAN = 4096


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


def key_bracket(flat: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``flat`` ``[rows, P]``: the lowest key's value, the key step and whether keys apply.

    The bracket holds the order statistics at ``targets`` with room to spare but not the outliers: the
    pilot's values at :func:`chronobt.augment.sampling.pilot_ranks`, widened by a quarter of their
    distance on each side. Rows holding a NaN or an infinity, and rows whose bracket is empty (a
    constant centre), are marked for an exact read.
    """
    stride, low_rank, high_rank = sampling.pilot_ranks(flat.shape[1], targets)
    part = np.partition(flat[:, ::stride], [low_rank, high_rank], axis=1)
    a, b = part[:, low_rank], part[:, high_rank]
    with np.errstate(invalid="ignore", over="ignore"):
        low = a - 0.25 * (b - a)
        step = 1.5 * (b - a) / KEY_STEPS
        usable = np.isfinite(flat.sum(axis=1)) & np.isfinite(step) & (step > 0)
    return np.where(usable, low, 0.0), np.where(usable, step, 0.0), usable


def path_quantiles(paths: np.ndarray, targets: np.ndarray, device: torch.device) -> np.ndarray:
    """Quantiles ``[..., K]`` of ``paths`` ``[..., P]`` at ``targets`` on ``device``, read off 16-bit keys.

    Each row's values are rounded to one of :data:`KEY_STEPS` + 1 evenly spaced keys over its
    :func:`key_bracket` (values beyond it take the end keys), a map that keeps the order; the keys are
    sorted (as int32: what CUDA sorts fastest among the types that hold them) and the order statistics
    read back at their keys, interpolated as in :func:`chronobt.augment.sampling.path_quantiles`. Rows
    are sorted exactly where the bound could matter: where the bracket misses (an order statistic at an
    end key), where the needed order statistics span fewer than :data:`MIN_KEY_SPAN` keys (an outlier in
    the pilot stretched the bracket), and rows holding a NaN or an infinity or with a constant centre.
    So every keyed value is within 1/(2 * MIN_KEY_SPAN) of the spread of the needed order statistics.
    """
    n = paths.shape[-1]
    lo, hi, frac = sampling.hazen_positions(targets, n)
    flat_host = paths.reshape(-1, n)
    low, step, usable = key_bracket(flat_host, targets)
    scale = np.divide(1.0, step, out=np.zeros_like(step), where=usable)

    def column(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float64, device=device)[:, None]

    at_lo, at_hi = torch.as_tensor(lo, device=device), torch.as_tensor(hi, device=device)
    f = torch.as_tensor(frac, dtype=torch.float64, device=device)
    flat = torch.as_tensor(flat_host, dtype=torch.float64).to(device)
    keys = torch.nan_to_num((flat - column(low - 0.5 * step)) * column(scale)).clamp_(0.0, KEY_STEPS)
    keyed = torch.sort(keys.to(torch.int32), dim=-1).values
    out = column(low) + (keyed[:, at_lo] * (1.0 - f) + keyed[:, at_hi] * f) * column(step)
    first, last = keyed[:, int(lo.min())], keyed[:, int(hi.max())]
    inside = (first > 0) & (last < KEY_STEPS) & (last - first >= MIN_KEY_SPAN)
    missed = ~(torch.as_tensor(usable, device=device) & inside)
    if bool(missed.any()):
        ordered = torch.sort(flat[missed], dim=-1).values
        out[missed] = ordered[:, at_lo] * (1.0 - f) + ordered[:, at_hi] * f
    return out.reshape(*paths.shape[:-1], -1).cpu().numpy()
