"""Errors as a client sees them: a message, a stable code, and one HTTP and one Flight status per code.

``STATUSES`` is the whole table (docs/graphql.md "Error codes" is checked against it). A
database failure is classified by its SQLSTATE; an outage (no connection, a pool that stays
exhausted) is ``DATABASE_UNAVAILABLE``, the one code a client should retry; anything else
unexpected is a bug, ``INTERNAL``, answered with an error id that the server logs with the
traceback, and never with the traceback itself.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from graphql import GraphQLError, Node

log = logging.getLogger("quiver.errors")
MAX_ECHO = 200  # characters of a client's own input any message repeats


class Status(NamedTuple):
    """How one code travels: the HTTP status of a JSON response, and the Flight status."""

    http: int
    flight: str  # a gRPC status name: INVALID_ARGUMENT, NOT_FOUND, TIMED_OUT, UNAVAILABLE, ...


STATUSES: dict[str, Status] = {
    "BAD_REQUEST": Status(400, "INVALID_ARGUMENT"),  # not a GraphQL request at all (body, ticket, header)
    "GRAPHQL_VALIDATION_FAILED": Status(200, "INVALID_ARGUMENT"),  # 400 with application/graphql-response+json
    "LIMIT_EXCEEDED": Status(200, "INVALID_ARGUMENT"),  # depth, nodes, tokens, first/limit
    "BAD_USER_INPUT": Status(200, "INVALID_ARGUMENT"),  # a value PostgreSQL refused (SQLSTATE class 22)
    "UNSUPPORTED_VALUE": Status(422, "INVALID_ARGUMENT"),  # a stored value a plane cannot carry faithfully
    "CONSTRAINT_VIOLATION": Status(200, "INVALID_ARGUMENT"),  # SQLSTATE class 23
    "UNAUTHENTICATED": Status(401, "UNAUTHENTICATED"),
    "FORBIDDEN": Status(200, "UNAUTHORIZED"),  # SQLSTATE 42501
    "NOT_FOUND": Status(404, "NOT_FOUND"),
    "METHOD_NOT_ALLOWED": Status(405, "INVALID_ARGUMENT"),
    "STATEMENT_TIMEOUT": Status(200, "TIMED_OUT"),  # statement_timeout_ms (SQLSTATE 57014)
    "DATABASE_ERROR": Status(200, "INTERNAL"),  # any other SQLSTATE
    "DATABASE_UNAVAILABLE": Status(503, "UNAVAILABLE"),  # retry: no connection, or none free in time
    "EVENTS_UNAVAILABLE": Status(503, "UNAVAILABLE"),  # retry: NATS (the event stream) cannot be reached
    "NOT_FRESH": Status(503, "UNAVAILABLE"),  # a `fresh` live read whose dataset did not catch up in time: retry
    "TOO_SLOW": Status(429, "UNAVAILABLE"),  # a subscriber that fell too far behind, cut off: reconnect from its cursor
    "INTERNAL": Status(500, "INTERNAL"),  # a bug: see the server log for the error id
}


class Unavailable(Exception):
    """A service the request needs could not be had in time (e.g. every pooled connection stayed busy)."""


class NotFresh(Exception):
    """A ``consistency: "fresh"`` read whose live dataset did not apply every committed change in time."""


class UnsupportedValue(Exception):
    """A stored value that a plane cannot carry faithfully; names the column (and the row when known)."""

    def __init__(self, column: str, reason: str, row: int | None = None) -> None:
        where = f"column {column!r}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {reason}")
        self.column, self.reason, self.row = column, reason, row


def bounded(value: object, limit: int = MAX_ECHO) -> str:
    """A client's input as it may appear in a message: at most ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"

_LIBPQ_MESSAGE = re.compile(r"ERROR:\s+(.*?)(?:\n|$)")
_SQLSTATE = re.compile(r"SQLSTATE: ([0-9A-Z]{5})")
# ADBC's COPY reader reports server errors as OSError with the message only.
# Matched by prefix; the common ways client data can fail inside a query.
_KNOWN_MESSAGES = {
    "canceling statement due to statement timeout": "57014",
    "canceling statement due to user request": "57014",
    "LIKE pattern must not end with escape character": "22025",
    "invalid input syntax": "22P02",
    "invalid input value for enum": "22P02",
    "numeric field overflow": "22003",
    "value too long": "22001",
    "division by zero": "22012",
    "invalid regular expression": "2201B",
    "date/time field value out of range": "22008",
    "time zone": "22023",
}


def sqlstate_of(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state:
        return state
    text = str(exc)
    found = _SQLSTATE.search(text)
    if found:
        return found.group(1)
    message = _LIBPQ_MESSAGE.search(text)
    if message:
        text = message.group(1).strip()
        return next((state for prefix, state in _KNOWN_MESSAGES.items() if text.startswith(prefix)), "XX000")
    return None


def _message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if isinstance(primary, str) and primary:
        return primary
    text = str(exc)
    found = _LIBPQ_MESSAGE.search(text)
    return found.group(1).strip() if found else text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def code_for(sqlstate: str | None) -> str:
    """The code of a database error with this SQLSTATE (None: a connection that failed or was lost)."""
    if sqlstate is None:
        return "DATABASE_UNAVAILABLE"
    if sqlstate == "57014":
        return "STATEMENT_TIMEOUT"
    if sqlstate.startswith("22"):
        return "BAD_USER_INPUT"
    if sqlstate.startswith("23"):
        return "CONSTRAINT_VIOLATION"
    if sqlstate == "42501":
        return "FORBIDDEN"
    if sqlstate.startswith(("08", "57P", "53")):
        return "DATABASE_UNAVAILABLE"
    return "DATABASE_ERROR"


_CONNECTION_TROUBLE = (psycopg.OperationalError, ConnectionError, OSError, Unavailable)


def classify(exc: BaseException) -> str:
    """The code of any exception met while answering a request."""
    if isinstance(exc, UnsupportedValue):
        return "UNSUPPORTED_VALUE"
    if isinstance(exc, NotFresh):
        return "NOT_FRESH"
    if isinstance(exc, Unavailable):
        return "DATABASE_UNAVAILABLE"
    state = sqlstate_of(exc)
    if state is not None:
        return code_for(state)
    # No SQLSTATE: a lost or refused connection (psycopg, ADBC's COPY reader raise these), else a bug.
    operational = type(exc).__name__ == "OperationalError"  # adbc_driver_manager's, without importing it here
    return "DATABASE_UNAVAILABLE" if isinstance(exc, _CONNECTION_TROUBLE) or operational else "INTERNAL"


def internal_error_id(exc: BaseException) -> str:
    """Log ``exc`` with its traceback under a fresh id, which is all the client is told."""
    error_id = uuid.uuid4().hex[:16]
    log.error("internal error %s", error_id, exc_info=(type(exc), exc, exc.__traceback__))
    return error_id


def database_error(
    exc: BaseException, nodes: Sequence[Node] | None = None, path: Sequence[str] | None = None
) -> GraphQLError:
    """Any exception from running a request as the GraphQL error the client gets."""
    code = classify(exc)
    extensions: dict[str, Any] = {"code": code}
    if code == "INTERNAL":
        extensions["error_id"] = error_id = internal_error_id(exc)
        message = f"internal error {error_id}: the server log has the details"
    elif code == "STATEMENT_TIMEOUT":
        message = "statement timeout: the query ran longer than allowed"
    else:
        message = _message(exc)
    state = sqlstate_of(exc)
    if state:
        extensions["sqlstate"] = state
    if isinstance(exc, UnsupportedValue):
        extensions["column"] = exc.column
        if exc.row is not None:
            extensions["row"] = exc.row
    return GraphQLError(message, nodes=nodes, path=path, extensions=extensions)


def http_status(error: GraphQLError) -> int:
    """The HTTP status of a JSON response whose first error is ``error``."""
    return STATUSES.get(str((error.extensions or {}).get("code")), STATUSES["INTERNAL"]).http
