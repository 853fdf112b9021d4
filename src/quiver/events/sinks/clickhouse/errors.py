"""A failed ClickHouse request → ``RetryableError`` or ``PermanentError``.

Connection errors, timeouts and server trouble (5xx, overload, memory, too many parts, missing
table, authentication) are ``RetryableError``: the events are not at fault, so they wait. Errors
the server would repeat forever for these bytes (cannot parse, type mismatch, too large, schema
mismatch, syntax) are ``PermanentError``, as is a batch that cannot be encoded; the consumer then
bisects down to the bad events. The error code comes from ``X-ClickHouse-Exception-Code`` (newer
servers) or the ``Code: N`` in the body (18.16 sends no such header). An unknown code is retried:
a stuck pipeline is visible and loses nothing, a wrong dead-letter loses data.
"""

from __future__ import annotations

import re

from quiver.events.sinks.base import PermanentError, RetryableError, SinkError

# ClickHouse error codes that mean "this data / this statement will never be accepted as is".
PERMANENT_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    8,    # THERE_IS_NO_COLUMN
    10,   # NOT_FOUND_COLUMN_IN_BLOCK
    16,   # NO_SUCH_COLUMN_IN_TABLE
    20,   # NUMBER_OF_COLUMNS_DOESNT_MATCH
    26,   # CANNOT_PARSE_QUOTED_STRING
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,   # ATTEMPT_TO_READ_AFTER_EOF (a malformed body; a cut connection is a transport error)
    33,   # CANNOT_READ_ALL_DATA
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    43,   # ILLEGAL_TYPE_OF_ARGUMENT
    44,   # ILLEGAL_COLUMN
    47,   # UNKNOWN_IDENTIFIER
    50,   # UNKNOWN_TYPE
    53,   # TYPE_MISMATCH
    62,   # SYNTAX_ERROR
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    73,   # UNKNOWN_FORMAT
    117,  # INCORRECT_DATA
    128,  # TOO_LARGE_ARRAY_SIZE
    131,  # TOO_LARGE_STRING_SIZE
    368,  # BAD_CAST (18.16: a Native column the table's type cannot take)
    376,  # CANNOT_PARSE_UUID
})
MISSING_CODES = frozenset({60, 81})  # UNKNOWN_TABLE, UNKNOWN_DATABASE: set up again, then retry
# Statuses from something in front of ClickHouse (or auth) that do not blame the request body.
TRANSIENT_STATUSES = frozenset({401, 403, 404, 407, 408, 425, 429})
_CODE = re.compile(rb"Code:\s*(\d+)")


def error_code(body: bytes, code_header: str | None = None) -> int | None:
    """The ClickHouse error code: the header where the server sends it, else ``Code: N`` in the body (18.16)."""
    if code_header and code_header.strip().isdigit():
        return int(code_header)
    match = _CODE.search(body)
    return int(match.group(1)) if match else None


def classify(status: int, body: bytes, code_header: str | None = None) -> SinkError:
    """A failed HTTP response → Retryable or Permanent (see the module docstring)."""
    code = error_code(body, code_header)
    text = body.decode(errors="replace").strip()
    message = f"ClickHouse HTTP {status}" + (f" code {code}" if code is not None else "") + f": {text[:2000]}"
    if code in PERMANENT_CODES or status == 413 or "Too many partitions for single INSERT block" in text:
        return PermanentError(message)
    if code is None and 400 <= status < 500 and status not in TRANSIENT_STATUSES:
        return PermanentError(message)  # a 4xx without a ClickHouse code: the request itself is refused
    return RetryableError(message)
