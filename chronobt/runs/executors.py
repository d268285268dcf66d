"""Where chunks run: in this process (``local``) or on a pool of Ray actors (``ray``).

An executor maps a chunk function (:mod:`chronobt.runs.chunks`) over chunks and yields each outcome as it
finishes; the driver (:func:`chronobt.runs.sweep.run_sweep`, :func:`chronobt.runs.backtest.run_backtest`)
stores it. The driver prepares every chunk (it reads the data and cuts the windows) and writes every
result, so workers need no file access and no shared filesystem: chunks travel to the actors and outcomes
come back through Ray's object store. The cell cache, resume, ``--force`` and the leaderboard are
therefore the same as a local run's.

The Ray executor starts a local Ray instance (``address=None``), joins a running cluster (``auto``) or
connects to a remote one (``ray://host:port``). It starts one actor per GPU (``num_gpus=1``, and the
cluster's ``cpus // gpus`` CPUs for inversion and scoring) or, without GPUs, ``min(chunks, cpus)`` CPU
actors with ``cpus // actors`` torch threads each; every actor loads the
model once from the run's :class:`~chronobt.engine.core.EngineConfig`. When this module starts or joins Ray,
it ships the driver's own chronobt package with the job (``runtime_env`` ``py_modules``:
:func:`package_env`), so driver and workers run the same code; a caller that initialises Ray itself
passes :func:`package_env` or installs chronobt on the workers. Workers need chronobt's dependencies and
the model (hub cache, bundled, or a path they can read).

A chunk whose actor dies (killed, out of memory, node lost) is resubmitted, at most ``max_attempts``
times in all, to the next free live actor. The dead actor restarts (up to ``max_attempts`` times) and
rejoins the pool once it answers a readiness call (asked with a growing pause, for up to
:data:`RESTART_WAIT_S`): nothing is sent to it before, so a restart burns no attempt. Finished outcomes
are never recomputed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from time import monotonic, sleep
from typing import Any, Protocol

from chronobt.config import ray_host_port
from chronobt.engine.core import Chronos2Engine, EngineConfig
from chronobt.errors import ChronobtError, ConfigError, ExecutorError, first_line
from chronobt.pipeline.jobs import Progress

logger = logging.getLogger(__name__)

RAY_EXTRA_HINT = "pip install 'chronobt[ray]'"
#: Seconds to wait for a cluster's port to answer before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5.0
#: Seconds a dead actor has to answer a readiness call (its engine loads first) before it is given up.
RESTART_WAIT_S = 120.0
#: Pause before the second readiness call to a restarting actor, doubled after each refusal up to 5 s.
PROBE_PAUSE_S = 0.5

#: fn(chunk, engine, on_batch) -> outcome: a module-level function of :mod:`chronobt.runs.chunks`.
ChunkFn = Callable[[Any, Chronos2Engine, Callable[[int, int], None] | None], Any]
#: on_dispatch(actor, chunk index, attempt): called after each chunk is sent to an actor.
OnDispatch = Callable[[Any, int, int], None]
#: What ``map`` yields: ``(chunk index, outcome, error)``, ``error`` ``None`` or why the chunk was lost.
Outcomes = Iterator[tuple[int, Any, str | None]]


class Executor(Protocol):
    """Runs chunks and yields ``(index, outcome, error)``: ``error`` is ``None`` or why it was lost.

    ``in_process``: whether chunks run in this process on the driver's engine (the driver then sends
    all its work as one chunk, and runs what cannot be shipped, fine-tuned models, on it as well). An
    executor without the attribute runs elsewhere (:func:`runs_in_process`).
    """

    in_process: bool

    def map(
        self, fn: ChunkFn, chunks: Sequence[Any], *, weights: Sequence[int], progress: Progress | None = None
    ) -> Outcomes: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs chunks one after another in this process, on ``engine``."""

    in_process = True

    def __init__(self, engine: Chronos2Engine) -> None:
        self.engine = engine

    def map(
        self, fn: ChunkFn, chunks: Sequence[Any], *, weights: Sequence[int], progress: Progress | None = None
    ) -> Outcomes:
        total, done = sum(weights), 0
        for i, chunk in enumerate(chunks):

            def on_batch(d: int, t: int, offset: int = done, w: int = weights[i]) -> None:
                if progress:
                    progress("forecast", offset + round(w * d / max(t, 1)), total)

            outcome = fn(chunk, self.engine, on_batch)
            done += weights[i]
            yield i, outcome, None

    def close(self) -> None:
        """Nothing to release: the engine belongs to the caller."""


def import_ray() -> Any:
    """The ``ray`` module, or ConfigError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed; {RAY_EXTRA_HINT}") from None
    return ray


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Start a local Ray instance (``address=None``) or join ``address``; True if this call started Ray.

    Already connected: nothing is done (False). An address whose port does not answer, or a cluster that
    cannot be joined, is an :class:`ExecutorError` naming the address and the fix.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    # Ray's own notices would break the progress bar; the workers' logs stay in Ray's log folder
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False, "runtime_env": package_env()}
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
        return True
    where = ray_host_port(address) if address != "auto" else None
    if where is not None:
        try:
            socket.create_connection(where, timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise ExecutorError(_unreachable(address, exc)) from None
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        raise ExecutorError(_unreachable(address, exc)) from None
    return True


def package_env() -> dict[str, Any]:
    """A Ray ``runtime_env`` that ships this chronobt package to the workers (the driver's own code)."""
    return {"py_modules": [str(Path(__file__).resolve().parents[1])]}


def _unreachable(address: str, exc: BaseException) -> str:
    return (
        f"Ray cluster {address} cannot be reached ({first_line(exc)}); start it with `ray start --head`, "
        "check the address and port (ray://HOST:10001 for Ray Client), or drop --ray-address to start "
        "a local one"
    )


class _Worker:
    """A Ray actor's body: one engine, loaded once; runs chunk functions on it."""

    def __init__(self, engine_config: EngineConfig, threads: int | None) -> None:
        self.error: ChronobtError | None = None
        if threads:
            import torch

            torch.set_num_threads(threads)
        try:
            self.engine: Chronos2Engine | None = Chronos2Engine(engine_config)
        except ChronobtError as exc:  # re-raised by run() so the driver reports it in one line
            self.engine, self.error = None, exc

    def ready(self) -> bool:
        """Answers once the actor is alive (after a restart: once its engine is loaded)."""
        return True

    def run(self, fn: ChunkFn, chunk: Any) -> Any:
        if self.engine is None:
            raise self.error or ExecutorError("internal: the worker has no engine")
        return fn(chunk, self.engine, None)


class RayExecutor:
    """Runs chunks on a pool of Ray actors, each owning one engine; see the module docstring.

    Parameters
    ----------
    engine_config : what every actor loads.
    address : ``None`` (start a local Ray instance), ``auto`` or ``ray://host:port``.
    actors : actors to start (default: one per GPU, else ``min(chunks, cpus)``).
    expected_model : the driver's :func:`~chronobt.runs.cells.model_identity`; an outcome computed by another
        model identity (e.g. another dtype) is an error, since its cells would be stored under wrong keys.
    max_attempts : tries per chunk (and restarts per actor) before the chunk is given up as lost.
    on_dispatch : ``on_dispatch(actor, index, attempt)`` after each dispatch (monitoring, fault tests).
    num_cpus : CPUs of a local Ray instance this executor starts (default: all).
    """

    in_process = False

    def __init__(
        self,
        engine_config: EngineConfig,
        *,
        address: str | None = None,
        actors: int | None = None,
        expected_model: dict[str, Any] | None = None,
        max_attempts: int = 3,
        on_dispatch: OnDispatch | None = None,
        num_cpus: int | None = None,
    ) -> None:
        if actors is not None and actors < 1:
            raise ConfigError(f"actors must be >= 1, got {actors}")
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        self.engine_config, self.address, self.actors = engine_config, address, actors
        self.expected_model, self.max_attempts, self.on_dispatch = expected_model, max_attempts, on_dispatch
        self.num_cpus = num_cpus
        self.engine_record: dict[str, Any] = {}
        self.retries = 0
        self._ray: Any = None
        self._started = False
        self._pool: list[Any] = []
        self._deaths: dict[Any, int] = {}  # actor -> times it died under a chunk
        self._down: dict[Any, float] = {}  # actor -> since when (it has not answered a readiness call)
        self._gone: set[Any] = set()  # dead for good, or not back within RESTART_WAIT_S

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self, n_chunks: int) -> None:
        self._ray = import_ray()
        self._started = connect(self.address, num_cpus=self.num_cpus) or self._started
        ray = self._ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if self.engine_config.device != "cpu" else 0
        cpus = max(1, int(resources.get("CPU", 1)))
        if gpus:
            n = self.actors or min(n_chunks, gpus)
            # the CPUs beside each GPU invert and score its forecasts (sample paths use every thread)
            threads = max(1, cpus // gpus)
            options: dict[str, Any] = {"num_gpus": 1, "num_cpus": threads}
        else:
            n = self.actors or min(n_chunks, cpus)
            threads = max(1, cpus // n)
            options = {"num_cpus": min(threads, cpus)}
        actor_class = ray.remote(_Worker).options(
            **options,
            max_restarts=self.max_attempts,
            max_task_retries=0,  # resubmitted by map(), which counts the attempts
        )
        self._pool = [actor_class.remote(self.engine_config, threads) for _ in range(n)]
        logger.info("ray: %d actor(s), %s%d CPU thread(s) each", n, "1 GPU and " if gpus else "", threads)

    def map(
        self, fn: ChunkFn, chunks: Sequence[Any], *, weights: Sequence[int], progress: Progress | None = None
    ) -> Outcomes:
        if not chunks:
            return
        if not self._pool:
            self._start(len(chunks))
        run = _Round(self, fn, chunks)
        total, done = sum(weights), 0
        run.dispatch()
        while run.busy():
            got = run.step()
            run.dispatch()  # a free actor takes the next chunk while the driver stores this one
            if got is not None:
                done += weights[got[0]]
                if progress and got[2] is None:
                    progress("forecast", done, total)
                yield got

    def _check_model(self, outcome: Any) -> None:
        self.engine_record = getattr(outcome, "engine_record", {}) or self.engine_record
        model = getattr(outcome, "model", None)
        if self.expected_model is not None and model and model != self.expected_model:
            raise ExecutorError(
                f"Ray workers run model {model} but the driver {self.expected_model}; their cells would be "
                "stored under the driver's keys: give the driver and workers the same --model and --dtype"
            )

    def close(self) -> None:
        """Kill the actors; shut Ray down if this executor started it."""
        if self._ray is None:
            return
        for actor in self._pool:
            with contextlib.suppress(Exception):
                self._ray.kill(actor, no_restart=True)
        self._pool, self._deaths, self._down, self._gone = [], {}, {}, set()
        if self._started:
            self._ray.shutdown()
            self._started = False


class _Round:
    """One :meth:`RayExecutor.map`'s chunks and actors. An actor is free (``idle``), runs a chunk
    (``inflight``), or is down: waiting for its next readiness call (``due``) or its answer (``probes``).
    Chunks go to free actors only, each known alive: new, or it has just finished a chunk or answered."""

    def __init__(self, executor: RayExecutor, fn: ChunkFn, chunks: Sequence[Any]) -> None:
        self.ex, self.ray, self.fn, self.chunks = executor, executor._ray, fn, chunks
        self.queue: deque[int] = deque(range(len(chunks)))
        self.attempts = [0] * len(chunks)
        self.refs = [self.ray.put(chunk) for chunk in chunks]
        self.inflight: dict[Any, tuple[int, Any]] = {}  # chunk's result -> (chunk index, actor)
        self.probes: dict[Any, tuple[Any, int]] = {}  # readiness call -> (actor, refusals so far)
        self.due: dict[Any, tuple[float, int]] = {}  # actor -> (next readiness call at, refusals so far)
        self.idle = deque(a for a in executor._pool if a not in executor._down.keys() | executor._gone)
        self.due.update((actor, (monotonic(), 0)) for actor in executor._down)

    def busy(self) -> bool:
        """Whether a chunk runs, or chunks wait and an actor may still come back for them."""
        return bool(self.inflight or (self.queue and (self.probes or self.due)))

    def step(self) -> tuple[int, Any, str | None] | None:
        """Wait for the next answer (or for a pause or bound to end): a chunk's ``(i, outcome, error)``."""
        ends = [at for at, _ in self.due.values()] + [self._end(actor) for actor, _ in self.probes.values()]
        timeout = max(0.0, min(ends) - monotonic() + 1e-3) if ends else None  # Ray rounds down to ms
        if not self.inflight and not self.probes:  # only actors between readiness calls: ``ends`` is set
            sleep(timeout or 0.0)
            return None
        ready, _ = self.ray.wait([*self.inflight, *self.probes], num_returns=1, timeout=timeout)
        if ready and ready[0] in self.probes:
            self.probed(ready[0])
            return None
        return self.finish(ready[0]) if ready else None

    def dispatch(self) -> None:
        """Ask the due actors whether they are back, give up the overdue ones, send chunks to free ones."""
        now = monotonic()
        for ref, (actor, _) in list(self.probes.items()):
            if now >= self._end(actor):  # the call hangs past the bound
                del self.probes[ref]
                self._give_up(actor)
        for actor, (at, refusals) in list(self.due.items()):
            if at <= now:
                del self.due[actor]
                self.probes[actor.ready.remote()] = (actor, refusals)
        while self.queue and self.idle:
            i, actor = self.queue.popleft(), self.idle.popleft()
            self.attempts[i] += 1
            self.inflight[actor.run.remote(self.fn, self.refs[i])] = (i, actor)
            if self.ex.on_dispatch is not None:
                self.ex.on_dispatch(actor, i, self.attempts[i])
        if self.queue and not self.busy():
            raise ExecutorError(
                f"every Ray worker died ({len(self.queue)} chunk(s) left, none back within "
                f"{RESTART_WAIT_S:g} s); check the workers' logs (memory, GPU) or run with --executor local"
            )

    def finish(self, ref: Any) -> tuple[int, Any, str | None] | None:
        """A chunk's answer: its outcome, lost (``max_attempts`` spent), or ``None`` (queued again)."""
        i, actor = self.inflight.pop(ref)
        errors, label = self.ray.exceptions, getattr(self.chunks[i], "label", f"chunk {i}")
        try:
            outcome = self.ray.get(ref)
        except errors.RayActorError as exc:  # it was alive when the chunk was sent: the attempt counts
            self.ex._deaths[actor] = self.ex._deaths.get(actor, 0) + 1
            if self.ex._deaths[actor] > self.ex.max_attempts:  # Ray restarts it max_attempts times
                self._give_up(actor)
            else:  # down until it answers a readiness call, asked at once
                self.ex._down.setdefault(actor, monotonic())
                self.due[actor] = (monotonic(), 0)
            if self.attempts[i] >= self.ex.max_attempts:
                return (
                    i,
                    None,
                    f"lost after {self.attempts[i]} attempts: the Ray worker died ({first_line(exc)})",
                )
            self.ex.retries += 1
            logger.warning(
                "ray: a worker died on %s (attempt %d of %d); retrying on the next live worker",
                *(label, self.attempts[i], self.ex.max_attempts),
            )
            self.queue.appendleft(i)
            return None
        except errors.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ChronobtError):
                raise cause from None
            raise ExecutorError(f"a Ray worker failed on {label}: {first_line(exc)}") from None
        self.ex._check_model(outcome)
        self.idle.append(actor)
        return i, outcome, None

    def probed(self, ref: Any) -> None:
        """A readiness call answered: the actor is free again, still restarting, or dead for good."""
        actor, refusals = self.probes.pop(ref)
        try:
            self.ray.get(ref)
        except getattr(self.ray.exceptions, "ActorDiedError", ()):  # dead and not restarting
            return self._give_up(actor)
        except self.ray.exceptions.RayError:  # restarting: ask again after a pause, until the bound
            if monotonic() >= self._end(actor):
                return self._give_up(actor)
            pause = min(PROBE_PAUSE_S * 2**refusals, 10 * PROBE_PAUSE_S)
            self.due[actor] = (min(monotonic() + pause, self._end(actor)), refusals + 1)
            return None
        del self.ex._down[actor]
        self.idle.append(actor)

    def _end(self, actor: Any) -> float:
        return self.ex._down[actor] + RESTART_WAIT_S

    def _give_up(self, actor: Any) -> None:
        self.ex._down.pop(actor, None)
        self.ex._gone.add(actor)
        logger.warning("ray: a worker died and did not come back; going on without it")
        with contextlib.suppress(Exception):
            self.ray.kill(actor, no_restart=True)


def open_executor(
    kind: str,
    *,
    engine: Chronos2Engine,
    ray_address: str | None = None,
    expected_model: dict[str, Any] | None = None,
) -> Executor:
    """The executor a config asks for: ``local`` runs on ``engine``, ``ray`` on actors like it (``kind`` and
    ``ray_address`` as :class:`~chronobt.config.EvaluationOptions` checked them)."""
    if kind == "local":
        return LocalExecutor(engine)
    import_ray()
    return RayExecutor(engine.config, address=ray_address, expected_model=expected_model)


def runs_in_process(executor: Executor) -> bool:
    """Whether ``executor`` runs its chunks in this process (``False`` when it does not say)."""
    return bool(getattr(executor, "in_process", False))


@contextlib.contextmanager
def executor_for(
    given: Executor | None,
    kind: str,
    *,
    engine: Chronos2Engine,
    ray_address: str | None = None,
    expected_model: dict[str, Any] | None = None,
) -> Iterator[Executor]:
    """``given`` as is (its owner closes it), else the executor ``kind`` names (:func:`open_executor`),
    closed afterwards."""
    if given is not None:
        yield given
        return
    ex = open_executor(kind, engine=engine, ray_address=ray_address, expected_model=expected_model)
    try:
        yield ex
    finally:
        ex.close()
