"""IpcStream ends a failed Arrow stream in-band, also with dictionary (enum) columns."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest

from quiver.config import Settings
from quiver.errors import UnsupportedValue
from quiver.execute.arrow_plane import ERROR_KEY, IpcStream, error_of

SCHEMA = pa.schema([("id", pa.int64()), ("status", pa.dictionary(pa.int32(), pa.string()))])
LABELS = pa.array(["new", "paid", "shipped"])


def _batch(start: int) -> pa.RecordBatch:
    status = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2], pa.int32()), LABELS)
    return pa.record_batch([pa.array([start, start + 1, start + 2]), status], schema=SCHEMA)


@dataclass(frozen=True)
class _Root:
    key: str


@dataclass
class _Query:
    fail_after: int | None
    root: _Root = _Root("orders")
    schema: pa.Schema = SCHEMA

    def batches(self, _pool: Any, _settings: Settings) -> Generator[pa.RecordBatch, None, None]:
        for index in range(3):
            if index == self.fail_after:
                raise UnsupportedValue("total", "too many digits", row=index * 3)
            yield _batch(index * 3)


def _stream(query: _Query) -> IpcStream:
    return IpcStream(query.root.key, query.schema, query.batches(None, Settings()), None)


def _read(fail_after: int | None) -> tuple[list[pa.RecordBatch], list[dict[str, object] | None]]:
    stream = _stream(_Query(fail_after))
    chunks = [stream.first()]
    while (chunk := stream.next()) is not None:
        chunks.append(chunk)
    stream.close()
    reader = pa.ipc.open_stream(b"".join(chunks))
    batches: list[pa.RecordBatch] = []
    errors: list[dict[str, object] | None] = []
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            return batches, errors
        batches.append(batch)
        errors.append(error_of(metadata))


def test_a_failure_mid_stream_is_the_last_batch() -> None:
    batches, errors = _read(fail_after=2)
    assert [b.num_rows for b in batches] == [3, 3, 0]
    assert errors[:2] == [None, None]
    assert errors[2] == {"message": "column 'total', row 6: too many digits", "path": ["orders"],
                         "extensions": {"code": "UNSUPPORTED_VALUE", "column": "total", "row": 6}}
    assert batches[2].schema == SCHEMA


def test_a_complete_stream_has_no_error() -> None:
    batches, errors = _read(fail_after=None)
    assert [b.num_rows for b in batches] == [3, 3, 3] and errors == [None, None, None]
    assert pa.Table.from_batches(batches).column("status").to_pylist() == ["new", "paid", "shipped"] * 3


def test_a_failure_before_the_first_batch_raises() -> None:
    stream = _stream(_Query(fail_after=0))
    with pytest.raises(UnsupportedValue):
        stream.first()  # nothing sent yet: the HTTP layer answers with a JSON error (422 here)
    stream.close()


def test_the_error_key() -> None:
    assert ERROR_KEY == b"quiver-error"
