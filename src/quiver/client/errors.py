"""Errors of the Python client: one class per Flight status a caller can act on.

The server's message is kept; pyarrow's traceback tail is removed (``clean_message``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.flight as flight

# What pyarrow appends to a server's message: the server-side traceback, gRPC debug text, client context.
_TAILS = (". Detail: ", ". gRPC client debug context: ", ". Client context: ")
# How pyarrow words a Flight status it did not turn into a Flight exception (GetSchema raises a plain
# OSError: apache/arrow#43374, #43556): "Flight returned <kind> error, with message: <text>. Detail: <Code>".
_FLIGHT_PREFIX = re.compile(r"^Flight returned [\w ]+ error, with message: ")
_FLIGHT_DETAIL = re.compile(r"Detail: (\w+)\s*$")


# -- errors ---------------------------------------------------------------------------------
class QuiverError(Exception):
    """Anything a Quiver server refused or failed to do. ``message`` is the server's own text."""

    status = "UNKNOWN"

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message  # the full text pyarrow reported


class InvalidRequest(QuiverError):
    """The request cannot be answered as sent: invalid GraphQL, bad variables, bad ticket (INVALID_ARGUMENT)."""

    status = "INVALID_ARGUMENT"


class NotFound(QuiverError):
    """No such table or view (NOT_FOUND)."""

    status = "NOT_FOUND"


class Unauthenticated(QuiverError):
    """No bearer token, or one the server does not know (UNAUTHENTICATED)."""

    status = "UNAUTHENTICATED"


class Unauthorized(QuiverError):
    """The token is known but not allowed to do this (PERMISSION_DENIED)."""

    status = "PERMISSION_DENIED"


class Unavailable(QuiverError):
    """The server or its database cannot be reached (UNAVAILABLE)."""

    status = "UNAVAILABLE"


class Timeout(QuiverError):
    """The statement or the call ran out of time (DEADLINE_EXCEEDED)."""

    status = "DEADLINE_EXCEEDED"


def clean_message(text: str) -> str:
    """The server's message without pyarrow's ``. Detail: Python exception: Traceback ...`` tail."""
    cuts = [index for tail in _TAILS if (index := text.find(tail)) >= 0]
    message = text[: min(cuts)].strip() if cuts else text.strip()
    message = _FLIGHT_PREFIX.sub("", message)
    return message or text.strip()


def _unquote(message: str) -> str:
    """A KeyError's text is the repr of its argument: ``"not found: ..."`` loses its quotes."""
    if len(message) >= 2 and message[0] == message[-1] and message[0] in "\"'":
        return message[1:-1]
    return message


# Most specific first: Flight errors are ArrowExceptions too.
_CLASSES: tuple[tuple[type[BaseException], type[QuiverError]], ...] = (
    (flight.FlightUnauthenticatedError, Unauthenticated),
    (flight.FlightUnauthorizedError, Unauthorized),
    (flight.FlightUnavailableError, Unavailable),
    (flight.FlightTimedOutError, Timeout),
    (pa.ArrowInvalid, InvalidRequest),
    (pa.ArrowKeyError, NotFound),
)

# Flight status codes by the name pyarrow prints after "Detail:", for errors that lost their class.
_BY_STATUS_NAME: dict[str, type[QuiverError]] = {
    "Unauthenticated": Unauthenticated,
    "Unauthorized": Unauthorized,
    "Unavailable": Unavailable,
    "TimedOut": Timeout,
}


def translate_error(error: BaseException) -> QuiverError:
    """The :class:`QuiverError` for a pyarrow / Flight exception (already-translated errors pass through)."""
    if isinstance(error, QuiverError):
        return error
    detail = str(error)
    message = clean_message(detail)
    for source, target in _CLASSES:
        if isinstance(error, source):
            if target is NotFound:
                message = _unquote(message)
            return target(message, detail)
    status = _FLIGHT_DETAIL.search(detail)
    if status is not None and status.group(1) in _BY_STATUS_NAME:
        return _BY_STATUS_NAME[status.group(1)](message, detail)
    return QuiverError(message, detail)


@contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except (pa.ArrowException, OSError) as error:  # pyarrow raises some Flight failures as plain OSError
        raise translate_error(error) from None
