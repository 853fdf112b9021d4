"""Bearer-token checks shared by Flight and HTTP: every call, metadata calls included."""

from __future__ import annotations

import hmac
from typing import Any

import pyarrow.flight as flight


def token_ok(header: str | None, tokens: list[str]) -> bool:
    """True when no tokens are configured or the header carries one of them."""
    if not tokens:
        return True
    if not header or not header.lower().startswith("bearer "):
        return False
    offered = header[7:].strip().encode()
    return any(hmac.compare_digest(offered, t.encode()) for t in tokens)


class BearerMiddleware(flight.ServerMiddleware):  # type: ignore[misc]
    pass


class BearerMiddlewareFactory(flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Refuses any RPC without a valid ``authorization: Bearer <token>`` header."""

    def __init__(self, tokens: list[str]) -> None:
        super().__init__()
        self.tokens = tokens

    def start_call(self, info: Any, headers: dict[str, list[str]]) -> BearerMiddleware:
        values = headers.get("authorization") or headers.get("Authorization") or []
        if not token_ok(values[0] if values else None, self.tokens):
            raise flight.FlightUnauthenticatedError("a valid bearer token is required")
        return BearerMiddleware()
