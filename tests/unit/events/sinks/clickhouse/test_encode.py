"""The ClickHouse sink's encoder without a server: the Native byte layout, and the Arrow columns.

The golden blocks were captured from the real ClickHouse 18.16.1 (``SELECT ... FORMAT
Native`` over HTTP), so the encoder is checked against what the server itself writes.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quiver.arrow.events import EVENT_SCHEMA, batch_to_events, events_to_batch
from quiver.events.sinks.clickhouse import encode
from quiver.events.sinks.clickhouse.ddl import COLUMNS
from quiver.events.sinks.clickhouse.encode import arrow_columns, native_body

GOLDEN_ONE_ROW = bytes.fromhex(
    "0501017504555549447766554433221100ffeeddccbbaa9988016e104e756c6c61626c6528537472696e6729010001610d41727261"
    "7928537472696e6729020000000000000001700271710164084461746554696d65a0123266017306537472696e67c801"
) + b"x" * 200
# Three rows: UUIDs, Int64 beyond 2**53 and negative, a string needing a 2-byte varint (128 bytes), unicode and
# escapes, empty / non-empty arrays, a Nullable with NULLs, DateTime at both ends of its range.
GOLDEN_THREE_ROWS = bytes.fromhex(
    "0603086576656e745f696404555549444c4b0f8c6e4c1c6f119a5d8c0e2b4a9f00000000000000000100000000000000ffffffffff"
    "fffffffeffffffffffffff0373657105496e743634ffffffffffffffff010000000000200000000000000000000464617461065374"
    "72696e670006c3a9225c090a8001" + "78" * 128 + "076368616e6765640d417272617928537472696e67290100000000000000"
    "0100000000000000030000000000000001780002797a056163746f72104e756c6c61626c6528537472696e67290100010005616c69"
    "6365000b6f636375727265645f6174084461746554696d6500000000a0123266ffffffff"
)
UUID_TEXT = pa.array(["6f1c4c6e-8c0f-4b4c-9f4a-2b0e8c5d9a11", "00000000-0000-0000-0000-000000000001",
                      "ffffffff-ffff-ffff-ffff-fffffffffffe"])


def reference_strings(values: list[bytes]) -> bytes:
    """The obvious per-row encoder, to check the vectorised one against."""
    return b"".join(encode.varint(len(v)) + v for v in values)


def test_one_row_block_matches_the_server() -> None:
    block = encode.block(1, [
        ("u", "UUID", encode.uuids(pa.array(["00112233-4455-6677-8899-aabbccddeeff"]))),
        ("n", "Nullable(String)", encode.nullable_strings(pa.array([None], pa.string()))),
        ("a", "Array(String)", encode.array_of_strings(pa.array([["p", "qq"]]))),
        ("d", "DateTime", encode.datetime_seconds(pa.array([1_714_557_600_000_000], pa.timestamp("us", "UTC")))),
        ("s", "String", encode.strings(pa.array(["x" * 200]))),
    ])
    assert block == GOLDEN_ONE_ROW


def test_three_row_block_matches_the_server() -> None:
    block = encode.block(3, [
        ("event_id", "UUID", encode.uuids(UUID_TEXT)),
        ("seq", "Int64", encode.int64(pa.array([-1, 9_007_199_254_740_993, 0], pa.int64()))),
        ("data", "String", encode.strings(pa.array(["", 'é"\\\t\n', "x" * 128]))),
        ("changed", "Array(String)", encode.array_of_strings(pa.array([["x"], [], ["", "yz"]]))),
        ("actor", "Nullable(String)", encode.nullable_strings(pa.array([None, "alice", None]))),
        ("occurred_at", "DateTime", encode.datetime_seconds(
            pa.array([0, 1_714_557_600_999_999, (2**32 - 1) * 1_000_000], pa.timestamp("us", "UTC")))),
    ])
    assert block == GOLDEN_THREE_ROWS


@pytest.mark.parametrize(("value", "encoded"), [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (200, "c801"), (300, "ac02"), (16_383, "ff7f"),
    (16_384, "808001"), (2**21, "80808001"), (2**63, "80808080808080808001"),
])
def test_varint(value: int, encoded: str) -> None:
    assert encode.varint(value).hex() == encoded
    assert encode.varint_sizes(np.array([value], dtype=np.uint64).astype(np.int64))[0] == len(encoded) // 2


@pytest.mark.parametrize("length", [0, 1, 127, 128, 129, 16_383, 16_384, 2**21 - 1, 2**21])
def test_long_strings_get_multi_byte_length_prefixes(length: int) -> None:
    values = ["é" * (length // 2) + "a" * (length % 2), "short", "€" * 43]
    assert encode.strings(pa.array(values)) == reference_strings([v.encode() for v in values])


def test_unicode_lengths_are_bytes_not_characters() -> None:
    assert encode.strings(pa.array(["é", "日本", "🦀", ""])).hex() == "02c3a906e697a5e69cac04f09fa68000"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=300) | st.sampled_from(["", "\x00", "\t\n\\'\"", "x" * 130, "é" * 9000]),
                max_size=50))
def test_strings_match_the_per_row_encoder(values: list[str]) -> None:
    expected = reference_strings([v.encode() for v in values])
    assert encode.strings(pa.array(values, pa.string())) == expected
    assert encode.strings(pa.array(values, pa.large_string())) == expected
    assert encode.strings(pa.array(values, pa.string_view())) == expected


def test_sliced_arrays_encode_only_their_window() -> None:
    values = pa.array(["zero", "one", "two" * 50, "three", "four"])
    assert encode.strings(values.slice(1, 3)) == reference_strings([b"one", b"two" * 50, b"three"])
    assert encode.strings(values.slice(5, 0)) == b""
    lists = pa.array([["a"], None, ["b", "c"], [], ["d"]])
    assert encode.array_of_strings(lists.slice(1, 3)) == (
        struct.pack("<3Q", 0, 2, 2) + reference_strings([b"b", b"c"]))


def test_nullable_is_a_null_map_then_empty_placeholders() -> None:
    assert encode.nullable_strings(pa.array([None, "b", None, ""])).hex() == "01000100" + "00016200" + "00"
    # A null slot may still cover bytes in the Arrow data buffer; they must not leak into the output.
    offsets = pa.py_buffer(np.array([0, 3, 4], dtype=np.int32).tobytes())
    validity = pa.py_buffer(np.packbits([0, 1], bitorder="little").tobytes())
    tricky = pa.Array.from_buffers(pa.string(), 2, [validity, offsets, pa.py_buffer(b"badz")], null_count=1)
    assert encode.nullable_strings(tricky).hex() == "0100" + "00017a"


def test_arrays_are_end_offsets_then_the_flat_values() -> None:
    column = pa.array([["x"], None, [], ["", "yz", "é"]], pa.list_(pa.field("item", pa.string(), nullable=False)))
    assert encode.array_of_strings(column) == (
        struct.pack("<4Q", 1, 1, 1, 4) + reference_strings([b"x", b"", b"yz", "é".encode()]))
    assert encode.array_of_strings(pa.array([None, None], pa.list_(pa.string()))) == struct.pack("<2Q", 0, 0)


def test_uuid_is_two_little_endian_halves_high_first() -> None:
    assert encode.uuids(pa.array(["00112233-4455-6677-8899-AABBCCDDEEFF"])).hex() == (
        "7766554433221100" + "ffeeddccbbaa9988")
    assert encode.uuids(UUID_TEXT.slice(1, 1)).hex() == "0000000000000000" + "0100000000000000"


@pytest.mark.parametrize("bad", ["6f1c4c6e8c0f4b4c9f4a2b0e8c5d9a11", "6f1c4c6e-8c0f-4b4c-9f4a-2b0e8c5d9a1g",
                                 "6f1c4c6e+8c0f-4b4c-9f4a-2b0e8c5d9a11", "{6f1c4c6e-8c0f-4b4c-9f4a-2b0e8c5d9a}"])
def test_malformed_uuids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="UUID"):
        encode.uuids(pa.array(["00112233-4455-6677-8899-aabbccddeeff", bad]))


def test_datetime_rounds_down_and_refuses_what_uint32_cannot_hold() -> None:
    assert encode.datetime_seconds(pa.array([1_999_999, 0], pa.timestamp("us", "UTC"))) == struct.pack("<2I", 1, 0)
    assert encode.datetime_seconds(pa.array([1_500], pa.timestamp("ms", "UTC"))) == struct.pack("<I", 1)
    assert encode.datetime64_micros(pa.array([-1, 2**60], pa.timestamp("us", "UTC"))) == struct.pack("<2q", -1, 2**60)
    for micros in (-1, 2**32 * 1_000_000):
        with pytest.raises(ValueError, match="DateTime"):
            encode.datetime_seconds(pa.array([micros], pa.timestamp("us", "UTC")))


def test_nulls_in_non_nullable_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="null"):
        encode.strings(pa.array(["a", None]))
    with pytest.raises(ValueError, match="null"):
        encode.int64(pa.array([1, None], pa.int64()))


def decode_native(body: bytes) -> tuple[int, dict[str, tuple[str, list[Any]]]]:
    """A per-row Native reader for the types the sink writes (the test's independent check)."""
    position = 0

    def varint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            byte = body[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def take(size: int) -> bytes:
        nonlocal position
        position += size
        return body[position - size:position]

    def string() -> str:
        return take(varint()).decode()

    def column(type_name: str, rows: int) -> list[Any]:
        if type_name == "UUID":
            out = []
            for _ in range(rows):
                high, low = struct.unpack("<QQ", take(16))
                text = f"{high:016x}{low:016x}"
                out.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
            return out
        if type_name in ("Int64", "DateTime64(6, 'UTC')"):
            return list(struct.unpack(f"<{rows}q", take(8 * rows)))
        if type_name == "DateTime('UTC')":
            return list(struct.unpack(f"<{rows}I", take(4 * rows)))
        if type_name == "String":
            return [string() for _ in range(rows)]
        if type_name == "Nullable(String)":
            nulls = take(rows)
            values = [string() for _ in range(rows)]
            return [None if null else value for null, value in zip(nulls, values, strict=True)]
        if type_name == "Array(String)":
            ends = struct.unpack(f"<{rows}Q", take(8 * rows))
            flat = [string() for _ in range(ends[-1] if rows else 0)]
            return [flat[start:end] for start, end in zip((0, *ends[:-1]), ends, strict=True)]
        raise AssertionError(type_name)

    columns, rows = varint(), varint()
    decoded = {}
    for _ in range(columns):
        name, type_name = string(), string()
        decoded[name] = (type_name, column(type_name, rows))
    assert position == len(body)
    return rows, decoded


EVENTS = [
    {"event_id": "6f1c4c6e-8c0f-4b4c-9f4a-2b0e8c5d9a11", "seq": 9_007_199_254_740_993, "entity": "orders",
     "entity_id": "42", "op": "update", "occurred_at": 1_714_557_600_123_456,
     "data": '{"id": 42, "note": "\\"quoted\\" é\\t\\n\\\\"}', "changed": ["note", "ünï"], "actor": "alice",
     "tenant_id": None},
    {"event_id": "00000000-0000-4000-8000-000000000000", "seq": 1, "entity": "customers", "entity_id": '[1, "a"]',
     "op": "insert", "occurred_at": 999_999, "data": "x" * 20_000, "changed": None, "actor": None, "tenant_id": "t1"},
    {"event_id": "ffffffff-ffff-4fff-bfff-ffffffffffff", "seq": 2**63 - 1, "entity": "orders", "entity_id": "",
     "op": "delete", "occurred_at": 4_102_444_800_000_001, "data": "{}", "changed": [], "actor": "",
     "tenant_id": "日本"},
]


@pytest.mark.parametrize("datetime64", [False, True])
def test_event_batch_decodes_back_to_the_events(datetime64: bool) -> None:
    batch = events_to_batch(EVENTS)
    rows, columns = decode_native(native_body(batch, datetime64=datetime64))
    assert rows == len(EVENTS)
    assert tuple(columns) == COLUMNS
    assert columns["occurred_at"][0] == ("DateTime64(6, 'UTC')" if datetime64 else "DateTime('UTC')")
    expected = batch_to_events(batch)
    for name in EVENT_SCHEMA.names:
        if name == "occurred_at":
            continue
        wanted = [e[name] if not (name == "changed" and e[name] is None) else [] for e in expected]
        assert columns[name][1] == wanted, name
    micros = [e["occurred_at"] for e in expected]
    assert columns["occurred_at_us"][1] == micros
    assert columns["occurred_at"][1] == (micros if datetime64 else [m // 1_000_000 for m in micros])


def test_arrow_columns_are_the_table_columns_and_only_actor_and_tenant_may_be_null() -> None:
    """A nullable Arrow column would let modern ClickHouse store a malformed uuid as the zero uuid."""
    columns = arrow_columns(events_to_batch(EVENTS))
    assert tuple(columns.schema.names) == COLUMNS
    assert [name for name in COLUMNS if columns.schema.field(name).nullable] == ["actor", "tenant_id"]
    assert columns.column("changed").to_pylist() == [["note", "ünï"], [], []]  # ClickHouse arrays are never NULL
    assert columns.column("occurred_at_us").to_pylist() == [e["occurred_at"] for e in EVENTS]
