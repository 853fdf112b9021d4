"""A search server's answer → stored, ``RetryableError`` or ``PermanentError`` (``classify``).

Per item of a bulk response (items are read one by one, never the batch as a whole):

- 2xx, and 409 version conflicts: written (a replay of a stored event, or an older version);
- 429, 5xx, 401/403/404/407/408/425 and other 409s (overload, unavailable shards, blocks, a
  missing index): retryable; the sink sends only those items again, and reports the ones still
  failing as ``PendingEvents``;
- 400 and other 4xx (mapping/parse errors): permanent; reported by event id as ``RejectedEvents``
  once everything else in the batch is stored.

Whole requests: connection errors, timeouts, 5xx and other non-4xx statuses and the statuses
above are retryable. Any other 4xx (413 too large, 400 malformed) refuses the request as a whole:
the sink halves it down to single events, which are then rejected while the rest is stored.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from quiver.events.sinks.base import PermanentError, RetryableError, SinkError

RETRY_STATUSES = frozenset({401, 403, 404, 407, 408, 409, 425, 429})  # statuses that do not blame the events


class RejectedEvents(PermanentError):
    """The server refused some events for good; the other events of the batch are stored.

    ``rejected`` maps each refused event id to the reason: the consumer can dead-letter exactly
    those and acknowledge the rest, instead of bisecting.
    """

    def __init__(self, rejected: dict[str, str]) -> None:
        sample = "; ".join(f"{event_id}: {reason}" for event_id, reason in list(rejected.items())[:3])
        super().__init__(f"{len(rejected)} event(s) rejected by the search sink: {sample}", rejected)


class PendingEvents(RetryableError):
    """Some events were not stored after the retries (overload, unavailable shards); the others are.

    ``pending`` maps each event id still to be written to the last reason; ``rejected`` holds
    events that are also refused for good (reported once the pending ones are through).
    """

    def __init__(self, pending: dict[str, str], rejected: dict[str, str]) -> None:
        self.pending = dict(pending)
        self.rejected = dict(rejected)
        sample = "; ".join(f"{event_id}: {reason}" for event_id, reason in list(self.pending.items())[:3])
        super().__init__(f"{len(self.pending)} event(s) not yet stored by the search sink: {sample}")


def retryable_status(status: int) -> bool:
    return status >= 500 or status in RETRY_STATUSES or not 400 <= status < 500


def reason(status: int, error: Any) -> str:
    """A bulk item's (or a response's) error as one line: status, type, reason and cause."""
    if isinstance(error, dict):
        text = f"{status} {error.get('type', '?')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type', '?')}: {cause.get('reason', '')})"
        return text
    return f"{status} {error}"


def classify(status: int, error: Any = None) -> SinkError | None:
    """A bulk item's status and error (or a whole response's) → None when stored, else the failure."""
    if status < 300:
        return None
    kind = error.get("type") if isinstance(error, dict) else None
    if status == 409 and kind == "version_conflict_engine_exception":
        return None  # this event (or a newer version of its document) is already stored
    text = reason(status, error)
    return RetryableError(text) if retryable_status(status) else PermanentError(text)


def error_type(response: httpx.Response) -> str | None:
    """The ``error.type`` of a JSON error response, if any."""
    try:
        detail = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return detail.get("type") if isinstance(detail, dict) else None
