"""Run one planned query root and yield Arrow record batches in its promised schema.

Shared by Arrow Flight and Arrow over HTTP. Everything here blocks: Flight calls
it from gRPC threads, HTTP from a worker thread. Batches are read from ADBC's
binary COPY stream and converted one at a time; the result is never held whole.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import pyarrow as pa
from graphql import GraphQLError

from quiver.arrow.convert import Convert, conform, converters
from quiver.config import Settings
from quiver.db import AdbcPool
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


def graphql_error_text(errors: list[GraphQLError]) -> str:
    return "; ".join(e.message for e in errors)
