"""Arrow Flight server: the same plans as HTTP, streamed as Arrow record batches.

DoGet takes GraphQL or entity tickets; GetSchema answers with exactly the schema
DoGet will carry; GetFlightInfo hands out primary-key-range endpoints for
whole-entity reads; ListFlights lists one dataset per table or view; DoPut ingests
an Arrow stream with INSERT (so triggers fire); DoAction offers ``health``.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.flight as flight
from graphql import GraphQLSchema

from quiver.arrow.events import EVENT_SCHEMA
from quiver.auth import BearerMiddlewareFactory
from quiver.config import Settings
from quiver.db import AdbcPool
from quiver.errors import code_for, database_error, sqlstate_of
from quiver.events import bus
from quiver.execute.arrow_plane import ArrowQuery, ArrowRequestError, data_root
from quiver.flight import tickets
from quiver.flight.events import event_batches
from quiver.flight.ingest import IngestError, ingest
from quiver.flight.tickets import EventsTicket
from quiver.plan import nodes
from quiver.plan.build import PlanError, prepare
from quiver.schema.model import Entity, Kind, Model
from quiver.sql.params import BadValue

_STATUS: dict[str, type[Exception]] = {
    "STATEMENT_TIMEOUT": flight.FlightTimedOutError,
    "DATABASE_UNAVAILABLE": flight.FlightUnavailableError,
    "BAD_USER_INPUT": pa.ArrowInvalid,
    "CONSTRAINT_VIOLATION": pa.ArrowInvalid,
    "FORBIDDEN": flight.FlightUnauthorizedError,
}


def flight_error(exc: BaseException) -> Exception:
    """A database failure as the Flight status a client can act on."""
    status = _STATUS.get(code_for(sqlstate_of(exc)), flight.FlightInternalError)
    error: Exception = status(database_error(exc).message)
    return error


class QuiverFlightServer(flight.FlightServerBase):  # type: ignore[misc]
    def __init__(self, settings: Settings, schema: GraphQLSchema, model: Model, pool: AdbcPool) -> None:
        assert settings.flight_port is not None
        scheme = "grpc+tls" if settings.tls_cert else "grpc"
        self.location = f"{scheme}://{settings.host}:{settings.flight_port}"
        certificates = []
        if settings.tls_cert and settings.tls_key:
            with open(settings.tls_cert, "rb") as cert, open(settings.tls_key, "rb") as key:
                certificates.append(flight.CertKeyPair(cert.read(), key.read()))
        super().__init__(self.location, tls_certificates=certificates,
                         middleware={"auth": BearerMiddlewareFactory(settings.tokens)})
        self.settings = settings
        self.schema = schema
        self.model = model
        self.pool = pool
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve, name="quiver-flight", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- resolving requests -----------------------------------------------------------
    def entity(self, name: str) -> Entity:
        """The entity a path or ticket names: its list field (what ListFlights gives, unique), else its type
        name (unique), else a table name (another schema's table or a renamed table may share it)."""
        for key in ("list_field", "type_name", "name"):
            for entity in self.model.entities.values():
                if getattr(entity, key) == name:
                    return entity
        raise KeyError(f"no table or view named {name!r}")

    def resolve(self, ticket: Any) -> ArrowQuery:
        try:
            if isinstance(ticket, tickets.GraphQLTicket):
                prepared = prepare(self.schema, ticket.query, ticket.variables, ticket.operation_name,
                                   self.settings.limits())
                return ArrowQuery.compile(data_root(prepared.operation))
            return ArrowQuery.compile(entity_root(self.entity(ticket.entity), ticket.range))
        except PlanError as error:
            raise pa.ArrowInvalid("; ".join(e.message for e in error.errors)) from None
        except (ArrowRequestError, BadValue, tickets.TicketError) as error:
            raise pa.ArrowInvalid(str(error)) from None
        except KeyError as error:
            raise KeyError(f"not found: {error.args[0]}") from None

    def from_descriptor(self, descriptor: flight.FlightDescriptor) -> Any:
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            if len(descriptor.path) != 1:
                raise pa.ArrowInvalid("a path descriptor names one table or view")
            return tickets.EntityTicket(descriptor.path[0].decode())
        try:
            return tickets.parse(descriptor.command)
        except tickets.TicketError as error:
            raise pa.ArrowInvalid(str(error)) from None

    # -- RPCs ---------------------------------------------------------------------------
    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        try:
            parsed = tickets.parse(ticket.ticket)
        except tickets.TicketError as error:
            raise pa.ArrowInvalid(str(error)) from None
        options = pa.ipc.IpcWriteOptions(compression=parsed.compression)
        if isinstance(parsed, EventsTicket):
            topology = bus.Topology(self.settings.events_namespace)
            stream = event_batches(self.settings.nats_url, topology, parsed.entity, parsed.from_seq, parsed.follow)
            return flight.RecordBatchStream(pa.RecordBatchReader.from_batches(EVENT_SCHEMA, stream), options=options)
        query = self.resolve(parsed)
        # RecordBatchStream (unlike GeneratorStream) writes dictionary batches for enum columns.
        reader = pa.RecordBatchReader.from_batches(query.schema, self._guarded(query))
        return flight.RecordBatchStream(reader, options=options)

    def _guarded(self, query: ArrowQuery) -> Generator[pa.RecordBatch, None, None]:
        batches = query.batches(self.pool, self.settings)
        try:
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                except Exception as exc:  # noqa: BLE001 - mapped to a Flight status
                    raise flight_error(exc) from None
                yield batch
        finally:
            batches.close()  # a client that went away cancels the PostgreSQL statement

    def get_schema(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.SchemaResult:
        ticket = self.from_descriptor(descriptor)
        if isinstance(ticket, EventsTicket):
            return flight.SchemaResult(EVENT_SCHEMA)
        return flight.SchemaResult(self.resolve(ticket).schema)

    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        ticket = self.from_descriptor(descriptor)
        if isinstance(ticket, EventsTicket):
            endpoint = flight.FlightEndpoint(ticket.encode(), [])
            return flight.FlightInfo(EVENT_SCHEMA, descriptor, [endpoint], -1, -1)
        query = self.resolve(ticket)
        if isinstance(ticket, tickets.EntityTicket) and ticket.range is None:
            entity = self.entity(ticket.entity)
            ranges, total = self.partitions(entity)
            endpoints = [
                flight.FlightEndpoint(tickets.EntityTicket(ticket.entity, r, ticket.compression).encode(), [])
                for r in ranges
            ]
            return flight.FlightInfo(query.schema, descriptor, endpoints, total, -1)
        ticket_bytes = ticket.encode()
        return flight.FlightInfo(query.schema, descriptor, [flight.FlightEndpoint(ticket_bytes, [])], -1, -1)

    def partitions(self, entity: Entity) -> tuple[list[tuple[Any, Any] | None], int]:
        """Contiguous primary-key ranges of about equal size, and the exact row count."""
        pk = entity.primary_key
        conn = self.pool.acquire()
        ok = False
        try:
            cursor = conn.cursor()
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
        except Exception as exc:  # noqa: BLE001
            raise flight_error(exc) from None
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
        for entity in self.model.entities.values():
            query = ArrowQuery.compile(entity_root(entity, None))
            descriptor = flight.FlightDescriptor.for_path(entity.list_field)
            ticket = tickets.EntityTicket(entity.list_field).encode()
            yield flight.FlightInfo(query.schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def do_put(self, context: Any, descriptor: flight.FlightDescriptor, reader: flight.MetadataRecordBatchReader,
               writer: flight.FlightMetadataWriter) -> None:
        ticket = self.from_descriptor(descriptor)
        if not isinstance(ticket, tickets.EntityTicket):
            raise pa.ArrowInvalid("DoPut takes a table: a path descriptor or an entity command")
        try:
            entity = self.entity(ticket.entity)
        except KeyError as error:
            raise KeyError(f"not found: {error.args[0]}") from None
        if not entity.writable:
            raise pa.ArrowInvalid(f"{entity.name} is a view; DoPut writes tables")
        try:
            count = ingest(self.pool, entity, reader.to_reader(), self.settings.statement_timeout_ms)
        except IngestError as error:
            raise pa.ArrowInvalid(str(error)) from None
        except Exception as exc:  # noqa: BLE001
            raise flight_error(exc) from None
        writer.write(pa.py_buffer(orjson.dumps({"rows": count})))

    def do_action(self, context: Any, action: flight.Action) -> Iterator[bytes]:
        if action.type == "health":
            conn = self.pool.acquire()
            ok = False
            try:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
                cursor.fetchall()
                cursor.close()
                conn.rollback()
                ok = True
            except Exception as exc:  # noqa: BLE001
                raise flight.FlightUnavailableError(f"database unavailable: {exc}") from None
            finally:
                self.pool.release(conn, ok)
            yield orjson.dumps({"status": "ok", "database": True})
            return
        raise pa.ArrowInvalid(f"unknown action {action.type!r}; try 'health'")

    def list_actions(self, context: Any) -> list[tuple[str, str]]:
        return [("health", "Checks the database; returns {\"status\": \"ok\"}.")]


def entity_root(entity: Entity, bounds: tuple[Any, Any] | None) -> nodes.ListRoot:
    """A whole-entity read: every column in table order, optionally one primary-key range."""
    selection = tuple(nodes.ScalarOut(c.field_name, c) for c in entity.columns.values())
    where: nodes.Filter | None = None
    if bounds is not None:
        if len(entity.primary_key) != 1:
            raise pa.ArrowInvalid("ranges need a single-column primary key")
        pk = entity.columns[entity.primary_key[0]]
        conditions: list[nodes.Filter] = []
        if bounds[0] is not None:
            conditions.append(nodes.Compare(pk, "gte", int(bounds[0])))
        if bounds[1] is not None:
            conditions.append(nodes.Compare(pk, "lt", int(bounds[1])))
        where = nodes.And(tuple(conditions))
    return nodes.ListRoot(entity.list_field, nodes.ListQuery(entity, selection, where))
