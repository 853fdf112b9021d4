"""Run one planned query root and yield Arrow record batches in its promised schema.

Shared by Arrow Flight and Arrow over HTTP. Everything here blocks: Flight calls
it from gRPC threads, HTTP from a worker thread. Batches are read from ADBC's
binary COPY stream and converted one at a time; the result is never held whole.
``IpcStream`` is Arrow over HTTP's encoding: HTTP has no status left to give once the
body started, so a failure after the first batch ends the IPC stream in-band.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import orjson
import pyarrow as pa
from graphql import GraphQLError

from quiver.arrow.convert import Convert, conform, converters
from quiver.config import Settings
from quiver.db import AdbcPool
from quiver.errors import database_error
from quiver.execute.session import ReadSession
from quiver.plan import nodes
from quiver.sql.columns import compile_root
from quiver.sql.params import SettingParams


class ArrowRequestError(Exception):
    """The request has no Arrow form (e.g. several root fields)."""


def data_root(operation: nodes.Operation) -> nodes.Root:
    """The single root field an Arrow result carries."""
    if operation.kind != "query":
        raise ArrowRequestError("Arrow results answer queries; send mutations as JSON")
    roots = [r for r in operation.roots if isinstance(r, nodes.ListRoot | nodes.OneRoot | nodes.AggregateRoot)]
    others = [r for r in operation.roots if r not in roots]
    if len(roots) != 1 or others:
        raise ArrowRequestError("an Arrow result carries exactly one root field (a list, by-key or aggregate); "
                                "send one request per root field")
    return roots[0]


@dataclass
class ArrowQuery:
    """One root field, compiled: its schema is known before any row is read."""

    root: nodes.Root
    schema: pa.Schema
    plan: tuple[Convert, ...]
    sql: str
    settings: list[tuple[str, str]]

    @classmethod
    def compile(cls, root: nodes.Root) -> ArrowQuery:
        params = SettingParams()
        sql = compile_root(root, params)
        schema, plan = converters(root)
        return cls(root, schema, plan, sql, params.settings)

    def batches(self, pool: AdbcPool, settings: Settings) -> Generator[pa.RecordBatch, None, None]:
        """Stream the result; closing the iterator early cancels the statement."""
        session = ReadSession(pool, timeout_ms=settings.statement_timeout_ms, batch_bytes=settings.arrow_batch_bytes)
        finished = False
        try:
            session.begin(self.settings)
            session.stream(self.sql)
            while (batch := session.next_batch()) is not None:
                if batch.num_rows:
                    yield conform(batch, self.schema, self.plan)
            finished = True
        finally:
            if not finished:
                session.cancel()
            session.end()


ERROR_KEY = b"quiver-error"  # custom metadata key of the empty batch that ends a failed stream


class _Chunks:
    """A write-only file for the IPC writer; the bytes written so far are taken after each batch."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


class IpcStream:
    """Batches as one Arrow IPC stream, one chunk per batch; every method blocks (run it in a worker thread).

    ``first()`` may raise: nothing was sent yet, so the caller answers with an ordinary
    error. After that ``next()`` never raises: a failure becomes a last, empty record batch
    whose custom metadata ``quiver-error`` is the GraphQL error as JSON (``message``,
    ``path``, ``extensions.code``), followed by the end-of-stream marker.
    """

    def __init__(self, key: str, schema: pa.Schema, batches: Generator[pa.RecordBatch, None, None],
                 compression: str | None) -> None:
        self.key = key
        self.batches = batches
        self.sink = _Chunks()
        self.writer = pa.ipc.new_stream(self.sink, schema, options=pa.ipc.IpcWriteOptions(compression=compression))
        self.template: pa.RecordBatch | None = None  # zero rows, the dictionaries already sent
        self.done = False

    def first(self) -> bytes:
        """The schema and the first batch (or the whole stream when it is empty)."""
        return self._encode(next(self.batches, None))

    def next(self) -> bytes | None:
        """The next chunk; None after the end of the stream."""
        if self.done:
            return None
        try:
            return self._encode(next(self.batches, None))
        except Exception as exc:  # noqa: BLE001 - the body has started: the error travels in-band
            self.done = True
            error = database_error(exc, path=[self.key])
            return self.failed(orjson.dumps(error.formatted))

    def failed(self, error_json: bytes) -> bytes:
        """End the stream with ``error_json`` on an empty batch (the same dictionaries: no replacement)."""
        assert self.template is not None
        self.writer.write_batch(self.template, custom_metadata={ERROR_KEY: error_json})
        self.writer.close()
        return self.sink.take()

    def _encode(self, batch: pa.RecordBatch | None) -> bytes:
        if batch is None:
            self.done = True
            self.writer.close()
        else:
            self.writer.write_batch(batch)
            self.template = batch.slice(0, 0)
        return self.sink.take()

    def close(self) -> None:
        """Stop reading: cancels the statement if it still runs, gives the connection back."""
        self.batches.close()


def error_of(metadata: pa.KeyValueMetadata | None) -> dict[str, object] | None:
    """The GraphQL error an in-band final batch carries, for readers of the stream."""
    if metadata is None or ERROR_KEY not in metadata:
        return None
    found: dict[str, object] = orjson.loads(metadata[ERROR_KEY])
    return found


def graphql_error_text(errors: list[GraphQLError]) -> str:
    return "; ".join(e.message for e in errors)
