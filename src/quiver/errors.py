"""Database errors as GraphQL errors: a message, a stable code, never a 500."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from graphql import GraphQLError, Node

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


def database_error(
    exc: BaseException, nodes: Sequence[Node] | None = None, path: Sequence[str] | None = None
) -> GraphQLError:
    state = sqlstate_of(exc)
    code = code_for(state)
    message = "statement timeout: the query ran longer than allowed" if code == "STATEMENT_TIMEOUT" else _message(exc)
    extensions: dict[str, Any] = {"code": code}
    if state:
        extensions["sqlstate"] = state
    return GraphQLError(message, nodes=nodes, path=path, extensions=extensions)
