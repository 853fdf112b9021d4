"""``import quiver`` offers exactly the curated API; changing it is a decision, made here."""

from __future__ import annotations

import subprocess
import sys

import quiver

PUBLIC = [
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


def test_all_is_the_curated_api() -> None:
    assert quiver.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in quiver.__all__:
        assert getattr(quiver, name) is not None, name


def test_errors_share_one_base() -> None:
    for name in ("InvalidRequest", "NotFound", "Timeout", "Unauthenticated", "Unauthorized", "Unavailable"):
        assert issubclass(getattr(quiver, name), quiver.QuiverError)


def test_the_command_line_prints_it() -> None:
    """What the issue asks a newcomer to run: ``python -c "import quiver; print(quiver.__all__)"``."""
    out = subprocess.run([sys.executable, "-c", "import quiver; print(quiver.__all__)"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert out.strip() == repr(PUBLIC)


def test_create_app_builds_without_a_database() -> None:
    """The app is built lazily: the schema is loaded by its lifespan, not at construction."""
    app = quiver.create_app(quiver.Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    assert {route.path for route in app.routes} >= {"/graphql", "/health", "/metrics"}  # type: ignore[attr-defined]
