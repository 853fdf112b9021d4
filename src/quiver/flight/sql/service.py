"""The Flight SQL handlers Quiver's Flight server delegates to: the narrow interface for wiring.

Statements are stateless (see handles.py): GetFlightInfo describes the query and returns one
endpoint whose ticket carries the signed statement; DoGet runs it read-only. Metadata commands
travel as their own ticket and are answered from pg_catalog.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf.message import Message

from quiver.config import Settings
from quiver.db import AdbcPool
from quiver.flight.sql import protocol
from quiver.flight.sql.catalog import Catalog
from quiver.flight.sql.errors import to_flight
from quiver.flight.sql.handles import HandleError, Signer, Statement
from quiver.flight.sql.protocol import pb
from quiver.flight.sql.query import ReadOnly, TooManyRows
from quiver.flight.sql.results import metadata_schema, metadata_table
from quiver.flight.sql.runs import NOT_CANCELLABLE, Cancelled, Runs
from quiver.flight.status import InvalidArgument

ACTIONS = [
    ("CreatePreparedStatement", "Describes a query; returns a stateless, signed prepared-statement handle."),
    ("ClosePreparedStatement", "Releases a prepared statement (handles are stateless: nothing to release)."),
    ("CancelFlightInfo", "Cancels the PostgreSQL statement a FlightInfo's ticket runs (or will run) here."),
    ("CancelQuery", "The deprecated Flight SQL form of CancelFlightInfo."),
]
CANCELLED_MESSAGE = "the query was cancelled (CancelFlightInfo)"


class FlightSql:
    """Flight SQL over ``pool``; ``secret`` signs statement handles (the same on every replica)."""

    def __init__(self, pool: AdbcPool, settings: Settings, secret: bytes) -> None:
        self.read = ReadOnly(pool, settings.statement_timeout_ms, settings.arrow_batch_bytes)
        self.catalog = Catalog(self.read)
        self.signer = Signer(secret)
        self.runs = Runs()

    # -- routing ------------------------------------------------------------------------
    @staticmethod
    def handles(command: bytes) -> bool:
        """Whether a descriptor's command or a ticket is Flight SQL's (a packed Any), not Quiver's JSON."""
        return protocol.is_flight_sql(command)

    @staticmethod
    def handles_action(action_type: str) -> bool:
        return action_type in {name for name, _ in ACTIONS}

    def list_actions(self) -> list[tuple[str, str]]:
        return list(ACTIONS)

    # -- RPCs ---------------------------------------------------------------------------
    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        try:
            command = protocol.unpack(descriptor.command)
            schema = self._schema(command)
            if isinstance(command, pb.CommandStatementQuery | pb.CommandPreparedStatementQuery):
                ticket = protocol.pack(pb.TicketStatementQuery(statement_handle=self._handle(command)))
            else:
                ticket = descriptor.command
        except Exception as exc:  # noqa: BLE001 - every failure leaves as a clean status
            raise _status(exc) from None
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def get_schema(self, context: Any, descriptor: flight.FlightDescriptor) -> flight.SchemaResult:
        try:
            return flight.SchemaResult(self._schema(protocol.unpack(descriptor.command)))
        except Exception as exc:  # noqa: BLE001
            raise _status(exc) from None

    def do_get(self, context: Any, ticket: flight.Ticket) -> flight.FlightDataStream:
        try:
            command = protocol.unpack(ticket.ticket)
            if isinstance(command, pb.TicketStatementQuery):
                schema, batches = self._run(self.signer.decode(command.statement_handle))
                # GeneratorStream keeps a Flight status raised mid-stream (a record batch reader loses it).
                return flight.GeneratorStream(schema, batches)
            return flight.RecordBatchStream(metadata_table(self.catalog, command))
        except Exception as exc:  # noqa: BLE001
            raise _status(exc) from None

    def do_put(self, context: Any, descriptor: flight.FlightDescriptor, reader: flight.MetadataRecordBatchReader,
               writer: flight.FlightMetadataWriter) -> None:
        """Binds parameters to a prepared query: answers with the handle that now carries them."""
        try:
            command = protocol.unpack(descriptor.command)
            result: Message
            if isinstance(command, pb.CommandStatementUpdate | pb.CommandPreparedStatementUpdate):
                result = pb.DoPutUpdateResult(record_count=self._update(command, reader))
            elif isinstance(command, pb.CommandPreparedStatementQuery):
                statement = self.signer.decode(command.prepared_statement_handle)
                batch = _one_batch(reader.read_all())
                handle = self.signer.encode(Statement(statement.sql, batch, types=statement.types))
                result = pb.DoPutPreparedStatementResult(prepared_statement_handle=handle)
            else:
                raise InvalidArgument("Quiver's Flight SQL is read-only: DoPut binds parameters or runs statements")
        except Exception as exc:  # noqa: BLE001
            raise _status(exc) from None
        writer.write(pa.py_buffer(result.SerializeToString()))

    def _update(self, command: Message, reader: flight.MetadataRecordBatchReader) -> int:
        """An "update" runs read-only like any statement: PostgreSQL refuses a write (SQLSTATE 25006)."""
        if isinstance(command, pb.CommandStatementUpdate):
            if command.transaction_id:
                raise InvalidArgument("Quiver's Flight SQL has no transactions")
            return self.read.update(command.query, None)
        assert isinstance(command, pb.CommandPreparedStatementUpdate)
        statement = self.signer.decode(command.prepared_statement_handle)
        return self.read.update(statement.sql, _one_batch(reader.read_all()), statement.types)

    def do_action(self, context: Any, action: flight.Action) -> Iterator[bytes]:
        try:
            body = action.body.to_pybytes() if action.body is not None else b""
            if action.type == "CreatePreparedStatement":
                request = _request(pb.ActionCreatePreparedStatementRequest, body)
                parameters, types = self.read.parameter_schema(request.query)
                result = pb.ActionCreatePreparedStatementResult(
                    prepared_statement_handle=self.signer.encode(Statement(request.query, types=types)),
                    dataset_schema=self.read.schema(request.query).serialize().to_pybytes(),
                    parameter_schema=parameters.serialize().to_pybytes(),
                )
                return iter([protocol.pack(result)])
            if action.type == "ClosePreparedStatement":
                self.signer.decode(_request(pb.ActionClosePreparedStatementRequest, body).prepared_statement_handle)
                return iter([])
            if action.type in {"CancelFlightInfo", "CancelQuery"}:
                status = pb.ActionCancelQueryResult(result=self._cancel(body))  # type: ignore[arg-type]
                # CancelFlightInfoResult {CancelStatus status = 1} has the same wire form, bare.
                bare = action.type == "CancelFlightInfo"
                return iter([status.SerializeToString() if bare else protocol.pack(status)])
            raise InvalidArgument(f"unknown Flight SQL action {action.type!r}")
        except Exception as exc:  # noqa: BLE001
            raise _status(exc) from None

    # -- helpers --------------------------------------------------------------------------
    def _handle(self, command: Message) -> bytes:
        """The ticket's statement, with a fresh run id for CancelFlightInfo to name."""
        run = secrets.token_hex(16)
        if isinstance(command, pb.CommandStatementQuery):
            if command.transaction_id:
                raise InvalidArgument("Quiver's Flight SQL has no transactions")
            return self.signer.encode(Statement(command.query, run=run))
        assert isinstance(command, pb.CommandPreparedStatementQuery)
        prepared = self.signer.decode(command.prepared_statement_handle)
        return self.signer.encode(Statement(prepared.sql, prepared.parameters, run, prepared.types))

    def _run(self, statement: Statement) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Runs a ticket's statement, registered under its run id while it runs."""
        run = statement.run
        if not run:  # a prepared handle used as a ticket directly: not cancellable by FlightInfo
            schema, batches = self.read.batches(statement.sql, statement.parameters, types=statement.types)
            return schema, _guarded(batches)
        try:
            schema, batches = self.read.batches(statement.sql, statement.parameters,
                                                lambda cancel: self.runs.start(run, cancel), statement.types)
        except BaseException as exc:
            self.runs.finish(run)
            if self.runs.cancelled(run) and not isinstance(exc, Cancelled):
                raise Cancelled(CANCELLED_MESSAGE) from None
            raise
        return schema, self._watched(batches, run)

    def _watched(self, batches: Iterator[pa.RecordBatch], run: str) -> Iterator[pa.RecordBatch]:
        """``batches`` until the run is cancelled: then the stream ends with CANCELLED, not the timeout's status."""
        try:
            for batch in _guarded(batches):
                if self.runs.cancelled(run):
                    break
                yield batch
        except Exception:
            if not self.runs.cancelled(run):
                raise
        finally:
            self.runs.finish(run)
        if self.runs.cancelled(run):
            raise _status(Cancelled(CANCELLED_MESSAGE))

    def _ticket_run(self, ticket: bytes) -> str:
        """The run id in a statement ticket ("" for metadata tickets, which answer at once)."""
        command = protocol.unpack(ticket)
        if isinstance(command, pb.TicketStatementQuery):
            return self.signer.decode(command.statement_handle).run
        return ""

    def _cancel(self, body: bytes) -> int:
        """The cancel status for the FlightInfo in ``body``; each of its statement tickets is cancelled."""
        # CancelFlightInfoRequest {FlightInfo info = 1} and ActionCancelQueryRequest {bytes info = 1}
        # are the same on the wire: a serialized FlightInfo in field 1.
        info = flight.FlightInfo.deserialize(_request(pb.ActionCancelQueryRequest, body).info)
        found = [self._ticket_run(endpoint.ticket.ticket) for endpoint in info.endpoints]
        runs = [run for run in found if run]
        if not runs:
            return NOT_CANCELLABLE
        return min(self.runs.cancel(run) for run in runs)

    def _schema(self, command: Message) -> pa.Schema:
        if isinstance(command, pb.CommandStatementQuery):
            return self.read.schema(command.query)
        if isinstance(command, pb.CommandPreparedStatementQuery):
            return self.read.schema(self.signer.decode(command.prepared_statement_handle).sql)
        return metadata_schema(command)


def _one_batch(table: pa.Table) -> pa.RecordBatch | None:
    return table.combine_chunks().to_batches()[0] if table.num_rows else None


def _request(cls: type[protocol.M], body: bytes) -> protocol.M:
    """An action body: a packed Any per the spec (some clients send the bare message)."""
    if protocol.is_flight_sql(body):
        found = protocol.unpack(body)
        if isinstance(found, cls):
            return found
    return protocol.parse(cls, body)


def _status(exc: BaseException) -> Exception:
    if isinstance(exc, Cancelled):
        cancelled: Exception = flight.FlightCancelledError(str(exc))
        return cancelled
    if isinstance(exc, protocol.ProtocolError | HandleError | TooManyRows):
        return InvalidArgument(str(exc))
    return to_flight(exc)


def _guarded(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except Exception as exc:  # noqa: BLE001 - mid-stream failures leave as clean statuses
        raise to_flight(exc) from None
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
