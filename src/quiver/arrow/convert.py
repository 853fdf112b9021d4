"""Batches as ADBC reads them -> batches in exactly the schema ``arrow.types`` promises.

Most columns already arrive in their final type. The rest are converted with Arrow
compute kernels (numeric text -> decimal128, enum labels -> dictionary indices) and
nested relations and arrays, which arrive as JSON lines, are parsed by Arrow's JSON
reader with an explicit schema. Only nested bytea (base64) takes a Python loop.

Values an Arrow type cannot hold faithfully (date/timestamp ±infinity, numeric NaN in a
decimal, multi-dimensional arrays) raise ``UnsupportedValue`` naming the column path and
the row's position in the result (from 0), never a wrong value.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from quiver.arrow.types import ENUM_INDEX, root_schema, transport_type
from quiver.errors import UnsupportedValue
from quiver.plan import nodes
from quiver.schema.model import Kind

# Raw values ADBC's binary COPY gives for ±infinity (PostgreSQL's sentinels shifted to 1970, wrapped).
_PG_EPOCH_US, _PG_EPOCH_DAYS = 946_684_800_000_000, 10_957
_TS_INF = ((2**63 - 1 + _PG_EPOCH_US + 2**63) % 2**64) - 2**63
_TS_NEG_INF = -(2**63) + _PG_EPOCH_US
_DATE_INF = ((2**31 - 1 + _PG_EPOCH_DAYS + 2**31) % 2**32) - 2**31
_DATE_NEG_INF = -(2**31) + _PG_EPOCH_DAYS
_TS_MIN, _DATE_MIN = -210_866_803_200_000_000, -2_440_588  # 4714-11-24 BC, PostgreSQL's first day
_SPACE = re.compile(r"\s*")
_MULTI = "a multi-dimensional array has no Arrow form (list<T> holds one dimension)"


class _Bad(Exception):
    """An unsupported value at ``pos`` of the array being converted (mapped to the row on the way up)."""

    def __init__(self, pos: int, column: str, reason: str) -> None:
        super().__init__(reason)
        self.pos, self.column, self.reason = pos, column, reason


@dataclass
class _Rows:
    """Rows already converted in this result, so an error can name the row."""

    seen: int = 0


@dataclass(frozen=True)
class Convert:
    """How to turn one arriving array into its final type (a tree for structs and lists)."""

    target: pa.DataType
    labels: pa.Array | None = None  # enum labels, for dictionary targets
    base64: bool = False  # nested bytea arrives as base64 text
    children: tuple[Convert, ...] = field(default=())
    nested_json: bool = False  # the column arrives as `{"v": ...}` JSON lines
    name: str = ""  # the column path, for messages
    text: bool = False  # a leaf that arrives as text (nested or in an array)
    rows: _Rows = field(default_factory=_Rows, compare=False)


def _leaf(column_type: pa.DataType, kind: Kind, labels: tuple[str, ...], nested: bool, name: str) -> Convert:
    def one(target: pa.DataType, text: bool) -> Convert:
        if pa.types.is_dictionary(target):
            return Convert(target, labels=pa.array(labels, pa.string()), name=name, text=text)
        return Convert(target, base64=text and kind is Kind.BYTEA, name=name, text=text)

    if pa.types.is_list(column_type):
        return Convert(column_type, children=(one(column_type.value_type, True),), nested_json=not nested, name=name)
    return one(column_type, nested)


def _selection(selection: nodes.Selection, struct: pa.DataType, prefix: str) -> tuple[Convert, ...]:
    return tuple(_output(out, child.type, True, f"{prefix}.{out.key}") for out, child in zip(selection, struct,
                                                                                              strict=True))


def _output(out: nodes.Output, final: pa.DataType, nested: bool, name: str) -> Convert:
    if isinstance(out, nodes.ScalarOut):
        return _leaf(final, out.column.type.kind, out.column.type.enum_labels, nested, name)
    if isinstance(out, nodes.ObjectOut):
        return Convert(final, children=_selection(out.selection, final, name), nested_json=not nested, name=name)
    if isinstance(out, nodes.ListOut):
        item = Convert(final.value_type, children=_selection(out.query.selection, final.value_type, name), name=name)
        return Convert(final, children=(item,), nested_json=not nested, name=name)
    return Convert(final, name=name)


def converters(root: nodes.Root, schema: pa.Schema | None = None) -> tuple[pa.Schema, tuple[Convert, ...]]:
    """The final schema of ``root`` and how to produce each of its columns."""
    schema = schema or root_schema(root)
    if isinstance(root, nodes.ListRoot):
        selection: nodes.Selection = root.query.selection
    elif isinstance(root, nodes.OneRoot):
        selection = root.selection
    else:
        return schema, tuple(Convert(f.type) for f in schema)
    rows = _Rows()
    plans = (_output(out, f.type, False, out.key) for out, f in zip(selection, schema, strict=True))
    return schema, tuple(Convert(p.target, p.labels, p.base64, p.children, p.nested_json, p.name, p.text, rows)
                         for p in plans)


def conform(batch: pa.RecordBatch, schema: pa.Schema, plan: tuple[Convert, ...]) -> pa.RecordBatch:
    rows = plan[0].rows if plan else _Rows()
    try:
        arrays = [convert(batch.column(i), c) for i, c in enumerate(plan)]
    except _Bad as bad:
        raise UnsupportedValue(bad.column, bad.reason, rows.seen + bad.pos) from None
    rows.seen += batch.num_rows
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def convert(array: pa.Array, plan: Convert) -> pa.Array:
    if plan.nested_json:
        array = _parse_json_lines(array, plan)
    target = plan.target
    if pa.types.is_struct(target):
        children = [convert(array.field(i), child) for i, child in enumerate(plan.children)]
        return pa.StructArray.from_arrays(children, fields=list(target), mask=_mask(array))
    if pa.types.is_list(target):
        if array.offset:
            array = pa.concat_arrays([array])
        offsets = pc.subtract(array.offsets, array.offsets[0])
        try:
            values = convert(array.flatten(), plan.children[0])
        except _Bad as bad:
            parent = pc.list_parent_indices(array)[bad.pos].as_py()
            raise _Bad(parent, bad.column, bad.reason) from None
        return pa.ListArray.from_arrays(offsets, values, type=target, mask=_mask(array))
    if plan.labels is not None:
        indices = pc.cast(pc.index_in(array, value_set=plan.labels), ENUM_INDEX)
        return pa.DictionaryArray.from_arrays(indices, plan.labels)
    if plan.base64:
        return pa.array([None if v is None else base64.b64decode(v) for v in array.to_pylist()], pa.binary())
    return _scalar(array, plan)


def _first(mask: pa.Array) -> int | None:
    position: int = pc.index(mask, True).as_py()
    return None if position < 0 else position


def _scalar(array: pa.Array, plan: Convert) -> pa.Array:
    """A leaf: refuse what its type cannot hold, then cast (text leaves of dates/times are epoch counts)."""
    target = plan.target
    temporal = pa.types.is_date32(target) or pa.types.is_timestamp(target) or pa.types.is_time64(target)
    if plan.text and (temporal or pa.types.is_decimal(target)):
        special = pc.is_in(array, value_set=pa.array(["infinity", "-infinity", "NaN", "Infinity", "-Infinity"]))
        if (pos := _first(special)) is not None:
            kind = "decimal" if pa.types.is_decimal(target) else str(target)
            raise _Bad(pos, plan.name, f"{array[pos].as_py()} has no Arrow {kind} form")
        if temporal:
            array = pc.cast(array, pa.int32() if pa.types.is_date32(target) else pa.int64())
    elif pa.types.is_string(array.type) and pa.types.is_decimal(target):
        if (pos := _first(pc.equal(array, "NaN"))) is not None:
            raise _Bad(pos, plan.name, "NaN has no Arrow decimal form")
    elif pa.types.is_timestamp(array.type) or pa.types.is_date32(array.type):
        _check_range(array, plan.name)
    if array.type.equals(target):
        return array
    return pc.cast(array, target)


def _check_range(array: pa.Array, name: str) -> None:
    """Top-level dates and timestamps arrive binary: ±infinity and overflows are below PostgreSQL's first day."""
    is_date = pa.types.is_date32(array.type)
    raw = array.view(pa.int32() if is_date else pa.int64())
    if (pos := _first(pc.less(raw, _DATE_MIN if is_date else _TS_MIN))) is None:
        return
    value = raw[pos].as_py()
    if value in (_TS_INF, _DATE_INF):
        what = "infinity"
    elif value in (_TS_NEG_INF, _DATE_NEG_INF):
        what = "-infinity"
    else:
        what = "a value beyond the Arrow type's range"
    raise _Bad(pos, name, f"{what} has no Arrow {array.type} form")


def _mask(array: pa.Array) -> pa.Array | None:
    return pc.is_null(array) if array.null_count else None


def _parse_json_lines(array: pa.Array, plan: Convert) -> pa.Array:
    """`{"v": ...}` lines (one per row, back to back in the value buffer) -> the transport array."""
    wanted = transport_type(plan.target)
    if len(array) == 0:
        return pa.array([], wanted)
    data = concatenated_text(array)
    try:
        table = pa_json.read_json(
            io.BytesIO(data),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 20)),
            parse_options=pa_json.ParseOptions(explicit_schema=pa.schema([pa.field("v", wanted)])),
        )
    except pa.ArrowInvalid:
        _diagnose(data, plan)
        raise
    column = table.column("v").combine_chunks()
    if len(column) != len(array):
        raise ValueError(f"nested JSON has {len(column)} rows for {len(array)}")
    return column


def _diagnose(data: bytes, plan: Convert) -> None:
    """After the JSON reader refused a batch: find the row and column that has no Arrow form (slow, rare)."""
    text, decoder, at, row = data.decode(), json.JSONDecoder(), 0, 0
    while (at := _SPACE.match(text, at).end()) < len(text):  # type: ignore[union-attr]  # json_agg has newlines
        value, at = decoder.raw_decode(text, at)
        if (column := _misfit(value["v"], plan)) is not None:
            raise _Bad(row, column, _MULTI)
        row += 1


def _misfit(value: object, plan: Convert) -> str | None:
    if value is None:
        return None
    target = plan.target
    if pa.types.is_struct(target) and isinstance(value, dict):
        found = (_misfit(value.get(f.name), c) for f, c in zip(target, plan.children, strict=True))
        return next((f for f in found if f is not None), None)
    if pa.types.is_list(target) and isinstance(value, list):
        found = (_misfit(v, plan.children[0]) for v in value)
        return next((f for f in found if f is not None), None)
    return None if isinstance(value, str) else plan.name


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
