"""The Python client: GraphQL results from a Quiver server over Arrow Flight (``Client``) and its errors."""

from quiver.client.client import Client
from quiver.client.errors import (
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

__all__ = [
    "Client",
    "InvalidRequest",
    "NotFound",
    "QuiverError",
    "Timeout",
    "Unauthenticated",
    "Unauthorized",
    "Unavailable",
    "clean_message",
    "translate_error",
]
