"""Extension types become plain Arrow types every client reads; uuid becomes canonical text."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from quiver.flight.sql.plain import plain_array, plain_batch, plain_schema, plain_type


def uuids(values: Sequence[uuid.UUID | None]) -> pa.Array:
    storage = pa.array([None if v is None else v.bytes for v in values], pa.binary(16))
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


@given(st.lists(st.one_of(st.none(), st.uuids())), st.integers(0, 5))
def test_uuid_text_is_canonical_even_sliced(values: list[uuid.UUID | None], start: int) -> None:
    array = uuids(values).slice(min(start, len(values)))
    expected = [None if v is None else str(v) for v in values[min(start, len(values)):]]
    assert plain_array(array).to_pylist() == expected


def test_nested_types_lose_their_extensions() -> None:
    json_list = pa.list_(pa.json_(pa.utf8()))
    assert plain_type(json_list) == pa.list_(pa.utf8())
    assert plain_type(pa.struct([("u", pa.uuid())])) == pa.struct([("u", pa.utf8())])
    ids = [uuid.uuid4(), uuid.uuid4()]
    nested = pa.ListArray.from_arrays(pa.array([0, 1, 2]), uuids(ids))
    assert plain_array(nested).to_pylist() == [[str(ids[0])], [str(ids[1])]]


def test_a_batch_keeps_its_field_metadata() -> None:
    schema = pa.schema([pa.field("u", pa.uuid(), metadata={"POSTGRESQL:type": "uuid"}), pa.field("i", pa.int32())])
    batch = pa.RecordBatch.from_arrays([uuids([None]), pa.array([1], pa.int32())], schema=schema)
    plain = plain_schema(schema)
    assert plain.field("u").type == pa.utf8() and plain.field("u").metadata == {b"POSTGRESQL:type": b"uuid"}
    assert plain_batch(batch, plain).to_pylist() == [{"u": None, "i": 1}]
