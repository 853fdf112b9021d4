"""``quiver events ...``: capture, relay, sinks, status and the dead-letter queue."""

from quiver.events.cli import app

__all__ = ["app"]
