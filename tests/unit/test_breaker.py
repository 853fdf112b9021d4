"""The circuit breaker opens, waits, probes, and closes again."""

from __future__ import annotations

from quiver.events.breaker import CircuitBreaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state(breaker: CircuitBreaker) -> State:
    """The breaker's state now. ``state`` is a property that moves with the clock and with each call;
    read through a function so that the type checker does not carry an earlier ``assert`` over."""
    return breaker.state


def test_opens_after_threshold_then_half_opens_and_closes() -> None:
    clock = Clock()
    changes: list[State] = []
    breaker = CircuitBreaker(threshold=3, cooldown=1.0, max_cooldown=8.0, clock=clock, on_change=changes.append)
    breaker.failure()
    breaker.failure()
    assert state(breaker) is State.CLOSED and breaker.wait_time() == 0
    breaker.failure()
    assert state(breaker) is State.OPEN and breaker.wait_time() == 1.0
    clock.now = 0.5
    assert breaker.wait_time() == 0.5
    clock.now = 1.0
    assert state(breaker) is State.HALF_OPEN and breaker.wait_time() == 0
    breaker.failure()  # the probe failed: open again, for twice as long
    assert state(breaker) is State.OPEN and breaker.wait_time() == 2.0
    clock.now = 3.0
    assert state(breaker) is State.HALF_OPEN
    breaker.success()
    assert state(breaker) is State.CLOSED and breaker.cooldown == 1.0
    assert changes == [State.OPEN, State.HALF_OPEN, State.OPEN, State.HALF_OPEN, State.CLOSED]


def test_cooldown_is_capped() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=1.0, max_cooldown=4.0, clock=clock)
    breaker.failure()
    for _ in range(10):
        clock.now += breaker.wait_time()
        assert state(breaker) is State.HALF_OPEN
        breaker.failure()
    assert breaker.cooldown == 4.0
