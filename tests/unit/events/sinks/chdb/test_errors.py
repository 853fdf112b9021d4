"""chDB's classification of failures: the events' fault only when a write's data is refused."""

from __future__ import annotations

import pytest

from quiver.events.sinks.base import PermanentError, RetryableError
from quiver.events.sinks.chdb.errors import Unavailable, classify

PARSE = "Code: 376. DB::Exception: Cannot parse uuid not-a-uuid: Cannot parse UUID from String. (CANNOT_PARSE_UUID)"


@pytest.mark.parametrize(("error", "writing", "kind"), [
    (RuntimeError(PARSE), True, PermanentError),
    (RuntimeError("Code: 53. DB::Exception: Type mismatch in IN or VALUES section. (TYPE_MISMATCH)"), True,
     PermanentError),
    (RuntimeError("Code: 81. DB::Exception: Database quiver does not exist. (UNKNOWN_DATABASE)"), True,
     RetryableError),
    (RuntimeError(PARSE), False, RetryableError),  # setup and reads: never the events' fault
    (Unavailable("cannot open chDB at /x: Cannot lock file /x/status. (CANNOT_OPEN_FILE)"), True, RetryableError),
    (OSError("No space left on device"), True, RetryableError),
])
def test_classification(error: Exception, writing: bool, kind: type[Exception]) -> None:
    failure = classify(error, writing=writing)
    assert type(failure) is kind and str(error) in str(failure)
