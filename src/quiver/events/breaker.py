"""A circuit breaker per sink: stop hammering a sink that keeps failing, probe it now and then.

Closed: writes go through. After ``threshold`` consecutive failures it opens: no write is
attempted for ``cooldown`` seconds (doubling, up to ``max_cooldown``, while probes keep
failing). Then it is half-open: one write probes the sink; success closes the breaker,
failure opens it again. Events wait in JetStream meanwhile; nothing is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class State(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(self, threshold: int = 5, cooldown: float = 1.0, max_cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[State], None] | None = None) -> None:
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.clock = clock
        self.on_change = on_change
        self.failures = 0
        self.cooldown = cooldown
        self.opened_at = 0.0
        self._state = State.CLOSED

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self.clock() - self.opened_at >= self.cooldown:
            self._set(State.HALF_OPEN)
        return self._state

    def wait_time(self) -> float:
        """Seconds until a write may be attempted (0 when closed or half-open)."""
        if self.state is State.OPEN:
            return max(0.0, self.cooldown - (self.clock() - self.opened_at))
        return 0.0

    def success(self) -> None:
        self.failures = 0
        self.cooldown = self.base_cooldown
        self._set(State.CLOSED)

    def failure(self) -> None:
        self.failures += 1
        if self._state is State.HALF_OPEN:
            self.cooldown = min(self.max_cooldown, self.cooldown * 2)
            self._open()
        elif self.failures >= self.threshold:
            self._open()

    def _open(self) -> None:
        self.opened_at = self.clock()
        self._set(State.OPEN)

    def _set(self, state: State) -> None:
        if state is not self._state:
            self._state = state
            if self.on_change is not None:
                self.on_change(state)
