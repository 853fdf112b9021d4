"""A failed chDB call → ``RetryableError`` or ``PermanentError``.

chDB raises ``RuntimeError`` (or ``OSError``) with ClickHouse's message. A write whose data the
engine cannot take (cannot parse, type mismatch, a ``CANNOT_...`` error) is permanent; anything
else (out of memory, a missing table) is retried, and so is a data path that cannot be opened
(``Unavailable``: held by another process, or another path open in this one), whatever chDB says.
"""

from __future__ import annotations

from quiver.events.sinks.base import PermanentError, RetryableError, SinkError

PERMANENT_MARKERS = ("Cannot parse", "Type mismatch", "CANNOT_")
ERRORS = (RuntimeError, OSError)  # what chDB raises


class Unavailable(RuntimeError):
    """The data path cannot be opened in this process: never the events' fault."""


def classify(error: Exception, *, writing: bool = True) -> SinkError:
    """A chDB failure → Permanent when a write's data is at fault, else Retryable (setup and reads always)."""
    message = str(error)
    if writing and not isinstance(error, Unavailable) and any(marker in message for marker in PERMANENT_MARKERS):
        return PermanentError(message)
    return RetryableError(message)
