"""Batches staged ahead on a CUDA device: the next batch's host preparation and upload overlap compute.

Without staging, each batch runs in turn: the host fills the NaN-padded batch array, copies it to the
device, launches the forward and waits for the forecasts to come back, so the device idles while the host
prepares and the host idles while the device computes. With a :class:`Stager` the engine, right after
launching batch ``i``'s forward (asynchronous on CUDA), prepares batch ``i + 1`` on the host into a pinned
buffer and queues its upload on a second CUDA stream; batch ``i``'s forecasts then come back through a
pinned buffer (``non_blocking``) and one wait. Every forward keeps the one fixed shape of the call.

Correct by construction:

* the compute stream waits for the staged upload's event before the forward reads it, and the device
  buffer is marked as used by the compute stream (``record_stream``) so the allocator cannot reuse it early;
* two pinned host buffers alternate, and a buffer is refilled only after the upload that read it finished
  (its event);
* a staged batch is keyed by ``(start, tasks_per_batch)``; a batch asked for under another key (a retry
  after a compile fallback or an out-of-memory halving) drops it and is prepared afresh;
* the forecasts are read on the host only after the copy's event completed.

On a CPU the engine does not stage (nothing to overlap). The class also runs without CUDA
(``cuda=False``: plain tensors, no streams or events) so its bookkeeping is tested on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

Key = tuple[int, int]


class Stager:
    """Stages fixed-shape context batches ``[rows, C]`` float32 on ``device`` one batch ahead.

    Parameters
    ----------
    device : where the forward runs.
    make_batch : ``make_batch(start, tasks_per_batch) -> [rows, C]`` float32 host array.
    cuda : use pinned buffers, a copy stream and events (``device`` must be CUDA); ``False`` for a CPU
        rehearsal of the same bookkeeping.
    """

    def __init__(self, device: torch.device, make_batch: Callable[[int, int], np.ndarray], *, cuda: bool):
        self.device = device
        self.make_batch = make_batch
        self.cuda = cuda
        self.copy_stream: Any = torch.cuda.Stream(device) if cuda else None
        self._pinned: list[torch.Tensor | None] = [None, None]
        self._uploads: list[Any] = [None, None]  # event of the upload that last read each pinned buffer
        self._slot = 0
        self._staged: tuple[Key, torch.Tensor, Any] | None = None
        self._out: torch.Tensor | None = None
        #: batches prepared ahead and used, prepared ahead and dropped, prepared on demand (for tests)
        self.hits = self.dropped = self.misses = 0

    def stage(self, start: int, tasks_per_batch: int) -> None:
        """Prepare and start uploading the batch at ``start`` (no wait on the device)."""
        if self._staged is not None:
            self.dropped += 1
        self._staged = ((start, tasks_per_batch), *self._upload(self.make_batch(start, tasks_per_batch)))

    def take(self, start: int, tasks_per_batch: int) -> torch.Tensor:
        """The device batch at ``start``: the staged one if it matches, else prepared now."""
        staged, self._staged = self._staged, None
        if staged is not None and staged[0] == (start, tasks_per_batch):
            self.hits += 1
            _, tensor, event = staged
        else:
            if staged is not None:
                self.dropped += 1
            self.misses += 1
            tensor, event = self._upload(self.make_batch(start, tasks_per_batch))
        if self.cuda:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(event)
            tensor.record_stream(compute)
        return tensor

    def download(self, preds: torch.Tensor) -> np.ndarray:
        """``preds`` as float32 on the host, through a pinned buffer, after one wait for the copy."""
        preds = preds.to(dtype=torch.float32)
        if not self.cuda:
            return preds.to("cpu").numpy().copy()
        if self._out is None or self._out.shape != preds.shape:
            self._out = torch.empty(preds.shape, dtype=torch.float32, pin_memory=True)
        self._out.copy_(preds, non_blocking=True)
        done = torch.cuda.current_stream(self.device).record_event()
        done.synchronize()
        return self._out.numpy().copy()  # the pinned buffer is refilled by the next batch

    def release(self) -> None:
        """Drop the batch source (it holds the call's contexts), the buffers and any staged batch."""
        self.make_batch = _released
        self._pinned, self._uploads, self._staged, self._out = [None, None], [None, None], None, None

    def _upload(self, batch: np.ndarray) -> tuple[torch.Tensor, Any]:
        if not self.cuda:
            return torch.from_numpy(np.ascontiguousarray(batch)).to(self.device), None
        slot, self._slot = self._slot, 1 - self._slot
        if self._uploads[slot] is not None:
            self._uploads[slot].synchronize()  # the upload that read this buffer is done
        pinned = self._pinned[slot]
        if pinned is None or tuple(pinned.shape) != batch.shape:
            pinned = self._pinned[slot] = torch.empty(batch.shape, dtype=torch.float32, pin_memory=True)
        pinned.numpy()[...] = batch
        with torch.cuda.stream(self.copy_stream):
            tensor = torch.empty(batch.shape, dtype=torch.float32, device=self.device)
            tensor.copy_(pinned, non_blocking=True)
            event = self.copy_stream.record_event()
        self._uploads[slot] = event
        return tensor, event


def _released(start: int, tasks_per_batch: int) -> np.ndarray:
    raise RuntimeError("this Stager was released at the end of its call")


@contextmanager
def released_after(stager: Stager | None) -> Iterator[None]:
    """Release ``stager`` (if any) when the block ends, also on an error."""
    try:
        yield
    finally:
        if stager is not None:
            stager.release()
