"""Keyset cursors: a row's sort-key values as opaque, url-safe text (and back)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import orjson


def encode_cursor(values: Sequence[str | None]) -> str:
    """The opaque cursor for a row's sort-key values (their PostgreSQL text forms)."""
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode()


def decode_cursor(cursor: str) -> tuple[str | None, ...] | None:
    """The values of a cursor made by ``encode_cursor`` (or SQL's ``cursor_sql``); None if it is not one."""
    try:
        raw = base64.b64decode(cursor.replace("-", "+").replace("_", "/") + "==", validate=False)
        values = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(values, list) or not all(v is None or isinstance(v, str) for v in values):
        return None
    return tuple(values)
