"""Quiver: one GraphQL schema from PostgreSQL, served as streamed JSON, Arrow IPC and Arrow Flight.

The public API is what ``__all__`` lists; every other module is internal and may change.

>>> import quiver
>>> app = quiver.create_app(quiver.Settings(database_url="postgresql://..."))   # any ASGI server
>>> with quiver.Client("grpc://127.0.0.1:8815") as client:                    # Arrow Flight
...     table = client.query("{ orders(limit: 10) { id total } }")
"""

from importlib.metadata import PackageNotFoundError, version

from quiver.client import (
    Client,
    InvalidRequest,
    NotFound,
    QuiverError,
    Timeout,
    Unauthenticated,
    Unauthorized,
    Unavailable,
)
from quiver.config import Settings
from quiver.server import create_app, serve

try:
    __version__ = version("quiver")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Client",
    "InvalidRequest",
    "NotFound",
    "QuiverError",
    "Settings",
    "Timeout",
    "Unauthenticated",
    "Unauthorized",
    "Unavailable",
    "__version__",
    "create_app",
    "serve",
]
