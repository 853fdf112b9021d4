"""Database errors as GraphQL errors: a message, a stable code, never a 500."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from graphql import GraphQLError, Node

_LIBPQ_MESSAGE = re.compile(r"ERROR:\s+(.*?)(?:\n|$)")


def sqlstate_of(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


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
