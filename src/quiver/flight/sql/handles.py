"""Stateless statement handles: the SQL and bound parameters themselves, signed with HMAC-SHA256.

Any server holding the secret can run a handle, so clients need no sticky sessions and the server
keeps no per-statement state; the signature stops a client from running SQL it forged into one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson
import pyarrow as pa

VERSION = b"q1"
_DIGEST = hashlib.sha256().digest_size


class HandleError(ValueError):
    """A handle this server did not sign (or signed with another secret)."""


@dataclass(frozen=True)
class Statement:
    """A query, once DoPut bound them its parameter rows, and in a ticket the run id CancelFlightInfo names."""

    sql: str
    parameters: pa.RecordBatch | None = None
    run: str = ""
    types: tuple[str, ...] = ()  # the parameters' SQL types, as PostgreSQL inferred them at prepare


def _ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def _batch(data: bytes) -> pa.RecordBatch:
    table = pa.ipc.open_stream(data).read_all()
    return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], table.schema)


class Signer:
    """Encodes statements as signed handles and decodes only handles it signed."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the Flight SQL handle secret needs at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, VERSION + payload, hashlib.sha256).digest()

    def encode(self, statement: Statement) -> bytes:
        body: dict[str, str | list[str]] = {"sql": statement.sql}
        if statement.parameters is not None:
            body["parameters"] = base64.b64encode(_ipc(statement.parameters)).decode()
        if statement.run:
            body["run"] = statement.run
        if statement.types:
            body["types"] = list(statement.types)
        payload = orjson.dumps(body)
        return VERSION + self._mac(payload) + payload

    def decode(self, handle: bytes) -> Statement:
        if not handle.startswith(VERSION) or len(handle) < len(VERSION) + _DIGEST:
            raise HandleError("not a Quiver Flight SQL statement handle")
        mac, payload = handle[len(VERSION):len(VERSION) + _DIGEST], handle[len(VERSION) + _DIGEST:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise HandleError("statement handle signature does not match (another server secret?)")
        body = orjson.loads(payload)
        parameters = body.get("parameters")
        batch = None if parameters is None else _batch(base64.b64decode(parameters))
        return Statement(body["sql"], batch, str(body.get("run", "")), tuple(body.get("types", ())))
