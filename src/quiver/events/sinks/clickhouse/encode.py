"""A batch → the body ClickHouse is sent: ArrowStream for modern servers, ``Native`` for old ones.

Modern servers (ArrowStream input and DateTime64) get ``arrow_body``: the batch as an Arrow IPC
stream in table column order (the server casts the uuid text to UUID itself).

Old servers (18.16) take neither Arrow nor Parquet, and Native is the format they read fastest:
``native_body``, vectorised with numpy (no Python loop per row). A block is ``varint(columns)
varint(rows)`` then, per column, its name, its type name and the whole column's values back to
back. Layouts, as ClickHouse 18.16 reads and writes them over HTTP (checked by round trips
against the server):

- ``Int64``/``UInt64``/``UInt32``: fixed-width little-endian.
- ``String``: per value ``varint(len) bytes``; the stream is built from the Arrow offsets
  and data buffers (varint bytes scattered by position, the data bytes copied in order).
- ``UUID``: 16 bytes, two little-endian UInt64, the high half first.
- ``Nullable(T)``: a UInt8 null map for all rows, then the T column with placeholders
  (empty strings) in the null slots.
- ``Array(T)``: UInt64 cumulative end offsets for all rows, then the flattened T column.

Input that does not fit a type (a null in a non-nullable column, a malformed UUID, a
time outside DateTime) raises ``ValueError``: the caller treats it as bad data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from quiver.events.sinks.clickhouse.ddl import COLUMNS

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

NULLABLE = frozenset({"actor", "tenant_id"})  # the table's Nullable columns
DATETIME_MAX = 2**32 - 1  # DateTime is UInt32 seconds since the epoch
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10, dtype=np.uint8)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16, dtype=np.uint8)
_UUID_DASHES = (8, 13, 18, 23)
_UUID_HEX = np.array([i for i in range(36) if i not in _UUID_DASHES])
# Canonical (big-endian) UUID bytes → ClickHouse order: each 8-byte half reversed, high half first.
_UUID_ORDER = np.array([7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8])


def varint(value: int) -> bytes:
    """One unsigned LEB128 varint (block headers and column/type names)."""
    if value < 0:
        raise ValueError(f"varint of a negative number: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def name(text: str) -> bytes:
    """A single String value (column and type names in the block)."""
    raw = text.encode()
    return varint(len(raw)) + raw


def block(rows: int, columns: Sequence[tuple[str, str, bytes]]) -> bytes:
    """A Native block from ``(column name, ClickHouse type, encoded column)`` triples."""
    parts = [varint(len(columns)), varint(rows)]
    for column, type_name, payload in columns:
        parts += [name(column), name(type_name), payload]
    return b"".join(parts)


def _no_nulls(array: pa.Array, what: str) -> None:
    if array.null_count:
        raise ValueError(f"{what}: {array.null_count} null value(s) in a non-nullable column")


def _string_buffers(array: pa.Array) -> tuple[I64, U8]:
    """Offsets (``len + 1``, int64, relative to the data) and data bytes of a string array, slicing honoured."""
    if pa.types.is_string_view(array.type) or pa.types.is_binary_view(array.type):
        array = array.cast(pa.large_binary())
    if pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type):
        width: npt.DTypeLike = np.int64
    elif pa.types.is_string(array.type) or pa.types.is_binary(array.type):
        width = np.int32
    else:
        raise ValueError(f"not a string column: {array.type}")
    _, offsets_buffer, data_buffer = array.buffers()
    if len(array) == 0 or offsets_buffer is None:
        return np.zeros(len(array) + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(offsets_buffer, dtype=width, count=len(array) + 1,
                            offset=array.offset * np.dtype(width).itemsize).astype(np.int64)
    data = np.zeros(0, dtype=np.uint8) if data_buffer is None else np.frombuffer(data_buffer, dtype=np.uint8)
    return offsets - offsets[0], data[offsets[0]:offsets[-1]]


def varint_sizes(values: I64) -> I64:
    """Bytes each value takes as a varint (1 up to 2**7 - 1, 2 up to 2**14 - 1, ...)."""
    sizes = np.ones(len(values), dtype=np.int64)
    unsigned = values.astype(np.uint64)
    for shift in range(7, 64, 7):
        more = unsigned >= np.uint64(1 << shift)
        if not more.any():
            break
        sizes += more
    return sizes


def strings(array: pa.Array) -> bytes:
    """A String column: ``varint(len) bytes`` per value, built from the Arrow buffers in one pass."""
    _no_nulls(array, "String")
    offsets, data = _string_buffers(array)
    lengths = np.diff(offsets)
    if len(lengths) == 0:
        return b""
    sizes = varint_sizes(lengths)
    ends = np.cumsum(sizes + lengths)
    starts = ends - sizes - lengths
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    header = np.zeros(len(out), dtype=bool)
    unsigned = lengths.astype(np.uint64)
    for k in range(int(sizes.max())):
        pick = sizes > k
        where = starts[pick] + k
        byte = (unsigned[pick] >> np.uint64(7 * k)) & np.uint64(0x7F)
        byte |= np.where(sizes[pick] > k + 1, np.uint64(0x80), np.uint64(0))
        out[where] = byte.astype(np.uint8)
        header[where] = True
    out[~header] = data  # what is not a length prefix is the values' bytes, in order
    return out.tobytes()


def nullable_strings(array: pa.Array) -> bytes:
    """A Nullable(String) column: the null map, then the values with empty strings for nulls."""
    null_map: U8 = array.is_null().to_numpy(zero_copy_only=False).astype(np.uint8)
    filled = array.fill_null("") if array.null_count else array
    return null_map.tobytes() + strings(filled)


def int64(array: pa.Array) -> bytes:
    """An Int64 column, little-endian."""
    _no_nulls(array, "Int64")
    values: I64 = np.asarray(array.cast(pa.int64()).to_numpy(), dtype=np.int64)
    return values.astype("<i8").tobytes()


def _microseconds(array: pa.Array) -> I64:
    _no_nulls(array, "DateTime")
    if not pa.types.is_timestamp(array.type):
        raise ValueError(f"not a timestamp column: {array.type}")
    if array.type.unit != "us":
        array = array.cast(pa.timestamp("us", tz=array.type.tz))
    return np.asarray(array.cast(pa.int64()).to_numpy(), dtype=np.int64)


def datetime_seconds(array: pa.Array) -> bytes:
    """A DateTime column (UInt32 seconds, rounded down) from an Arrow timestamp."""
    seconds = np.floor_divide(_microseconds(array), 1_000_000)
    if len(seconds) and (seconds.min() < 0 or seconds.max() > DATETIME_MAX):
        raise ValueError("DateTime holds 1970-01-01 .. 2106-02-07 only")
    return seconds.astype("<u4").tobytes()


def datetime64_micros(array: pa.Array) -> bytes:
    """A DateTime64(6) column (Int64 microseconds) from an Arrow timestamp."""
    return _microseconds(array).astype("<i8").tobytes()


def uuids(array: pa.Array) -> bytes:
    """A UUID column from canonical text (``8-4-4-4-12`` hex): two little-endian UInt64 per value, high half first."""
    _no_nulls(array, "UUID")
    offsets, data = _string_buffers(array)
    rows = len(array)
    if rows == 0:
        return b""
    if not (np.diff(offsets) == 36).all():
        raise ValueError("UUID: every value must be 36 characters (8-4-4-4-12 hex)")
    text = data.reshape(rows, 36)
    if not (text[:, _UUID_DASHES] == ord("-")).all():
        raise ValueError("UUID: dashes expected at positions 8, 13, 18 and 23")
    nibbles = _HEX[text[:, _UUID_HEX]]
    if (nibbles == 255).any():
        raise ValueError("UUID: not a hexadecimal digit")
    canonical = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return np.ascontiguousarray(canonical[:, _UUID_ORDER]).tobytes()


def array_of_strings(array: pa.Array) -> bytes:
    """An Array(String) column: UInt64 cumulative end offsets, then the nested strings; a null list is empty."""
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        raise ValueError(f"not a list column: {array.type}")
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False).astype(np.uint64)
    offsets = np.cumsum(lengths, dtype=np.uint64).astype("<u8")
    values = pc.list_flatten(array)  # null lists emit nothing; slicing honoured
    return offsets.tobytes() + strings(values)


def native_body(batch: pa.RecordBatch, *, datetime64: bool = False) -> bytes:
    """The batch as one Native block in table column order (old servers)."""
    occurred = batch.column("occurred_at")
    if datetime64:
        occurred_column = ("occurred_at", "DateTime64(6, 'UTC')", datetime64_micros(occurred))
    else:
        occurred_column = ("occurred_at", "DateTime('UTC')", datetime_seconds(occurred))
    return block(batch.num_rows, [
        ("event_id", "UUID", uuids(batch.column("event_id"))),
        ("seq", "Int64", int64(batch.column("seq"))),
        ("entity", "String", strings(batch.column("entity"))),
        ("entity_id", "String", strings(batch.column("entity_id"))),
        ("op", "String", strings(batch.column("op"))),
        occurred_column,
        ("occurred_at_us", "Int64", datetime64_micros(occurred)),
        ("data", "String", strings(batch.column("data"))),
        ("changed", "Array(String)", array_of_strings(batch.column("changed"))),
        ("actor", "Nullable(String)", nullable_strings(batch.column("actor"))),
        ("tenant_id", "Nullable(String)", nullable_strings(batch.column("tenant_id"))),
    ])


def arrow_columns(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch in table column order (``COLUMNS``): occurred_at also as µs, a missing ``changed`` empty.

    What modern ClickHouse takes as Arrow: the ArrowStream body, and chDB's ``Python(table)`` insert.
    """
    occurred = batch.column("occurred_at").cast(pa.timestamp("us", tz="UTC"))
    changed = batch.column("changed")
    if changed.null_count:  # ClickHouse arrays are never NULL: a missing list is stored empty
        changed = pc.if_else(pc.is_null(changed), pa.scalar([], changed.type), changed)
    arrays = [batch.column("event_id"), batch.column("seq"), batch.column("entity"), batch.column("entity_id"),
              batch.column("op"), occurred, occurred.cast(pa.int64()), batch.column("data"), changed,
              batch.column("actor"), batch.column("tenant_id")]
    # Only actor and tenant_id may be NULL. Said in the schema, because ClickHouse reads a nullable Arrow
    # column as Nullable and then turns a value it cannot cast (a malformed uuid) into the column's default
    # instead of refusing the row.
    schema = pa.schema([pa.field(name, array.type, nullable=name in NULLABLE)
                        for name, array in zip(COLUMNS, arrays, strict=True)])
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def arrow_body(batch: pa.RecordBatch) -> bytes:
    """The batch as an Arrow IPC stream in table column order (modern servers cast text → UUID themselves)."""
    out = arrow_columns(batch)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, out.schema) as writer:
        writer.write_batch(out)
    body: bytes = sink.getvalue().to_pybytes()
    return body
