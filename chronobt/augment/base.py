"""The :class:`Augmentation` base class: validation, chunking, fitted state and the exact inverse.

Subclasses implement four array primitives on whole batches (no loop per window):

- ``_fit_chunk(x [w, v, t], start [w, v]) -> dict`` of per-window arrays (the state's own fields),
- ``_transform_chunk(x [w, v, t], state) -> [w, v, t]``,
- ``_forward_tf(future [h, w, v], state) -> [h, w, v]`` (time first),
- ``_inverse_tf(values [h, w, v, *paths], state) -> prices, same shape`` (time first).

Quantile forecasts are inverted to price quantiles by :func:`chronobt.augment.inversion.inverse_quantiles`
(exactly for pointwise augmentations, by sample paths for path-dependent ones), which reads a class's
``path_dependent`` flag and calls :meth:`Augmentation.check_state`, :meth:`Augmentation.inverse` and
:meth:`Augmentation.inverse_tf_owned`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from chronobt.errors import AugmentationError

Label = Callable[[int, int], str]

#: Elements (float64) per window chunk of the large intermediate arrays (8 MiB each: a chunk's few
#: arrays stay in a server CPU's last-level cache; against 32 MiB chunks: benchmarks/RESULTS.md, section
#: ``inversion_speed.py``).
CHUNK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class AugmentationSpec:
    """An augmentation name with all its parameters; ``str(spec)`` round-trips through parsing.

    ``str(AugmentationSpec("rolling_norm", (("window", 48),)))`` is ``"rolling_norm:window=48"``.
    """

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{key}={value}" for key, value in self.params)


@dataclass(frozen=True, eq=False)
class AugmentationState:
    """What :meth:`Augmentation.fit` learned from each window's context (per-window arrays).

    Attributes
    ----------
    spec : the augmentation that produced it.
    length : time steps of the fitted context (the forecast starts at step ``length``).
    start : [windows, variates] int, index of the first valid (non-padding) value.
    last : [windows, variates] float64, the last context value.
    """

    spec: AugmentationSpec
    length: int
    start: np.ndarray
    last: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(windows, variates)."""
        return (int(self.start.shape[0]), int(self.start.shape[1]))

    def take(self, rows: slice | np.ndarray) -> AugmentationState:
        """The state of the windows in ``rows`` (a slice or an integer index array)."""
        arrays = {
            f.name: getattr(self, f.name)[rows]
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }
        return dataclasses.replace(self, **arrays)


def window_chunks(n_windows: int, per_window: int) -> Iterator[slice]:
    """Slices over windows holding at most ~``CHUNK_ELEMENTS`` elements each (at least one window)."""
    step = max(1, CHUNK_ELEMENTS // max(1, per_window))
    for lo in range(0, n_windows, step):
        yield slice(lo, min(n_windows, lo + step))


def _default_label(window: int, step: int) -> str:
    return f"window {window}, step {step}"


def expand(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A [w, v] state array broadcastable against time-first values [h, w, v, *paths]."""
    return a.reshape(a.shape + (1,) * (like.ndim - 3))


class Augmentation(ABC):
    """A pre-augmentation: fitted on each window's context, exactly invertible over the forecast.

    Contexts are [windows, variates, time] float64, possibly left-padded with NaN; each window's
    valid part is the suffix from its first finite value and fitting uses only that part.
    """

    name: ClassVar[str]
    path_dependent: ClassVar[bool] = False
    needs_positive: ClassVar[bool] = False
    parameters: ClassVar[tuple[str, ...]] = ()
    state_type: ClassVar[type[AugmentationState]] = AugmentationState

    @property
    def spec(self) -> AugmentationSpec:
        """Name and parameters, e.g. ``rolling_norm:window=20``."""
        return AugmentationSpec(self.name, tuple((p, getattr(self, p)) for p in self.parameters))

    def __repr__(self) -> str:
        return f"get_augmentation({str(self.spec)!r})"

    # -- fitting -------------------------------------------------------------------------------

    def fit(
        self,
        context: np.ndarray,
        *,
        variates: Sequence[str] | None = None,
        label: Label | None = None,
    ) -> AugmentationState:
        """Fit on each window's own context [windows, variates, time]; returns the state.

        ``variates`` name the variates in error messages; ``label(window, step)`` names a bar
        (``step`` indexes the context's time axis), e.g. ``"ETHUSD 2021-05-19 12:00"``.
        Raises :class:`AugmentationError` for NaN/inf after the first valid value, rows without
        values, and the augmentation's own requirements (positive prices, context length).
        """
        x = self._context(context)
        names = list(variates) if variates is not None else [f"#{i}" for i in range(x.shape[1])]
        if len(names) != x.shape[1]:
            raise AugmentationError(f"{self.spec}: {len(names)} variate names for {x.shape[1]} variates")
        start = self._validate(x, names, label or _default_label)
        fields: dict[str, list[np.ndarray]] = {}
        for rows in window_chunks(x.shape[0], x.shape[1] * x.shape[2]):
            for key, value in self._fit_chunk(x[rows], start[rows]).items():
                fields.setdefault(key, []).append(value)
        arrays = {key: np.concatenate(parts) for key, parts in fields.items()}
        return self.state_type(
            spec=self.spec, length=x.shape[-1], start=start, last=x[..., -1].copy(), **arrays
        )

    def _context(self, context: np.ndarray) -> np.ndarray:
        x = np.asarray(context, dtype=np.float64)
        if x.ndim != 3 or x.shape[-1] == 0:
            raise AugmentationError(f"{self.spec}: contexts must be [windows, variates, time], got {x.shape}")
        return x

    def _validate(self, x: np.ndarray, names: list[str], label: Label) -> np.ndarray:
        """Check padding/NaN (and positivity when needed); return the first valid index [w, v]."""
        finite = np.isfinite(x)
        start = np.argmax(finite, axis=-1)
        empty = ~finite.any(axis=-1)
        if empty.any():
            w, v = np.argwhere(empty)[0]
            raise AugmentationError(
                f"{self.spec}: variate '{names[v]}' has no values in the context ending at "
                f"{label(int(w), x.shape[-1] - 1)}; fill or drop the bad rows"
            )
        bad = np.logical_or.accumulate(finite, axis=-1)
        bad &= ~finite
        bad |= np.isinf(x)
        if bad.any():
            w, v, t = np.unravel_index(int(np.argmax(bad)), bad.shape)
            kind = "NaN" if np.isnan(x[w, v, t]) else "infinite value"
            raise AugmentationError(
                f"{self.spec}: {kind} in context of variate '{names[v]}' at {label(int(w), int(t))}; "
                "fill or drop the bad rows"
            )
        if self.needs_positive:
            nonpos = finite & (x <= 0)
            if nonpos.any():
                per_variate = nonpos.sum(axis=(0, 2))
                v = int(np.argmax(per_variate > 0))
                rows = nonpos[:, v, :]
                w, t = np.unravel_index(int(np.argmax(rows)), rows.shape)
                raise AugmentationError(
                    f"{self.spec}: variate '{names[v]}' has {int(per_variate[v])} non-positive values in "
                    f"{int(rows.any(axis=-1).sum())} of {x.shape[0]} windows (first {x[w, v, t]:g} at "
                    f"{label(int(w), int(t))}); {self.name} needs positive prices - choose another "
                    "--preaug (e.g. differencing or detrending)"
                )
        self._check_lengths(x.shape[-1] - start, names, label, x.shape[-1])
        return start

    def _check_lengths(self, n_valid: np.ndarray, names: list[str], label: Label, length: int) -> None:  # noqa: B027
        """Hook: reject contexts too short for the augmentation (``n_valid`` is [w, v])."""

    # -- the primitives ------------------------------------------------------------------------

    @abstractmethod
    def _fit_chunk(self, x: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def _transform_chunk(self, x: np.ndarray, state: Any) -> np.ndarray: ...

    @abstractmethod
    def _forward_tf(self, future: np.ndarray, state: Any) -> np.ndarray: ...

    @abstractmethod
    def _inverse_tf(self, values: np.ndarray, state: Any) -> np.ndarray: ...

    def inverse_tf_owned(self, values: np.ndarray, state: Any) -> np.ndarray:
        """Prices from time-first values ``[h, w, v, *paths]`` of a buffer the caller hands over (it may be
        overwritten and returned): the sample-path inversion's drawn steps, so an augmentation that can
        invert in place spares a chunk-sized allocation (differencing). No checks: ``state`` must be this
        augmentation's, for the same windows."""
        return self._inverse_tf(values, state)

    def running_sum_from(self, state: Any) -> np.ndarray | None:
        """``[w, v]`` when the inverse is a running sum of the values from them, done exactly as
        :meth:`inverse_tf_owned` does it (``x[0] = y[0] + start``, then ``x[k] = y[k] + x[k - 1]``), so the
        sample-path inversion may sum the drawn steps as it reads them
        (:func:`chronobt.augment.sampling.running_sum_quantiles`); ``None`` (the default) otherwise."""
        return None

    # -- public array API ----------------------------------------------------------------------

    def check_state(self, state: object, shape: tuple[int, ...]) -> AugmentationState:
        """``state`` when it is this augmentation's fitted state for values of ``shape`` ``[w, v, ...]``;
        else :class:`AugmentationError`."""
        if not isinstance(state, self.state_type) or state.spec != self.spec:
            got = getattr(state, "spec", type(state).__name__)
            raise AugmentationError(
                f"{self.spec}: needs the state returned by this augmentation's fit(); got {got}"
            )
        if tuple(shape[:2]) != state.shape:
            raise AugmentationError(
                f"{self.spec}: state is for [windows, variates] = {list(state.shape)}, "
                f"values are {list(shape)}"
            )
        return state

    def transform(self, context: np.ndarray, state: AugmentationState) -> np.ndarray:
        """Augmented context [windows, variates, time]; padding stays NaN."""
        x = self._context(context)
        st = self.check_state(state, x.shape)
        if x.shape[-1] != st.length:
            raise AugmentationError(f"{self.spec}: context has {x.shape[-1]} steps, fitted on {st.length}")
        out = np.empty_like(x)
        for rows in window_chunks(x.shape[0], x.shape[1] * x.shape[2]):
            out[rows] = self._transform_chunk(x[rows], st.take(rows))
        return out

    def transform_future(self, future: np.ndarray, state: AugmentationState) -> np.ndarray:
        """Augmented values [windows, variates, horizon] of the bars after the context."""
        f = np.asarray(future, dtype=np.float64)
        if f.ndim != 3:
            raise AugmentationError(
                f"{self.spec}: future must be [windows, variates, horizon], got {f.shape}"
            )
        st = self.check_state(state, f.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.moveaxis(self._forward_tf(np.moveaxis(f, -1, 0), st), 0, -1)

    def inverse(self, values: np.ndarray, state: AugmentationState) -> np.ndarray:
        """Prices from augmented forecasts [w, v, horizon] or sample paths [w, v, paths, horizon]."""
        y = np.asarray(values, dtype=np.float64)
        if y.ndim not in (3, 4):
            raise AugmentationError(
                f"{self.spec}: values must be [w, v, h] or [w, v, paths, h], got {y.shape}"
            )
        st = self.check_state(state, y.shape)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.moveaxis(self._inverse_tf(np.moveaxis(y, -1, 0), st), 0, -1)
