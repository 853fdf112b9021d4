"""Bearer-token checks shared by Flight and HTTP: every call, metadata calls included."""

from __future__ import annotations

import hmac
from typing import Any

import pyarrow.flight as flight


def _offered(header: str | None) -> bytes | None:
    if not header or not header.lower().startswith("bearer "):
        return None
    return header[7:].strip().encode()


def token_ok(header: str | None, tokens: list[str]) -> bool:
    """True when no tokens are configured or the header carries one of them."""
    if not tokens:
        return True
    offered = _offered(header)
    return offered is not None and any(hmac.compare_digest(offered, t.encode()) for t in tokens)


def tenant_of(header: str | None, tokens: list[str], tenants: dict[str, str]) -> tuple[bool, str | None]:
    """(allowed, tenant) of a subscriber: a token of ``tenants`` sees its tenant's events only.

    Tenant tokens are valid for subscriptions only (queries do not filter by tenant). With
    tenant tokens and no other tokens configured, a subscriber without one is refused: it
    would see every tenant.
    """
    offered = _offered(header)
    if offered is not None:
        for token, tenant in tenants.items():
            if hmac.compare_digest(offered, token.encode()):
                return True, tenant
    return (token_ok(header, tokens) if tokens else not tenants), None


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


class HandshakeAccepted(flight.ServerAuthHandler):  # type: ignore[misc]
    """Completes Flight's Handshake, which the Flight SQL JDBC driver sends first with its bearer header.

    Without an auth handler Arrow answers Handshake UNIMPLEMENTED and the driver (``token=...``)
    cannot connect. The bearer middleware checks every call, Handshake included; this accepts all.
    """

    def authenticate(self, outgoing: Any, incoming: Any) -> None:
        """Nothing to exchange: the token travels in the call's header."""

    def is_valid(self, token: bytes) -> bytes:
        """Every call's legacy token is accepted (an empty peer identity); the middleware decides."""
        return b""
