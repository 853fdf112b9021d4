"""The ClickHouse sink's classification of failed responses (no server): Retryable or Permanent."""

from __future__ import annotations

import pytest

from quiver.events.sinks.base import PermanentError, RetryableError
from quiver.events.sinks.clickhouse.errors import classify


@pytest.mark.parametrize(("status", "body", "header", "kind"), [
    (500, b"Code: 27, e.displayText() = DB::Exception: Cannot parse input", None, PermanentError),
    (400, b"Code: 62, e.displayText() = DB::Exception: Syntax error", None, PermanentError),
    (500, b"Code: 53. DB::Exception: Type mismatch. (TYPE_MISMATCH)", None, PermanentError),
    (500, b"Code: 16, e.displayText() = DB::Exception: No such column tenant_id in table events", None, PermanentError),
    (500, b"Code: 131, e.displayText() = DB::Exception: Too large string size", None, PermanentError),
    (500, b"Code: 241, e.displayText() = DB::Exception: Memory limit (total) exceeded", None, RetryableError),
    (500, b"Code: 252, e.displayText() = DB::Exception: Too many parts (300)", None, RetryableError),
    (500, b"Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100)", None,
     PermanentError),
    (404, b"Code: 60, e.displayText() = DB::Exception: Table quiver.events doesn't exist", None, RetryableError),
    (401, b"Code: 516. DB::Exception: default: Authentication failed", None, RetryableError),
    (503, b"Service Unavailable", None, RetryableError),
    (502, b"<html>Bad Gateway</html>", None, RetryableError),
    (400, b"<html>Bad Request</html>", None, PermanentError),
    (413, b"<html>Request Entity Too Large</html>", None, PermanentError),
    (500, b"something Code: 241 (in the text)", "27", PermanentError),  # the header wins
])
def test_error_classification(status: int, body: bytes, header: str | None, kind: type[Exception]) -> None:
    error = classify(status, body, header)
    assert type(error) is kind
    assert str(status) in str(error)
