"""Batches as ADBC reads them -> batches in exactly the schema ``arrow.types`` promises.

Most columns already arrive in their final type. The rest are converted with Arrow
compute kernels (numeric text -> decimal128, enum labels -> dictionary indices) and
nested relations, which arrive as JSON lines, are parsed by Arrow's JSON reader
with an explicit schema. Only nested bytea (base64) takes a Python loop.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from quiver.arrow.types import ENUM_INDEX, root_schema, transport_type
from quiver.plan import nodes
from quiver.schema.model import Kind


@dataclass(frozen=True)
class Convert:
    """How to turn one arriving array into its final type (a tree for structs and lists)."""

    target: pa.DataType
    labels: pa.Array | None = None  # enum labels, for dictionary targets
    base64: bool = False  # nested bytea arrives as base64 text
    children: tuple[Convert, ...] = field(default=())
    nested_json: bool = False  # the column arrives as `{"v": ...}` JSON lines


def _leaf(column_type: pa.DataType, kind: Kind, labels: tuple[str, ...], nested: bool) -> Convert:
    def one(target: pa.DataType) -> Convert:
        if pa.types.is_dictionary(target):
            return Convert(target, labels=pa.array(labels, pa.string()))
        return Convert(target, base64=nested and kind is Kind.BYTEA)

    if pa.types.is_list(column_type):
        return Convert(column_type, children=(one(column_type.value_type),))
    return one(column_type)


def _selection(selection: nodes.Selection, struct: pa.DataType, nested: bool) -> tuple[Convert, ...]:
    result = []
    for out, child in zip(selection, struct, strict=True):
        result.append(_output(out, child.type, nested))
    return tuple(result)


def _output(out: nodes.Output, final: pa.DataType, nested: bool) -> Convert:
    if isinstance(out, nodes.ScalarOut):
        return _leaf(final, out.column.type.kind, out.column.type.enum_labels, nested)
    if isinstance(out, nodes.ObjectOut):
        return Convert(final, children=_selection(out.selection, final, True), nested_json=not nested)
    if isinstance(out, nodes.ListOut):
        item = Convert(final.value_type, children=_selection(out.query.selection, final.value_type, True))
        return Convert(final, children=(item,), nested_json=not nested)
    return Convert(final)


def converters(root: nodes.Root, schema: pa.Schema | None = None) -> tuple[pa.Schema, tuple[Convert, ...]]:
    """The final schema of ``root`` and how to produce each of its columns."""
    schema = schema or root_schema(root)
    if isinstance(root, nodes.ListRoot):
        selection: nodes.Selection = root.query.selection
    elif isinstance(root, nodes.OneRoot):
        selection = root.selection
    else:
        return schema, tuple(Convert(f.type) for f in schema)
    return schema, tuple(_output(out, f.type, False) for out, f in zip(selection, schema, strict=True))


def conform(batch: pa.RecordBatch, schema: pa.Schema, plan: tuple[Convert, ...]) -> pa.RecordBatch:
    arrays = [convert(batch.column(i), c) for i, c in enumerate(plan)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def convert(array: pa.Array, plan: Convert) -> pa.Array:
    if plan.nested_json:
        array = _parse_json_lines(array, plan.target)
    target = plan.target
    if pa.types.is_struct(target):
        children = [convert(array.field(i), child) for i, child in enumerate(plan.children)]
        return pa.StructArray.from_arrays(children, fields=list(target), mask=_mask(array))
    if pa.types.is_list(target):
        if array.offset:
            array = pa.concat_arrays([array])
        offsets = pc.subtract(array.offsets, array.offsets[0])
        values = convert(array.flatten(), plan.children[0])
        return pa.ListArray.from_arrays(offsets, values, type=target, mask=_mask(array))
    if plan.labels is not None:
        indices = pc.cast(pc.index_in(array, value_set=plan.labels), ENUM_INDEX)
        return pa.DictionaryArray.from_arrays(indices, plan.labels)
    if plan.base64:
        return pa.array([None if v is None else base64.b64decode(v) for v in array.to_pylist()], pa.binary())
    if array.type.equals(target):
        return array
    return pc.cast(array, target)


def _mask(array: pa.Array) -> pa.Array | None:
    return pc.is_null(array) if array.null_count else None


def _parse_json_lines(array: pa.Array, final: pa.DataType) -> pa.Array:
    """`{"v": ...}` lines (one per row, back to back in the value buffer) -> the transport array."""
    wanted = transport_type(final)
    if len(array) == 0:
        return pa.array([], wanted)
    data = concatenated_text(array)
    table = pa_json.read_json(
        io.BytesIO(data),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20)),
        parse_options=pa_json.ParseOptions(explicit_schema=pa.schema([pa.field("v", wanted)])),
    )
    column = table.column("v").combine_chunks()
    if len(column) != len(array):
        raise ValueError(f"nested JSON has {len(column)} rows for {len(array)}")
    return column


def concatenated_text(column: pa.Array) -> bytes:
    """All values of a string array back to back: a slice of its value buffer."""
    if len(column) == 0:
        return b""
    if column.null_count:
        raise ValueError("unexpected NULL JSON row")
    offsets = memoryview(column.buffers()[1]).cast("q" if pa.types.is_large_string(column.type) else "i")
    start, end = offsets[column.offset], offsets[column.offset + len(column)]
    data = column.buffers()[2]
    assert data is not None
    chunk: bytes = data[start:end].to_pybytes()
    return chunk
