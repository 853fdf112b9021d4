"""Results without extension types, so any Flight SQL client (JDBC, ODBC, ADBC) can read them.

ADBC PostgreSQL marks some columns with extension types (arrow.opaque for numeric, arrow.json,
arrow.uuid). They take the Arrow plane's types (quiver.arrow.types): a ``numeric(p, s)`` column
(p ≤ 38) is decimal128(p, s), other numerics PostgreSQL's exact text, uuid canonical text, json and
jsonb JSON text marked ``quiver:type = json``; the field metadata still names the PostgreSQL type.
Enums stay their labels as text (the Arrow plane's dictionary needs the GraphQL schema's labels).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from quiver.errors import UnsupportedValue

_HEX = np.array([f"{i:02x}".encode() for i in range(256)])
_DASHES = (4, 6, 8, 10)  # a dash goes before these bytes of 16
_SPECIAL = {"nan": "NaN", "infinity": "Infinity", "-infinity": "-Infinity"}  # as PostgreSQL spells them


def plain_type(dtype: pa.DataType) -> pa.DataType:
    """``dtype`` without extension types, also inside lists and structs."""
    if isinstance(dtype, pa.UuidType):
        return pa.utf8()
    if isinstance(dtype, pa.BaseExtensionType):
        return plain_type(dtype.storage_type)
    if pa.types.is_list(dtype):
        return pa.list_(dtype.value_field.with_type(plain_type(dtype.value_type)))
    if pa.types.is_large_list(dtype):
        return pa.large_list(dtype.value_field.with_type(plain_type(dtype.value_type)))
    if pa.types.is_struct(dtype):
        return pa.struct([f.with_type(plain_type(f.type)) for f in dtype])
    return dtype


def _decimal(field: pa.Field) -> pa.DataType | None:
    """decimal128(p, s) for a ``numeric(p, s)`` column PostgreSQL described with its typmod (p ≤ 38)."""
    metadata = field.metadata or {}
    if metadata.get(b"POSTGRESQL:type") != b"numeric" or b"POSTGRESQL:typmod" not in metadata:
        return None
    typmod = int(metadata[b"POSTGRESQL:typmod"]) - 4  # PostgreSQL: ((precision << 16) | scale) + VARHDRSZ
    precision, scale = (typmod >> 16) & 0xFFFF, typmod & 0xFFFF
    return pa.decimal128(precision, scale) if typmod >= 0 and 0 < precision <= 38 and scale <= precision else None


def plain_field(field: pa.Field) -> pa.Field:
    """``field`` in the Arrow plane's type, with its metadata (and ``quiver:type = json`` for JSON)."""
    plain = field.with_type(_decimal(field) or plain_type(field.type))
    if (field.metadata or {}).get(b"POSTGRESQL:type") in {b"json", b"jsonb"}:
        plain = plain.with_metadata({**(field.metadata or {}), b"quiver:type": b"json"})
    return plain


def plain_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([plain_field(f) for f in schema], metadata=schema.metadata)


def uuid_text(array: pa.Array) -> pa.Array:
    """16-byte UUIDs as their canonical 36-character text (vectorized: no Python object per value)."""
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    count = len(storage)
    raw = np.frombuffer(storage.buffers()[1], dtype=np.uint8)[storage.offset * 16:(storage.offset + count) * 16]
    pairs = _HEX[raw.reshape(count, 16)].astype("S2").view(np.uint8).reshape(count, 32)
    parts, start = [], 0
    for stop in (*_DASHES, 16):
        parts.append(pairs[:, start * 2:stop * 2])
        if stop != 16:
            parts.append(np.full((count, 1), ord("-"), dtype=np.uint8))
        start = stop
    text = np.ascontiguousarray(np.concatenate(parts, axis=1))
    offsets = np.arange(0, 36 * (count + 1), 36, dtype=np.int32)
    validity = storage.buffers()[0] if storage.null_count else None
    if validity is not None and storage.offset:
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.utf8())
    return pa.Array.from_buffers(pa.utf8(), count, [validity, pa.py_buffer(offsets), pa.py_buffer(text.tobytes())],
                                 storage.null_count)


def plain_array(array: pa.Array) -> pa.Array:
    """``array`` in :func:`plain_type` of its type."""
    if isinstance(array.type, pa.UuidType):
        return uuid_text(array)
    if isinstance(array, pa.ExtensionArray):
        return plain_array(array.storage)
    if array.type == plain_type(array.type):
        return array
    if isinstance(array, pa.ListArray | pa.LargeListArray):
        cls = pa.ListArray if isinstance(array, pa.ListArray) else pa.LargeListArray
        flat = array if array.offset == 0 else pa.concat_arrays([array])
        return cls.from_arrays(flat.offsets, plain_array(flat.values), mask=flat.is_null() if flat.null_count else None)
    if isinstance(array, pa.StructArray):
        fields = [array.type.field(i) for i in range(array.type.num_fields)]
        children = [plain_array(array.field(i)) for i in range(len(fields))]
        return pa.StructArray.from_arrays(children, fields=[f.with_type(c.type) for f, c in zip(fields, children,
                                                                                            strict=True)],
                                          mask=array.is_null() if array.null_count else None)
    return array


def plain_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` in ``schema`` (its :func:`plain_schema`); a numeric NaN or infinity has no decimal128 form."""
    columns = []
    for column, field in zip(batch.columns, schema, strict=True):
        column = plain_array(column)
        if pa.types.is_decimal(field.type) and not pa.types.is_decimal(column.type):
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                special = [v for v in column.to_pylist() if v is not None and v.lower() in _SPECIAL]
                reason = f"numeric {_SPECIAL[special[0].lower()]}" if special else "a value"
                raise UnsupportedValue(field.name, f"{reason} has no decimal128({field.type.precision}, "
                                       f"{field.type.scale}) form; cast the column to text or float8 in the SQL",
                                       None) from None
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)
