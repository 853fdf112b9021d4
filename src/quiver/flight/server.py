"""Arrow Flight server: the same plans as HTTP, streamed as Arrow record batches.

DoGet takes GraphQL or entity tickets; GetSchema answers with exactly the schema
DoGet will carry; GetFlightInfo hands out primary-key-range endpoints for
whole-entity reads; ListFlights lists one dataset per table or view; DoPut ingests
an Arrow stream with INSERT (so triggers fire); DoAction offers ``health``.

Every RPC converts whatever it raised at its boundary (``flight/status.py``), so a client
gets a gRPC code it can act on and a short message, never a server traceback.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.flight as flight
from graphql import GraphQLSchema

from quiver.arrow.events import EVENT_SCHEMA
from quiver.auth import BearerMiddlewareFactory, HandshakeAccepted
from quiver.config import Settings
from quiver.db import AdbcPool
from quiver.errors import bounded
from quiver.events import bus
from quiver.execute.arrow_plane import ArrowQuery, ArrowRequestError, data_root
from quiver.flight import tickets
from quiver.flight.events import open_events
from quiver.flight.ingest import IngestError, ingest
from quiver.flight.sql.service import FlightSql
from quiver.flight.status import Missing, RequestError, first_then_rest, guarded, guarded_stream, to_status
from quiver.flight.tickets import EventsTicket
from quiver.live.datasets import LiveDatasets
from quiver.plan import nodes
from quiver.plan.build import PlanError, prepare
from quiver.schema.model import Entity, Kind, Model
from quiver.sql.params import BadValue


class QuiverFlightServer(flight.FlightServerBase):  # type: ignore[misc]
    def __init__(self, settings: Settings, schema: GraphQLSchema, model: Model, pool: AdbcPool,
                 live: LiveDatasets | None = None) -> None:
        assert settings.flight_port is not None
        scheme = "grpc+tls" if settings.tls_cert else "grpc"
        self.location = f"{scheme}://{settings.host}:{settings.flight_port}"
        certificates = []
        if settings.tls_cert and settings.tls_key:
            with open(settings.tls_cert, "rb") as cert, open(settings.tls_key, "rb") as key:
                certificates.append(flight.CertKeyPair(cert.read(), key.read()))
        super().__init__(self.location, tls_certificates=certificates, auth_handler=HandshakeAccepted(),
                         middleware={"auth": BearerMiddlewareFactory(settings.tokens)})
        self.settings = settings
        self.schema = schema
        self.model = model
        self.pool = pool
        self.live = live  # entities answered from memory when they can be (docs/live.md)
        self._stopping = threading.Event()  # ends live event tails, which shutdown would wait for
        secret = settings.flightsql_secret.encode() or secrets.token_bytes(32)
        self.sql = FlightSql(pool, settings, secret)  # Flight SQL's commands, tickets and actions

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Nothing to start: gRPC listens from construction. ``serve()`` would only wait, and it makes
        SIGTERM shut Flight down first, waiting for live event tails before the signal reaches uvicorn
        (pyarrow registers its own shutdown on SIGINT/SIGTERM when Python handlers are set)."""

    def stop(self) -> None:
        self._stopping.set()  # ends live event tails, which shutdown() waits for
        self.shutdown()

    # -- resolving requests -----------------------------------------------------------
    def entity(self, name: str) -> Entity:
        """The entity a path or ticket names: its list field (what ListFlights gives, unique), else its type
        name (unique), else a table name (another schema's table or a renamed table may share it)."""
        for key in ("list_field", "type_name", "name"):
            for entity in self.model.entities.values():
                if getattr(entity, key) == name:
                    return entity
        raise Missing(f"not found: no table or view named {bounded(name)!r}")

    def resolve(self, ticket: Any) -> ArrowQuery:
        try:
            if isinstance(ticket, tickets.GraphQLTicket):
                prepared = prepare(self.schema, ticket.query, ticket.variables, ticket.operation_name,
                                   self.settings.limits())
                return ArrowQuery.compile(data_root(prepared.operation))
            return ArrowQuery.compile(entity_root(self.entity(ticket.entity), ticket.range))
        except PlanError as error:
            raise RequestError("; ".join(e.message for e in error.errors)) from None
        except (ArrowRequestError, BadValue, tickets.TicketError) as error:
            raise RequestError(str(error)) from None

    def from_descriptor(self, descriptor: flight.FlightDescriptor) -> Any:
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            if len(descriptor.path) != 1:
                raise RequestError("a path descriptor names one table or view")
            return tickets.EntityTicket(descriptor.path[0].decode(errors="replace"))
        return tickets.parse(descriptor.command)

    # -- RPCs: each converts what it raised into a clean status ---------------------------
    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        if FlightSql.handles(ticket.ticket):
            return self.sql.do_get(context, ticket)
        return guarded(lambda: self._do_get(context, ticket))

    def _do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        parsed = tickets.parse(ticket.ticket)
        options = pa.ipc.IpcWriteOptions(compression=parsed.compression)
        if isinstance(parsed, EventsTicket):
            topology = bus.Topology(self.settings.events_namespace)
            stream = open_events(self.settings.nats_url, topology, parsed.entity, parsed.from_seq, parsed.follow,
                                 stopped=lambda: self._stopping.is_set() or bool(context.is_cancelled()))
            reader = pa.RecordBatchReader.from_batches(EVENT_SCHEMA, guarded_stream(stream, midstream=True))
            return flight.RecordBatchStream(reader, options=options)
        query = self.resolve(parsed)
        live = self.live.answer(query, parsed.consistency) if self.live is not None else None
        schema, source = live or (query.schema, query.batches(self.pool, self.settings))
        # RecordBatchStream (unlike GeneratorStream) writes dictionary batches for enum columns.
        # Closing the stream closes the batches: a client that went away cancels the statement.
        batches = first_then_rest(source)
        return flight.RecordBatchStream(pa.RecordBatchReader.from_batches(schema, batches), options=options)

    def get_schema(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.SchemaResult:
        if _is_sql(descriptor):
            return self.sql.get_schema(context, descriptor)
        return guarded(lambda: self._get_schema(descriptor))

    def _get_schema(self, descriptor: flight.FlightDescriptor) -> flight.SchemaResult:
        ticket = self.from_descriptor(descriptor)
        if isinstance(ticket, EventsTicket):
            return flight.SchemaResult(EVENT_SCHEMA)
        return flight.SchemaResult(self.resolve(ticket).schema)

    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        if _is_sql(descriptor):
            return self.sql.get_flight_info(context, descriptor)
        return guarded(lambda: self._get_flight_info(descriptor))

    def _get_flight_info(self, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        ticket = self.from_descriptor(descriptor)
        if isinstance(ticket, EventsTicket):
            endpoint = flight.FlightEndpoint(ticket.encode(), [])
            return flight.FlightInfo(EVENT_SCHEMA, descriptor, [endpoint], -1, -1)
        query = self.resolve(ticket)
        if isinstance(ticket, tickets.EntityTicket) and ticket.range is None:
            entity = self.entity(ticket.entity)
            ranges, total = self.partitions(entity)
            endpoints = [
                flight.FlightEndpoint(tickets.EntityTicket(ticket.entity, r, ticket.compression,
                                                            ticket.consistency).encode(), [])
                for r in ranges
            ]
            return flight.FlightInfo(query.schema, descriptor, endpoints, total, -1)
        ticket_bytes = ticket.encode()
        return flight.FlightInfo(query.schema, descriptor, [flight.FlightEndpoint(ticket_bytes, [])], -1, -1)

    def partitions(self, entity: Entity) -> tuple[list[tuple[Any, Any] | None], int]:
        """Contiguous primary-key ranges of about equal size, and the exact row count (within the timeout)."""
        pk = entity.primary_key
        conn = self.pool.acquire()
        ok = False
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT set_config('statement_timeout', $1, true)",
                           (str(self.settings.statement_timeout_ms),))
            cursor.fetchall()
            if len(pk) == 1 and entity.columns[pk[0]].type.kind in (Kind.INT, Kind.BIGINT):
                column = f'"{pk[0]}"'
                cursor.execute(f"SELECT min({column}), max({column}), count(*) FROM {entity.qualified}")
                low, high, count = cursor.fetchone()
            else:
                cursor.execute(f"SELECT NULL, NULL, count(*) FROM {entity.qualified}")
                low, high, count = cursor.fetchone()
            conn.rollback()
            cursor.close()
            ok = True
        finally:
            self.pool.release(conn, ok)
        parts = max(1, self.settings.flight_partitions)
        if low is None or high is None or parts == 1 or high - low < parts:
            return [None], int(count)
        step = (high - low + 1) // parts
        bounds = [low + i * step for i in range(1, parts)]
        edges: list[Any] = [None, *bounds, None]
        return [(edges[i], edges[i + 1]) for i in range(parts)], int(count)

    def list_flights(self, context: Any, criteria: bytes) -> Iterator[flight.FlightInfo]:
        return guarded_stream(self._list_flights())

    def _list_flights(self) -> Iterator[flight.FlightInfo]:
        for entity in self.model.entities.values():
            query = ArrowQuery.compile(entity_root(entity, None))
            descriptor = flight.FlightDescriptor.for_path(entity.list_field)
            ticket = tickets.EntityTicket(entity.list_field).encode()
            yield flight.FlightInfo(query.schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def do_put(self, context: Any, descriptor: flight.FlightDescriptor, reader: flight.MetadataRecordBatchReader,
               writer: flight.FlightMetadataWriter) -> None:
        if _is_sql(descriptor):
            self.sql.do_put(context, descriptor, reader, writer)
            return
        guarded(lambda: self._do_put(descriptor, reader, writer))

    def _do_put(self, descriptor: flight.FlightDescriptor, reader: flight.MetadataRecordBatchReader,
                writer: flight.FlightMetadataWriter) -> None:
        ticket = self.from_descriptor(descriptor)
        if not isinstance(ticket, tickets.EntityTicket):
            raise RequestError("DoPut takes a table: a path descriptor or an entity command")
        entity = self.entity(ticket.entity)
        if not entity.writable:
            raise RequestError(f"{entity.name} is a view; DoPut writes tables")
        try:
            count = ingest(self.pool, entity, reader.to_reader(), self.settings.statement_timeout_ms)
        except IngestError as error:
            raise RequestError(str(error)) from None
        writer.write(pa.py_buffer(orjson.dumps({"rows": count})))

    def do_action(self, context: Any, action: flight.Action) -> Iterator[bytes]:
        if FlightSql.handles_action(action.type):
            return self.sql.do_action(context, action)
        return guarded_stream(self._do_action(action))

    def _do_action(self, action: flight.Action) -> Iterator[bytes]:
        if action.type != "health":
            raise RequestError(f"unknown action {bounded(action.type)!r}; try 'health'")
        try:
            with self.pool.connection() as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
                cursor.fetchall()
                cursor.close()
                conn.rollback()
        except Exception as exc:  # noqa: BLE001 - any failure means the database is not there for us
            status = to_status(exc)
            if not isinstance(status, flight.FlightUnavailableError):
                status = flight.FlightUnavailableError(f"database unavailable: {status}")
            raise status from None
        yield orjson.dumps({"status": "ok", "database": True})

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return [("health", "Checks the database; returns {\"status\": \"ok\"}."), *self.sql.list_actions()]


def _is_sql(descriptor: flight.FlightDescriptor) -> bool:
    """A Flight SQL command (a protobuf ``Any``), not one of Quiver's JSON commands or a path."""
    return descriptor.descriptor_type == flight.DescriptorType.CMD and FlightSql.handles(descriptor.command)


def entity_root(entity: Entity, bounds: tuple[Any, Any] | None) -> nodes.ListRoot:
    """A whole-entity read: every column in table order, optionally one primary-key range."""
    selection = nodes.whole_row(entity)
    where: nodes.Filter | None = None
    if bounds is not None:
        if len(entity.primary_key) != 1:
            raise RequestError("ranges need a single-column primary key")
        pk = entity.columns[entity.primary_key[0]]
        conditions: list[nodes.Filter] = []
        if bounds[0] is not None:
            conditions.append(nodes.Compare(pk, "gte", int(bounds[0])))
        if bounds[1] is not None:
            conditions.append(nodes.Compare(pk, "lt", int(bounds[1])))
        where = nodes.And(tuple(conditions))
    return nodes.ListRoot(entity.list_field, nodes.ListQuery(entity, selection, where))
