"""The client's error translation: pyarrow / Flight exceptions → QuiverError subclasses with clean messages."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from quiver.client import (
    InvalidRequest,
    NotFound,
    QuiverError,
    Timeout,
    Unauthenticated,
    Unauthorized,
    Unavailable,
    clean_message,
    translate_error,
)

# What pyarrow really reports for a DoGet the server refused (captured from a running server).
DO_GET_INVALID = (
    "Cannot query field 'nope' on type 'Query'.. Detail: Python exception: Traceback (most recent call last):\n"
    '  File "pyarrow/_flight.pyx", line 2279, in pyarrow._flight._do_get\n'
    '  File "/work/main/src/quiver/flight/server.py", line 90, in resolve\n'
    "    raise pa.ArrowInvalid(\"; \".join(e.message for e in error.errors)) from None\n"
    "pyarrow.lib.ArrowInvalid: Cannot query field 'nope' on type 'Query'.\n"
    ". gRPC client debug context: INVALID_ARGUMENT:Cannot query field 'nope' on type 'Query'.. Detail: Python "
    "exception: Traceback (most recent call last):\n  ...\n. Client context: IOError: Server never sent a data "
    "message. Detail: Internal"
)
DO_GET_NOT_FOUND = (
    "\"not found: no table or view named 'zzz'\". Detail: Python exception: Traceback (most recent call last):\n"
    '  File "pyarrow/_flight.pyx", line 2222, in pyarrow._flight._get_flight_info\n'
    "KeyError: \"not found: no table or view named 'zzz'\"\n"
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (pa.ArrowInvalid("bad"), InvalidRequest),
        (pa.ArrowKeyError("'not found: x'"), NotFound),
        (flight.FlightUnauthenticatedError("a valid bearer token is required. Detail: Unauthenticated"),
         Unauthenticated),
        (flight.FlightUnauthorizedError("permission denied for table orders. Detail: Unauthorized"), Unauthorized),
        (flight.FlightUnavailableError("database unavailable. Detail: Unavailable"), Unavailable),
        (flight.FlightTimedOutError("canceling statement due to statement timeout. Detail: TimedOut"), Timeout),
        (flight.FlightInternalError("boom. Detail: Internal"), QuiverError),
        (flight.FlightServerError("boom"), QuiverError),
        (flight.FlightCancelledError("cancelled"), QuiverError),
        (pa.ArrowNotImplementedError("no"), QuiverError),
        (pa.ArrowIOError("io"), QuiverError),
    ],
)
def test_each_arrow_error_maps_to_its_class(error: Exception, expected: type[QuiverError]) -> None:
    translated = translate_error(error)
    assert type(translated) is expected
    assert isinstance(translated, QuiverError)
    assert translated.detail == str(error)


def test_subclasses_share_the_base() -> None:
    for cls in (InvalidRequest, NotFound, Unauthenticated, Unauthorized, Unavailable, Timeout):
        assert issubclass(cls, QuiverError)
        assert cls.status != QuiverError.status
    assert len({cls.status for cls in (InvalidRequest, NotFound, Unauthenticated, Unauthorized, Unavailable,
                                        Timeout)}) == 6


def test_flight_errors_are_checked_before_their_arrow_bases() -> None:
    # Every Flight error is an ArrowException; the specific classes must win over the generic fallback.
    assert type(translate_error(flight.FlightUnavailableError("x"))) is Unavailable
    assert type(translate_error(flight.FlightTimedOutError("x"))) is Timeout


def test_the_traceback_tail_is_stripped() -> None:
    translated = translate_error(pa.ArrowInvalid(DO_GET_INVALID))
    assert isinstance(translated, InvalidRequest)
    assert translated.message == "Cannot query field 'nope' on type 'Query'."
    assert str(translated) == translated.message
    assert translated.detail == DO_GET_INVALID


def test_not_found_loses_the_key_error_quotes() -> None:
    translated = translate_error(pa.ArrowKeyError(DO_GET_NOT_FOUND))
    assert isinstance(translated, NotFound)
    assert translated.message == "not found: no table or view named 'zzz'"
    single = translate_error(pa.ArrowKeyError("'not found: no table or view named zzz'"))
    assert single.message == "not found: no table or view named zzz"


def test_quotes_stay_on_other_messages() -> None:
    assert translate_error(pa.ArrowInvalid("'quoted' all along'")).message == "'quoted' all along'"


def test_unauthenticated_message() -> None:
    translated = translate_error(flight.FlightUnauthenticatedError(
        "a valid bearer token is required. Detail: Unauthenticated"))
    assert translated.message == "a valid bearer token is required"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("plain message", "plain message"),
        ("ends with a dot.", "ends with a dot."),
        ("x. Detail: Python exception: Traceback ...", "x"),
        ("x. gRPC client debug context: UNKNOWN:...", "x"),
        ("x. Client context: IOError: Server never sent a data message. Detail: Internal", "x"),
        ("a. Client context: c. Detail: d", "a"),
        ("  padded  ", "padded"),
        # Nothing before the tail: keep the whole text rather than an empty message.
        (". Detail: Unavailable", ". Detail: Unavailable"),
    ],
)
def test_clean_message(text: str, message: str) -> None:
    assert clean_message(text) == message


@pytest.mark.parametrize(
    ("text", "expected", "message"),
    [
        # GetSchema raises plain OSError for Flight statuses (apache/arrow#43374): the Detail names the status.
        ("a valid bearer token is required. Detail: Unauthenticated. Detail: Unauthenticated", Unauthenticated,
         "a valid bearer token is required"),
        ("Flight returned unavailable error, with message: failed to connect to all addresses; last error: "
         "UNKNOWN: ipv4:127.0.0.1:34123: Failed to connect to remote host: Connection refused. Detail: Unavailable",
         Unavailable, "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:34123: Failed to "
         "connect to remote host: Connection refused"),
        ("Flight returned timeout error, with message: Deadline Exceeded. Detail: TimedOut", Timeout,
         "Deadline Exceeded"),
        ("permission denied. Detail: Unauthorized", Unauthorized, "permission denied"),
        ("boom. Detail: Internal", QuiverError, "boom"),
        ("disk on fire", QuiverError, "disk on fire"),
    ],
)
def test_plain_os_errors_map_by_their_flight_detail(text: str, expected: type[QuiverError], message: str) -> None:
    translated = translate_error(OSError(text))
    assert type(translated) is expected
    assert translated.message == message


def test_a_class_beats_the_detail_text() -> None:
    # A refused DoGet ends in "Detail: Internal" (the client's own context), but its class says INVALID_ARGUMENT.
    assert type(translate_error(pa.ArrowInvalid(DO_GET_INVALID))) is InvalidRequest


def test_quiver_errors_pass_through() -> None:
    original = NotFound("gone")
    assert translate_error(original) is original


def test_other_exceptions_become_the_base_class() -> None:
    translated = translate_error(RuntimeError("odd. Detail: tail"))
    assert type(translated) is QuiverError
    assert translated.message == "odd"
