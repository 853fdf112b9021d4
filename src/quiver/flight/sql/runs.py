"""The statements this server is running, by the run id in their ticket: what CancelFlightInfo cancels.

Handles are stateless, so a FlightInfo is the only thing a client can name when it cancels: every
GetFlightInfo signs a fresh run id into its ticket. A cancel that arrives while the DoGet runs
cancels the PostgreSQL statement; one that arrives first makes the later DoGet refuse to start.
Finished and cancelled ids are remembered in bounded lists, so the registry cannot grow without end.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

# CancelStatus (Flight.proto) and CancelResult (FlightSql.proto) share these numbers.
CANCELLED = 1
NOT_CANCELLABLE = 3


class Cancelled(Exception):
    """The run was cancelled by CancelFlightInfo before or while it ran."""


class Runs:
    """Running statements by run id, with their cancel functions; ``remembered`` bounds the history."""

    def __init__(self, remembered: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, Callable[[], None]] = {}
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered

    def _remember(self, into: OrderedDict[str, None], run: str) -> None:
        into[run] = None
        into.move_to_end(run)
        while len(into) > self._remembered:
            into.popitem(last=False)

    def start(self, run: str, cancel: Callable[[], None]) -> None:
        """Registers a statement about to run; raises Cancelled when its FlightInfo was cancelled."""
        with self._lock:
            if run in self._cancelled:
                raise Cancelled("the query was cancelled (CancelFlightInfo) before it started")
            self._running[run] = cancel

    def finish(self, run: str) -> None:
        with self._lock:
            self._running.pop(run, None)
            self._remember(self._finished, run)

    def cancelled(self, run: str) -> bool:
        with self._lock:
            return run in self._cancelled

    def cancel(self, run: str) -> int:
        """Cancels ``run``: CANCELLED when it runs here or has not started (or was cancelled), else NOT_CANCELLABLE."""
        with self._lock:
            if run in self._cancelled:
                return CANCELLED
            if run in self._finished and run not in self._running:
                return NOT_CANCELLABLE
            self._remember(self._cancelled, run)
            cancel = self._running.get(run)
        if cancel is not None:
            cancel()
        return CANCELLED
