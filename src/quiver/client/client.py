"""The Python client: GraphQL results from a Quiver server over Arrow Flight.

>>> with Client("grpc://127.0.0.1:8815", token="secret") as quiver:
...     table = quiver.query("{ orders(limit: 10) { id total } }")
...     frame = quiver.to_pandas("{ customers { id name } }")
...     everything = quiver.read_entity("orders")

Results are Arrow: :meth:`Client.query` reads a whole :class:`pyarrow.Table`,
:meth:`Client.stream` hands back a :class:`pyarrow.RecordBatchReader` that reads
batch by batch as the server sends them. pandas and polars are imported only by
:meth:`Client.to_pandas` and :meth:`Client.to_polars`.

Every failure the server reports is raised as a :class:`QuiverError` subclass
carrying the server's message (pyarrow's traceback tail removed).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.flight as flight

from quiver.client.errors import QuiverError, translate_error, translated
from quiver.flight.tickets import EntityTicket, GraphQLTicket

if TYPE_CHECKING:
    import pandas  # type: ignore[import-untyped,unused-ignore]
    import polars

SCHEMES = ("grpc", "grpc+tcp", "grpc+tls")
REUSE_CONNECTION = "arrow-flight-reuse-connection:"


class Client:
    """A connection to a Quiver Flight endpoint: ``grpc://host:port`` or ``grpc+tls://host:port``.

    ``token`` is sent as ``authorization: Bearer <token>`` on every call; ``tls_root_certs``
    (PEM) verifies a server whose certificate is not in the system store; ``timeout``
    (seconds) bounds each call. Thread-safe: calls may run concurrently.
    """

    def __init__(self, url: str, token: str | None = None, *, tls_root_certs: bytes | None = None,
                 timeout: float | None = None) -> None:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in SCHEMES:
            raise ValueError(f"expected a Flight URL like grpc://host:port or grpc+tls://host:port, got {url!r}")
        self.url = url
        self.timeout = timeout
        self._headers: list[tuple[bytes, bytes]] = (
            [(b"authorization", f"Bearer {token}".encode())] if token is not None else []
        )
        self._tls_root_certs = tls_root_certs
        self._others: dict[str, Any] = {}  # clients for endpoints served from other locations
        self._lock = threading.Lock()
        self._closed = False
        with translated():
            self._flight = self._connect(url)

    def _connect(self, url: str) -> Any:
        if self._tls_root_certs is not None:
            return flight.FlightClient(url, tls_root_certs=self._tls_root_certs)
        return flight.FlightClient(url)

    def _options(self) -> Any:
        return flight.FlightCallOptions(headers=self._headers, timeout=self.timeout)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (and any opened for other endpoint locations)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            others, self._others = list(self._others.values()), {}
        for other in others:
            other.close()
        self._flight.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r}{', closed' if self._closed else ''})"

    # -- GraphQL ----------------------------------------------------------------------------------
    @staticmethod
    def _ticket(graphql: str, variables: dict[str, Any] | None, operation_name: str | None,
                compression: str | None) -> bytes:
        return GraphQLTicket(graphql, dict(variables or {}), operation_name, compression).encode()

    def query(self, graphql: str, variables: dict[str, Any] | None = None, *, compression: str | None = None,
              operation_name: str | None = None) -> pa.Table:
        """The whole result of one root field as a table. ``compression``: ``lz4`` or ``zstd`` on the wire."""
        ticket = flight.Ticket(self._ticket(graphql, variables, operation_name, compression))
        with translated():
            return self._flight.do_get(ticket, options=self._options()).read_all()

    def stream(self, graphql: str, variables: dict[str, Any] | None = None, *, compression: str | None = None,
               operation_name: str | None = None) -> pa.RecordBatchReader:
        """The result batch by batch, as the server sends it; nothing is read ahead.

        Errors in the request raise here; errors while streaming raise from the reader.
        Closing the reader early (or dropping it) cancels the call.
        """
        ticket = flight.Ticket(self._ticket(graphql, variables, operation_name, compression))
        with translated():
            reader = self._flight.do_get(ticket, options=self._options())
            schema = reader.schema  # waits for the schema message: request errors surface now
        return pa.RecordBatchReader.from_batches(schema, _batches(reader))

    def schema(self, graphql: str, variables: dict[str, Any] | None = None, *,
               operation_name: str | None = None) -> pa.Schema:
        """The schema :meth:`query` would return (GetSchema; no rows are read)."""
        command = self._ticket(graphql, variables, operation_name, None)
        with translated():
            return self._flight.get_schema(flight.FlightDescriptor.for_command(command), options=self._options()).schema

    def to_pandas(self, graphql: str, variables: dict[str, Any] | None = None, **kw: Any) -> pandas.DataFrame:
        """The result as a pandas DataFrame; Arrow-backed dtypes (``pd.ArrowDtype``) unless ``types_mapper`` is given.

        Other keywords go to :meth:`pyarrow.Table.to_pandas`.
        """
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]

        table = self.query(graphql, variables)
        kw.setdefault("types_mapper", pd.ArrowDtype)
        frame: pandas.DataFrame = table.to_pandas(**kw)
        return frame

    def to_polars(self, graphql: str, variables: dict[str, Any] | None = None) -> polars.DataFrame:
        """The result as a polars DataFrame."""
        import polars as pl

        frame = pl.from_arrow(self.query(graphql, variables))
        assert isinstance(frame, pl.DataFrame)
        return frame

    # -- whole tables -------------------------------------------------------------------------------
    def read_entity(self, name: str, *, parallel: bool = True, max_workers: int | None = None,
                    compression: str | None = None) -> pa.Table:
        """Every row and column of a table or view (name as in GraphQL: ``orders``, ``orderItems``).

        GetFlightInfo hands out primary-key-range endpoints; they are read concurrently
        (``parallel``) and concatenated in endpoint order.
        """
        if compression is None:
            descriptor = flight.FlightDescriptor.for_path(name)
        else:
            descriptor = flight.FlightDescriptor.for_command(EntityTicket(name, None, compression).encode())
        with translated():
            info = self._flight.get_flight_info(descriptor, options=self._options())
        endpoints = list(info.endpoints)
        if parallel and len(endpoints) > 1:
            with ThreadPoolExecutor(max_workers=max_workers or len(endpoints),
                                    thread_name_prefix="quiver-read") as pool:
                tables = list(pool.map(self._read_endpoint, endpoints))
        else:
            tables = [self._read_endpoint(endpoint) for endpoint in endpoints]
        if not tables:
            return info.schema.empty_table()
        with translated():
            return pa.concat_tables(tables)

    def _read_endpoint(self, endpoint: Any) -> pa.Table:
        with translated():
            client = self._client_for(endpoint)
            return client.do_get(endpoint.ticket, options=self._options()).read_all()

    def _client_for(self, endpoint: Any) -> Any:
        """Flight's rule: no location (or the reuse-connection URI) means this connection."""
        uris = [_text(location.uri) for location in endpoint.locations]
        if not uris or any(uri.startswith(REUSE_CONNECTION) for uri in uris):
            return self._flight
        uri = uris[0]
        with self._lock:
            client = self._others.get(uri)
            if client is None:
                client = self._others[uri] = self._connect(uri)
            return client

    def entities(self) -> list[str]:
        """The tables and views the server offers (ListFlights), by GraphQL list name."""
        with translated():
            return [_text(info.descriptor.path[0]) for info in self._flight.list_flights(options=self._options())]

    def health(self) -> dict[str, Any]:
        """The server's health report, e.g. ``{"status": "ok", "database": True}``."""
        with translated():
            results = list(self._flight.do_action(flight.Action("health", b""), options=self._options()))
        if not results:
            raise QuiverError("the server answered the health action with no result")
        report: dict[str, Any] = json.loads(results[0].body.to_pybytes())
        return report

    # -- writing ---------------------------------------------------------------------------------------
    def ingest(self, entity: str, table: pa.Table | pa.RecordBatchReader) -> int:
        """Insert rows into a table (DoPut); returns the number of rows the server inserted.

        Columns match by GraphQL field name or column name. All or nothing: one transaction.
        A :class:`pyarrow.RecordBatchReader` is sent batch by batch.
        """
        descriptor = flight.FlightDescriptor.for_path(entity)
        with translated():
            writer, metadata = self._flight.do_put(descriptor, table.schema, options=self._options())
            try:
                if isinstance(table, pa.RecordBatchReader):
                    for batch in table:
                        writer.write_batch(batch)
                else:
                    writer.write_table(table)
                writer.done_writing()
                answer = metadata.read()
            finally:
                writer.close()  # raises the server's error, if any
        if answer is None:
            raise QuiverError("the server sent no PutResult for the ingest")
        try:
            rows = json.loads(answer.to_pybytes())["rows"]
        except (ValueError, KeyError, TypeError) as error:
            raise QuiverError(f"unexpected PutResult metadata: {answer.to_pybytes()!r}") from error
        return int(rows)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _batches(reader: Any) -> Generator[pa.RecordBatch, None, None]:
    """A Flight stream's record batches, with errors as QuiverErrors; cancels the call if abandoned."""
    finished = False
    try:
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                finished = True
                return
            except (pa.ArrowException, OSError) as error:
                finished = True
                raise translate_error(error) from None
            if chunk.data is not None:
                yield chunk.data
    finally:
        if not finished:
            with suppress(pa.ArrowException, OSError):
                reader.cancel()
