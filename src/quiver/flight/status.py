"""Flight statuses without tracebacks: one exception class per gRPC code a handler answers with.

pyarrow turns a handler's exception into a status whose detail is the formatted traceback
(server paths included), unless formatting fails, when the detail is only the class name.
pyarrow has no Flight classes for INVALID_ARGUMENT and NOT_FOUND, so ours make formatting fail
on purpose: a ``__notes__`` property that raises. Flight's own error classes carry no traceback.
Every handler converts what it raised with :func:`to_status` at its boundary.

After a stream's first batch, pyarrow's record batch reader turns any exception into a plain
status (losing Flight's codes), so a failure there is UNKNOWN (INVALID_ARGUMENT, NOT_FOUND
keep theirs), still with a clean message; DoGet reads the first batch before it answers so
that a query that fails at once (timeout, busy pool) gets its real code.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

import pyarrow as pa
import pyarrow.flight as flight

from quiver.errors import STATUSES, bounded, classify, database_error
from quiver.flight.tickets import TicketError

T = TypeVar("T")


class _Opaque:
    """Makes ``traceback.format_exception`` fail, so pyarrow reports only the class name."""

    @property
    def __notes__(self) -> list[str]:
        raise RuntimeError("no traceback leaves the server")


class InvalidArgument(_Opaque, pa.ArrowInvalid):  # type: ignore[misc]  # pyarrow is untyped
    """INVALID_ARGUMENT: the request cannot be answered as sent."""


class NotFound(_Opaque, KeyError):  # type: ignore[override]  # __notes__: a property on purpose
    """NOT_FOUND: no such table or view (a KeyError, whose text is its message, not its repr)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class RequestError(ValueError):
    """A request the server refuses (INVALID_ARGUMENT); raised by parsing and resolving."""


class Missing(LookupError):
    """A name the request uses that the server does not have (NOT_FOUND)."""


# Every gRPC name errors.STATUSES uses, as the class that carries it.
BY_GRPC: dict[str, Callable[[str], Exception]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "NOT_FOUND": NotFound,
    "UNAUTHENTICATED": flight.FlightUnauthenticatedError,
    "UNAUTHORIZED": flight.FlightUnauthorizedError,
    "TIMED_OUT": flight.FlightTimedOutError,
    "UNAVAILABLE": flight.FlightUnavailableError,
    "INTERNAL": flight.FlightInternalError,
}
assert {s.flight for s in STATUSES.values()} <= set(BY_GRPC), "a code without a Flight class"

_CLEAN = (InvalidArgument, NotFound, flight.FlightError)


class StreamFailed(_Opaque, Exception):  # type: ignore[override]
    """A failure after data went out: UNKNOWN, since the reader drops Flight statuses there."""


def to_status(exc: BaseException) -> Exception:
    """Any exception a handler met as the clean Flight status the client gets."""
    if isinstance(exc, _CLEAN):
        return exc
    if isinstance(exc, Missing):
        return NotFound(bounded(str(exc), 400))
    if isinstance(exc, RequestError | TicketError | pa.ArrowInvalid | pa.ArrowTypeError):
        return InvalidArgument(bounded(str(exc), 400))
    code = classify(exc)
    message = database_error(exc).message  # logs INTERNAL with an error id and the traceback
    return BY_GRPC[STATUSES[code].flight](bounded(message, 400))


def guarded(call: Callable[[], T]) -> T:
    """``call()``, with whatever it raises as a clean status."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - every failure leaves as a status
        raise to_status(exc) from None


def first_then_rest(items: Iterator[T]) -> Iterator[T]:
    """Read the first item now (its error is the RPC's status), then stream the rest cleanly."""
    head = guarded(lambda: next(items, None))

    def rest() -> Generator[T, None, None]:
        try:
            if head is not None:
                yield head
            yield from guarded_stream(items, midstream=True)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    return rest()


def guarded_stream(items: Iterator[T], *, midstream: bool = False) -> Generator[T, None, None]:
    """``items``, with errors raised mid-stream as clean statuses; closing this closes ``items``.

    ``midstream``: the stream is read by pyarrow's record batch reader (see the module docstring).
    """
    try:
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - every failure leaves as a status
                status = to_status(exc)
                if midstream and not isinstance(status, InvalidArgument | NotFound):
                    status = StreamFailed(str(status))
                raise status from None
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
