"""Signed statement handles: round trips, and refusal of anything this secret did not sign."""

from __future__ import annotations

import pyarrow as pa
import pytest

from quiver.flight.sql.handles import HandleError, Signer, Statement

SECRET = b"0123456789abcdef-secret"


def test_a_handle_round_trips_sql_and_parameters() -> None:
    signer = Signer(SECRET)
    parameters = pa.RecordBatch.from_pydict({"a": [1], "b": ["x"], "c": pa.array([None], pa.float64())})
    decoded = signer.decode(signer.encode(Statement("SELECT $1, $2, $3", parameters)))
    assert decoded.sql == "SELECT $1, $2, $3"
    assert decoded.parameters is not None and decoded.parameters.equals(parameters)
    assert signer.decode(signer.encode(Statement("SELECT 1"))) == Statement("SELECT 1")


def test_a_handle_is_valid_on_any_server_with_the_same_secret() -> None:
    handle = Signer(SECRET).encode(Statement("SELECT 1"))
    assert Signer(SECRET).decode(handle).sql == "SELECT 1"


@pytest.mark.parametrize("change", [
    lambda h: h[:-1] + bytes([h[-1] ^ 1]),  # the payload
    lambda h: h[:5] + bytes([h[5] ^ 1]) + h[6:],  # the signature
    lambda h: h.replace(b"SELECT 1", b"SELECT 2"),
    lambda h: b"",
    lambda h: b"q1short",
])
def test_a_changed_handle_is_refused(change: object) -> None:
    signer = Signer(SECRET)
    handle = signer.encode(Statement("SELECT 1"))
    assert callable(change)
    with pytest.raises(HandleError):
        signer.decode(change(handle))


def test_another_secret_refuses_the_handle() -> None:
    handle = Signer(SECRET).encode(Statement("SELECT 1"))
    with pytest.raises(HandleError, match="signature"):
        Signer(b"another secret of enough bytes").decode(handle)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Signer(b"short")
