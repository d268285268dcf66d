"""The Ray executor's retries, on a fake ``ray`` module and a fake clock: no timing, no Ray needed.

A fake actor runs a chunk in ``run_s`` fake seconds, may die under given chunks, and after a death refuses
``refusals`` readiness calls ("the actor is restarting") before it is back; a chunk sent to it while it is
down is refused the same way, which a correct executor never lets happen.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from chronobt.engine.config import EngineConfig
from chronobt.errors import ExecutorError
from chronobt.runs import executors
from chronobt.runs.executors import RESTART_WAIT_S, RayExecutor


class RayError(Exception):
    pass


class RayActorError(RayError):
    pass


class ActorDiedError(RayActorError):
    pass


class ActorUnavailableError(RayActorError):
    pass


class RayTaskError(RayError):
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


class Ref:
    """A result that is ready at fake time ``at``: ``value``, or ``error`` raised by ``get``."""

    def __init__(self, at: float, value: Any = None, error: BaseException | None = None) -> None:
        self.at, self.value, self.error = at, value, error


class FakeRay:
    exceptions = SimpleNamespace(
        RayError=RayError,
        RayActorError=RayActorError,
        ActorDiedError=ActorDiedError,
        ActorUnavailableError=ActorUnavailableError,
        RayTaskError=RayTaskError,
    )

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waits = 0
        self.killed: list[FakeActor] = []

    def put(self, value: Any) -> Any:
        return value

    def wait(self, refs: list[Ref], *, num_returns: int, timeout: float | None = None) -> tuple[list, list]:
        assert refs and num_returns == 1
        self.waits += 1
        first = min(refs, key=lambda r: r.at)
        if timeout is not None and first.at > self.clock.now + timeout:
            self.clock.now += timeout
            return [], refs
        self.clock.now = max(self.clock.now, first.at)
        return [first], [r for r in refs if r is not first]

    def get(self, ref: Ref) -> Any:
        if ref.error is not None:
            raise ref.error
        return ref.value

    def kill(self, actor: FakeActor, *, no_restart: bool) -> None:
        self.killed.append(actor)


class FakeActor:
    def __init__(
        self,
        ray: FakeRay,
        name: str,
        *,
        run_s: float = 1.0,
        dies_under: tuple[int, ...] = (),
        refusals: float = 0,
        dead_for_good: bool = False,
    ) -> None:
        self.ray, self.name, self.run_s = ray, name, run_s
        self.dies_under, self.refusals, self.dead_for_good = set(dies_under), refusals, dead_for_good
        self.down = False
        self.refusals_left = 0.0
        self.ran: list[int] = []  # chunks it finished
        self.refused: list[int] = []  # chunks sent to it while it was down
        self.probes = 0
        self.run = SimpleNamespace(remote=self._run)
        self.ready = SimpleNamespace(remote=self._ready)

    def __repr__(self) -> str:
        return self.name

    @property
    def now(self) -> float:
        return self.ray.clock.now

    def _unavailable(self) -> Ref:
        if self.dead_for_good:
            return Ref(self.now, error=ActorDiedError("The actor died unexpectedly"))
        return Ref(self.now + 0.1, error=ActorUnavailableError("IOError: The actor is restarting."))

    def _run(self, fn: Any, chunk: int) -> Ref:
        if self.down:
            self.refused.append(chunk)
            return self._unavailable()
        if chunk in self.dies_under:
            self.dies_under.discard(chunk)
            self.down, self.refusals_left = True, self.refusals
            return Ref(self.now + self.run_s / 2, error=ActorUnavailableError("The actor was restarted."))
        self.ran.append(chunk)
        return Ref(self.now + self.run_s, value=fn(chunk, None, None))

    def _ready(self) -> Ref:
        self.probes += 1
        if self.down and (self.dead_for_good or self.refusals_left > 0):
            self.refusals_left -= 1
            return self._unavailable()
        self.down = False
        return Ref(self.now + 0.1, value=True)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(executors, "monotonic", fake.monotonic)
    monkeypatch.setattr(executors, "sleep", fake.sleep)
    return fake


@pytest.fixture
def ray(clock: Clock) -> FakeRay:
    return FakeRay(clock)


def _executor(ray: FakeRay, actors: list[FakeActor], **kw: Any) -> tuple[RayExecutor, list[tuple]]:
    sent: list[tuple] = []  # (actor, chunk, attempt) per dispatch
    ex = RayExecutor(EngineConfig(model="fake", device="cpu"), on_dispatch=lambda *a: sent.append(a), **kw)
    ex._ray, ex._pool = ray, list(actors)
    return ex, sent


def _square(chunk: int, engine: Any, on_batch: Any) -> int:
    return chunk * chunk


def _map(ex: RayExecutor, chunks: list[int]) -> dict[int, tuple[Any, str | None]]:
    return {i: (out, err) for i, out, err in ex.map(_square, chunks, weights=[1] * len(chunks))}


def test_a_chunk_whose_actor_died_waits_for_it_to_restart_when_the_other_actor_is_busy(
    ray: FakeRay, clock: Clock
) -> None:
    # A finishes chunk 0, takes chunk 2 and dies under it; B is busy with chunk 1 for a long time
    a = FakeActor(ray, "A", dies_under=(2,), refusals=6)
    b = FakeActor(ray, "B", run_s=500.0)
    ex, sent = _executor(ray, [a, b])
    assert _map(ex, [0, 1, 2]) == {0: (0, None), 1: (1, None), 2: (4, None)}
    assert a.refused == [] and b.refused == []  # nothing was sent to A while it restarted
    assert [(actor, attempt) for actor, i, attempt in sent if i == 2] == [(a, 1), (a, 2)]
    assert a.ran == [0, 2] and a.probes == 7  # six refusals, then back
    assert ex.retries == 1 and not ray.killed


def test_a_chunk_whose_actor_died_goes_to_the_next_live_actor_without_waiting_for_the_restart(
    ray: FakeRay, clock: Clock
) -> None:
    a = FakeActor(ray, "A", dies_under=(2,), refusals=math.inf)  # never back
    b = FakeActor(ray, "B", run_s=3.0)
    ex, sent = _executor(ray, [a, b])
    assert _map(ex, [0, 1, 2]) == {0: (0, None), 1: (1, None), 2: (4, None)}
    assert [(actor, attempt) for actor, i, attempt in sent if i == 2] == [(a, 1), (b, 2)]
    assert a.refused == [] and b.ran == [1, 2]
    assert clock.now < 10  # B took it as soon as it was free

    # the next map still holds A back until it answers; its bound runs from its death
    assert _map(ex, [3]) == {0: (9, None)}
    assert a.refused == [] and b.ran == [1, 2, 3]


def test_when_no_actor_comes_back_within_the_bound_the_error_says_every_worker_died(
    ray: FakeRay, clock: Clock
) -> None:
    a = FakeActor(ray, "A", dies_under=(1,), refusals=math.inf)
    ex, sent = _executor(ray, [a])
    outcomes = ex.map(_square, [0, 1], weights=[1, 1])
    assert next(outcomes) == (0, 0, None)
    with pytest.raises(ExecutorError, match=r"every Ray worker died \(1 chunk\(s\) left"):
        next(outcomes)
    assert RESTART_WAIT_S <= clock.now < RESTART_WAIT_S + 5  # waited the whole bound, no longer
    assert [(i, attempt) for _, i, attempt in sent] == [(0, 1), (1, 1)]  # the wait burnt no attempt
    assert a.refused == [] and ray.killed == [a]
    assert a.probes <= RESTART_WAIT_S / 4 and ray.waits <= 2 * a.probes + 5  # paused between calls


def test_an_actor_dead_for_good_is_given_up_at_once(ray: FakeRay, clock: Clock) -> None:
    a = FakeActor(ray, "A", dies_under=(1,), dead_for_good=True)
    ex, _ = _executor(ray, [a])
    outcomes = ex.map(_square, [0, 1], weights=[1, 1])
    assert next(outcomes) == (0, 0, None)
    with pytest.raises(ExecutorError, match="every Ray worker died"):
        next(outcomes)
    assert a.probes == 1 and clock.now < 5


def test_a_chunk_whose_actors_die_under_it_max_attempts_times_is_lost(ray: FakeRay, clock: Clock) -> None:
    a = FakeActor(ray, "A", dies_under=(0,), refusals=2)
    b = FakeActor(ray, "B", dies_under=(0,), refusals=2, run_s=2.0)
    ex, sent = _executor(ray, [a, b], max_attempts=2)
    result = _map(ex, [0, 1])
    assert result[1] == (1, None)
    assert result[0][0] is None and result[0][1].startswith("lost after 2 attempts: the Ray worker died")
    assert [(actor, attempt) for actor, i, attempt in sent if i == 0] == [(a, 1), (b, 2)]
    assert ex.retries == 1 and a.refused == [] and b.refused == []
