"""How much memory the sample-path inversion needs, and the refusal of what would not fit.

:func:`chronobt.augment.inversion.inverse_quantiles` inverts a path-dependent augmentation's forecasts by
drawing ``P`` sample paths per window, variate and step (float64), over window chunks of about
:data:`~chronobt.augment.base.CHUNK_ELEMENTS` values (at least one window), one chunk per worker thread.
Its peak host memory is

- the draws: segments and fractions ``[h, P]`` (16 bytes a value) per distinct step correlation, held for
  the whole call, plus their setup (:data:`DRAW_SETUP_BYTES` a value and :data:`DRAW_PATH_BYTES` a path);
- per worker, its chunk ``[h, windows in chunk, v, P]`` times the chunk-sized arrays alive at once
  (:func:`live_copies`: 1 for differencing, which inverts in place; the result, the recursion's history and
  its per-step temporaries besides for rolling_norm).

A run whose inversion would not fit in :data:`MEMORY_FRACTION` of the
machine's memory with one worker is refused before any work (:func:`check_inversion_memory`, one line with
the estimate and the limit); one that fits with fewer workers than cores runs with fewer.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from chronobt.augment.base import CHUNK_ELEMENTS, Augmentation
from chronobt.errors import ConfigError

#: Share of the machine's memory (physical, or the cgroup limit when lower) the sample paths may take.
MEMORY_FRACTION = 0.5
#: The limit where the machine's memory cannot be read: none in practice (the static ``--paths`` bound holds).
UNKNOWN_LIMIT = 1 << 62
#: Bytes of one sampled value (float64).
VALUE_BYTES = 8
#: Bytes a drawn ``[h, P]`` value holds for the whole call: its segment (int64) and fraction (float64).
DRAW_BYTES = 16
#: Bytes a ``[h, P]`` value takes while one set of draws is built (the copula's normals, their product
#: with the Cholesky factor and two rank arrays; the Latin hypercube's permutations need less).
DRAW_SETUP_BYTES = 40
#: Bytes a path takes while its stratum is mapped to a segment (targets, indices, fractions, and the
#: normal scores of the levels beyond the outermost quantiles).
DRAW_PATH_BYTES = 96
#: Chunk-sized temporaries of one rolling_norm step (mean, scale, the update's sums), as whole chunks
#: spread over the horizon's steps.
STEP_TEMPORARIES = 12


def live_copies(aug: Augmentation, horizon: int) -> float:
    """Chunk-sized float64 arrays one inversion worker holds at its peak, the drawn steps included.

    Differencing inverts the drawn steps in place (1). Another inverse returns a new array beside them (2),
    rolling_norm also keeps the recursion's ``window + horizon`` steps of history and its per-step
    temporaries (:data:`STEP_TEMPORARIES`).
    """
    if aug.name == "differencing":
        return 1.0
    window = int(getattr(aug, "window", 0))
    return 2.0 + (window + horizon + STEP_TEMPORARIES) / horizon


def memory_limit() -> int:
    """Bytes the sample paths may take: ``MEMORY_FRACTION`` of the physical memory or, when lower, of the
    cgroup's memory limit (a container's). Where the system does not say (no ``sysconf``), no limit."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return UNKNOWN_LIMIT
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return int(total * MEMORY_FRACTION)


@dataclass(frozen=True)
class InversionMemory:
    """Peak host memory of one sample-path inversion, in bytes, and what it was estimated from."""

    n_paths: int
    horizon: int
    variates: int
    chunk_windows: int
    copies: float
    draw_sets: int

    @classmethod
    def of(
        cls, aug: Augmentation, *, windows: int, variates: int, horizon: int, n_paths: int, draw_sets: int = 1
    ) -> InversionMemory:
        """The inversion of ``windows`` windows ``[v, h]`` with ``n_paths`` paths and ``draw_sets`` distinct
        step correlations (1 for independent steps or one shared matrix), chunked as the inversion does."""
        per_window = variates * n_paths * horizon
        chunk = min(max(1, windows), max(1, CHUNK_ELEMENTS // max(1, per_window)))
        return cls(n_paths, horizon, variates, chunk, live_copies(aug, horizon), max(1, draw_sets))

    @property
    def chunk_bytes(self) -> int:
        """One worker's chunk-sized arrays."""
        values = self.horizon * self.chunk_windows * self.variates * self.n_paths
        return math.ceil(values * VALUE_BYTES * self.copies)

    @property
    def draw_bytes(self) -> int:
        """The draws held for the call and the setup of one set."""
        per_step = self.horizon * self.n_paths
        return per_step * (DRAW_BYTES * self.draw_sets + DRAW_SETUP_BYTES) + DRAW_PATH_BYTES * self.n_paths

    def total(self, workers: int = 1) -> int:
        """Peak bytes with ``workers`` threads inverting chunks at once."""
        return self.draw_bytes + workers * self.chunk_bytes

    def workers_within(self, limit: int) -> int:
        """Most worker threads whose chunks fit in ``limit`` bytes beside the draws (at least 1)."""
        return max(1, (limit - self.draw_bytes) // max(1, self.chunk_bytes))


def check_inversion_memory(need: InversionMemory, limit: int | None = None) -> int:
    """``limit`` (default :func:`memory_limit`) when ``need`` fits in it with one worker, else a ConfigError
    with the estimate, the limit and the most ``--paths`` that would fit."""
    limit = memory_limit() if limit is None else limit
    total = need.total(1)
    if total <= limit:
        return limit
    fits = int(need.n_paths * limit / total)
    raise ConfigError(
        f"--paths {need.n_paths}: the sample-path inversion would need {_gb(total)} ({need.horizon} steps x "
        f"{need.variates} variates x {need.n_paths} paths x {VALUE_BYTES} bytes x {need.copies:.3g} live "
        f"copies per window, and the draws) but may use {_gb(limit)} ({MEMORY_FRACTION:.0%} of this "
        "machine's memory); "
        f"pass --paths {max(2, fits)} or fewer, fewer --targets or a shorter --horizon, "
        "or --dependence comonotonic (no sample paths)"
    )


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"
