"""PostgreSQL failures as the Flight statuses a SQL client can act on, with PostgreSQL's own message.

Quiver's GraphQL planes treat a SQL error as a bug (the SQL is theirs); here the client wrote the SQL,
so syntax, naming and read-only errors are the client's: INVALID_ARGUMENT with the server's text.
"""

from __future__ import annotations

import re

import pyarrow.flight as flight

from quiver.errors import bounded, sqlstate_of
from quiver.flight.status import InvalidArgument, to_status

_PRIMARY = re.compile(r"ERROR:\s+(.*?)(?:\n|$)")
# SQLSTATE classes the client's SQL or values caused: data (22), integrity (23), transaction state (25,
# e.g. 25006 a write in a read-only transaction), syntax and access rules (42), feature (0A).
_CLIENT_CLASSES = ("0A", "22", "23", "25", "42")


def postgres_message(exc: BaseException) -> str:
    """PostgreSQL's primary message (and SQLSTATE) from a driver exception."""
    text = str(exc)
    found = _PRIMARY.search(text)
    message = found.group(1).strip() if found else text.strip().splitlines()[0] if text.strip() else repr(exc)
    state = sqlstate_of(exc)
    return f"{message} (SQLSTATE {state})" if state else message


def to_flight(exc: BaseException) -> Exception:
    """The clean status for ``exc``: the client's mistakes as INVALID_ARGUMENT, timeouts as TIMED_OUT."""
    state = sqlstate_of(exc)
    if state == "57014":
        timed_out: Exception = flight.FlightTimedOutError(
            "statement timeout: the query ran longer than allowed (SQLSTATE 57014)")
        return timed_out
    if state == "25006":
        return InvalidArgument(bounded(f"Quiver's Flight SQL is read-only: {postgres_message(exc)}", 400))
    if state is not None and state.startswith(_CLIENT_CLASSES):
        return InvalidArgument(bounded(postgres_message(exc), 400))
    return to_status(exc)
