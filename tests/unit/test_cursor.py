"""Keyset cursors round-trip and reject garbage."""

from __future__ import annotations

from quiver.plan.cursors import decode_cursor, encode_cursor


def test_cursor_round_trip() -> None:
    values = ("2024-01-01 00:00:00+00", None, "42", "ü'\"")
    assert decode_cursor(encode_cursor(values)) == values


def test_garbage_cursors_decode_to_none() -> None:
    for garbage in ("", "!!!", encode_cursor([]).replace("W", "@"), "eyJhIjogMX0="):
        decoded = decode_cursor(garbage)
        assert decoded is None or decoded == ()
