"""The search sink's classification of each bulk item (or response): stored, Retryable or Permanent."""

from __future__ import annotations

from typing import Any

import pytest

from quiver.events.sinks.base import PermanentError, RetryableError
from quiver.events.sinks.search.errors import PendingEvents, RejectedEvents, classify

CONFLICT = {"type": "version_conflict_engine_exception", "reason": "[e1]: version conflict"}
MAPPING = {"type": "mapper_parsing_exception", "reason": "failed to parse field [entity_id]",
           "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"key-1\""}}


@pytest.mark.parametrize(("status", "error", "kind"), [
    (201, None, None),
    (200, None, None),
    (409, CONFLICT, None),  # already stored (or a newer version is)
    (409, {"type": "other_conflict"}, RetryableError),
    (429, {"type": "es_rejected_execution_exception"}, RetryableError),
    (503, {"type": "unavailable_shards_exception"}, RetryableError),
    (404, {"type": "index_not_found_exception"}, RetryableError),
    (400, MAPPING, PermanentError),
    (413, "too large", PermanentError),
])
def test_classification(status: int, error: Any, kind: type[Exception] | None) -> None:
    failure = classify(status, error)
    assert (type(failure) if failure is not None else None) is kind
    if failure is not None:
        assert str(failure).startswith(str(status))


def test_the_reason_names_the_cause() -> None:
    assert str(classify(400, MAPPING)) == ("400 mapper_parsing_exception: failed to parse field [entity_id]"
                                           " (caused by illegal_argument_exception: For input string: \"key-1\")")


def test_partial_failures_say_which_events() -> None:
    rejected = RejectedEvents({"e1": "400 bad", "e2": "400 worse"})
    assert isinstance(rejected, PermanentError) and rejected.rejected == {"e1": "400 bad", "e2": "400 worse"}
    pending = PendingEvents({"e3": "503 later"}, {"e1": "400 bad"})
    assert isinstance(pending, RetryableError) and pending.pending == {"e3": "503 later"}
    assert pending.rejected == {"e1": "400 bad"}
