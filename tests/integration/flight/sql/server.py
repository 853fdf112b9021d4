"""A minimal Flight server delegating Flight SQL to quiver.flight.sql, as the real server will."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pyarrow.flight as flight

from quiver.config import Settings
from quiver.db import AdbcPool
from quiver.flight.sql import FlightSql

SECRET = b"test-secret-of-at-least-16-bytes"


class SqlOnlyServer(flight.FlightServerBase):  # type: ignore[misc]
    """Answers every RPC with FlightSql; anything else is refused."""

    def __init__(self, pool: AdbcPool, settings: Settings, secret: bytes = SECRET) -> None:
        super().__init__("grpc://127.0.0.1:0")
        self.sql = FlightSql(pool, settings, secret)
        self.url = f"grpc://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.serve, name="flightsql-test", daemon=True)
        self._thread.start()

    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        return self.sql.get_flight_info(context, descriptor)

    def get_schema(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.SchemaResult:
        return self.sql.get_schema(context, descriptor)

    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        return self.sql.do_get(context, ticket)

    def do_put(self, context: Any, descriptor: flight.FlightDescriptor, reader: flight.MetadataRecordBatchReader,
               writer: flight.FlightMetadataWriter) -> None:
        self.sql.do_put(context, descriptor, reader, writer)

    def do_action(self, context: Any, action: flight.Action) -> Iterator[bytes]:
        return self.sql.do_action(context, action)

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return self.sql.list_actions()

    def stop(self) -> None:
        self.shutdown()
        self._thread.join(timeout=10)
