"""Run a planned GraphQL operation and produce the JSON response body.

Queries stream: one ADBC read transaction, one statement per root field, each
batch's JSON text forwarded as it arrives, so server memory stays flat however
large the result. Mutations run in one psycopg transaction and are small.
Errors raised before the first byte become an ordinary GraphQL error response;
a failure mid-stream closes the JSON and appends ``errors``. CPU work (introspection
by graphql-core and its serialisation) runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    SelectionSetNode,
    execute,
)

from quiver.config import Settings
from quiver.db import Database
from quiver.errors import database_error, http_status
from quiver.execute.session import ReadSession
from quiver.plan import nodes
from quiver.plan.build import Prepared
from quiver.sql.json import SESSION_SETTINGS, Statement, compile_root
from quiver.sql.mutations import compile_mutation
from quiver.sql.params import BadValue, PlaceholderParams, SettingParams


@dataclass
class Result:
    """What the HTTP layer sends: a status and a body (bytes or a byte stream)."""

    status: int
    body: bytes | AsyncIterator[bytes]
    errors: list[GraphQLError] = field(default_factory=list)


def error_body(errors: list[GraphQLError], data_null: bool = True) -> bytes:
    payload: dict[str, Any] = {"errors": [e.formatted for e in errors]}
    if data_null:
        payload["data"] = None
    return orjson.dumps(payload)


def _failure(error: GraphQLError) -> Result:
    return Result(http_status(error), error_body([error]), [error])


def _root_nodes(prepared: Prepared) -> dict[str, list[FieldNode]]:
    found: dict[str, list[FieldNode]] = {}
    for selection in prepared.executor.operation.selection_set.selections:
        if isinstance(selection, FieldNode):
            key = (selection.alias or selection.name).value
            found.setdefault(key, []).append(selection)
    return found


def _introspect(schema: GraphQLSchema, prepared: Prepared) -> tuple[dict[str, bytes], list[GraphQLError]]:
    fields = [n for r in prepared.operation.roots if isinstance(r, nodes.IntrospectionRoot) for n in r.field_nodes]
    op = prepared.executor.operation
    only = OperationDefinitionNode(
        operation=op.operation, name=op.name, variable_definitions=op.variable_definitions,
        directives=op.directives, selection_set=SelectionSetNode(selections=tuple(fields)),
    )
    others = tuple(d for d in prepared.document.definitions if not isinstance(d, OperationDefinitionNode))
    result = execute(schema, DocumentNode(definitions=(only, *others)), variable_values=dict(prepared.variables))
    assert isinstance(result, ExecutionResult)
    return {k: orjson.dumps(v) for k, v in (result.data or {}).items()}, list(result.errors or [])


async def introspect(schema: GraphQLSchema, prepared: Prepared) -> tuple[dict[str, bytes], list[GraphQLError]]:
    """The ``__schema``/``__type`` roots as JSON by graphql-core (no database), in a worker thread."""
    if not any(isinstance(r, nodes.IntrospectionRoot) for r in prepared.operation.roots):
        return {}, []
    return await anyio.to_thread.run_sync(_introspect, schema, prepared)


class QueryRun:
    """Streams one query operation."""

    def __init__(self, db: Database, settings: Settings, schema: GraphQLSchema, prepared: Prepared) -> None:
        self.db = db
        self.settings = settings
        self.schema = schema
        self.prepared = prepared
        self.nodes = _root_nodes(prepared)
        self.session = ReadSession(db.adbc, timeout_ms=settings.statement_timeout_ms,
                                   batch_bytes=settings.batch_bytes)
        self.statements: dict[str, Statement] = {}
        self.first: bytes | None = None
        self.first_key: str | None = None
        self.introspected: dict[str, bytes] = {}

    async def start(self) -> Result:
        """Do everything that can fail cleanly before the response starts."""
        introspected, errors = await introspect(self.schema, self.prepared)
        if errors:
            return Result(200, error_body(errors), errors)
        self.introspected = introspected
        params = SettingParams()
        key = ""
        try:
            for root in self.prepared.operation.roots:
                if not isinstance(root, nodes.TypenameRoot | nodes.IntrospectionRoot):
                    key = root.key
                    self.statements[key] = compile_root(root, params)
        except BadValue as error:
            bad = GraphQLError(error.message, extensions={"code": "BAD_USER_INPUT"})
            return Result(200, error_body([bad]), [bad])
        except Exception as exc:  # noqa: BLE001 - a bug in compiling: INTERNAL, with an error id
            return _failure(database_error(exc, self.nodes.get(key), [key]))
        if self.statements:
            first_key = self.first_key = next(iter(self.statements))
            try:
                await anyio.to_thread.run_sync(self.session.begin, params.settings)
                self.first = await self._open(first_key)
            except Exception as exc:  # noqa: BLE001 - every database failure becomes a GraphQL error
                await anyio.to_thread.run_sync(self.session.end)
                return _failure(database_error(exc, self.nodes.get(first_key), [first_key]))
        return Result(200, self._body())

    async def _open(self, key: str) -> bytes | None:
        statement = self.statements[key]
        sql = statement.sql
        if statement.shape == "rows":
            sql = f"SELECT j || ',' FROM ({sql}) AS q(j)"
        await anyio.to_thread.run_sync(self.session.stream, sql)
        return await anyio.to_thread.run_sync(self.session.next_chunk)

    async def _body(self) -> AsyncIterator[bytes]:
        key = ""
        in_list = False
        try:
            yield b'{"data":{'
            for index, root in enumerate(self.prepared.operation.roots):
                key = root.key
                prefix = (b"," if index else b"") + orjson.dumps(key) + b":"
                if isinstance(root, nodes.TypenameRoot):
                    yield prefix + orjson.dumps(root.type_name)
                    continue
                if isinstance(root, nodes.IntrospectionRoot):
                    yield prefix + self.introspected.get(key, b"null")
                    continue
                chunk = self.first if key == self.first_key else await self._open(key)
                if self.statements[key].shape != "rows":
                    while not chunk and chunk is not None:  # skip empty batches
                        chunk = await anyio.to_thread.run_sync(self.session.next_chunk)
                    yield prefix + (chunk or b"null")
                    while chunk is not None:
                        chunk = await anyio.to_thread.run_sync(self.session.next_chunk)
                    continue
                yield prefix + b"["
                in_list = True
                separator = b""
                while chunk is not None:
                    if chunk:
                        yield separator + chunk[:-1]
                        separator = b","
                    chunk = await anyio.to_thread.run_sync(self.session.next_chunk)
                yield b"]"
                in_list = False
            yield b"}}"
        except Exception as exc:  # noqa: BLE001 - the response has started; close it with the error
            error = database_error(exc, self.nodes.get(key), [key])
            yield (b"]" if in_list else b"") + b'},"errors":' + orjson.dumps([error.formatted]) + b"}"
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.session.cancel)
                await anyio.to_thread.run_sync(self.session.end)


async def run_mutation(db: Database, settings: Settings, schema: GraphQLSchema, prepared: Prepared) -> Result:
    """All mutation roots in one transaction; any failure rolls back the whole request."""
    root_nodes = _root_nodes(prepared)
    introspected, errors = await introspect(schema, prepared)
    if errors:
        return Result(200, error_body(errors), errors)
    values: list[tuple[str, bytes]] = []
    key = ""
    try:
        async with db.psycopg.connection() as conn, conn.transaction():
            pairs = [*SESSION_SETTINGS, ("statement_timeout", str(settings.statement_timeout_ms))]
            for name, value in pairs:
                await conn.execute("SELECT set_config(%s, %s, true)", (name, value))
            for root in prepared.operation.roots:
                key = root.key
                if isinstance(root, nodes.TypenameRoot):
                    values.append((key, orjson.dumps(root.type_name)))
                elif isinstance(root, nodes.IntrospectionRoot):
                    values.append((key, introspected.get(key, b"null")))
                else:
                    params = PlaceholderParams()
                    statement = compile_mutation(root, params)
                    cursor = await conn.execute(PlaceholderParams.render(statement.sql), params.values)
                    row = await cursor.fetchone()
                    values.append((key, row[0].encode() if row and row[0] is not None else b"null"))
    except BadValue as error:
        bad = GraphQLError(error.message, root_nodes.get(key), path=[key], extensions={"code": "BAD_USER_INPUT"})
        return Result(200, error_body([bad]), [bad])
    except Exception as exc:  # noqa: BLE001 - classified: database codes, outages, else INTERNAL
        return _failure(database_error(exc, root_nodes.get(key), [key]))
    body = b'{"data":{' + b",".join(orjson.dumps(k) + b":" + v for k, v in values) + b"}}"
    return Result(200, body)
