"""The demo rows, built column-wise with numpy and pyarrow in bounded chunks (no Python loop per row).

Deterministic for a seed: each chunk draws from its own random stream seeded by
(seed, table, chunk index). ``generate`` loads what this module builds.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

#: Rows per generated chunk. Part of the data definition: each chunk draws from its own
#: random stream seeded by (seed, table, chunk index), so changing this changes the data.
CHUNK_ROWS = 200_000

ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
_STATUS_WEIGHTS = (0.10, 0.20, 0.15, 0.50, 0.05)
_PAID_CODES = [ORDER_STATUSES.index(s) for s in ("paid", "shipped", "delivered")]
_SHIPPED_CODES = [ORDER_STATUSES.index(s) for s in ("shipped", "delivered")]

#: First barcode is 2**53 + 1, the smallest integer a float64 cannot represent.
BARCODE_BASE = 9_007_199_254_740_993
BARCODE_STEP = 7919

# Stream ids mixed into the per-chunk seeds so each table draws independent numbers.
_CUSTOMERS, _PRODUCTS, _ORDERS = 1, 2, 3

_FIRST_NAMES = (
    "Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Karl", "Laura", "Mallory", "Niaj", "Olivia", "Peggy", "Quentin", "Rupert", "Sybil", "Trent",
    "Uma", "Victor", "Walter", "Xena", "Yusuf", "Zelda",
)  # fmt: skip
_LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Martinez",
    "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Walker",
)  # fmt: skip
#: Escaping/injection test names, given to every customer with id % 50 == 7, cycling through
#: the list. The first entries cover quotes, non-ASCII and a backslash so even 100 customers have them.
TRICKY_NAMES = (
    "Zoë O'Brien",
    'Łukasz "Luke" Nowak',
    "山田 太郎",
    "Back\\slash Bob",
    "Robert'); DROP TABLE customers;--",
    "Comma, Carl",
    "Tab\tTabitha",
    "Ἀλέξανδρος Μέγας",
    "🦊 Fox McCloud",
    "Percent %s $1 {name}",
    "  Padded Name  ",
    "NULL",
)
_PRODUCT_ADJECTIVES = ("Small", "Large", "Ergonomic", "Rustic", "Sleek", "Practical", "Durable", "Gorgeous")
_PRODUCT_MATERIALS = ("Steel", "Wooden", "Cotton", "Granite", "Plastic", "Rubber", "Leather", "Bronze")
_PRODUCT_NOUNS = ("Chair", "Table", "Lamp", "Mug", "Shoes", "Hat", "Keyboard", "Bottle", "Clock", "Bag")
#: Odd product names, given to every product with id % 50 == 11, cycling.
_TRICKY_PRODUCT_NAMES = ('12" Vinyl Record', "Café Crème Mug", "Back\\slash Bracket", "Naïve Säge, 3-pack")
_DESCRIPTIONS = (
    "Built to last.",
    "Our best seller.",
    "Hand-made in small batches.",
    'The "original" design.',
    "Dishwasher safe; not microwave safe.",
    "Ships flat.\nAssembly required.",
    "Très élégant — très pratique.",
    "限定版",
)
#: Tag vocabulary; several elements must be quoted inside a text[] literal.
_TAGS = ("sale", "new", "eco", "gift", "kids,toys", '12" vinyl', "back\\slash", "with space", "NULL", "{braces}")
_TAG_COUNT_WEIGHTS = (0.20, 0.35, 0.30, 0.15)
_NOTES = (
    "Leave at the door",
    "Call before delivery",
    'Ring the bell "twice"',
    "O'Reilly's order",
    "Line one\nLine two",
    "Tab\tseparated",
    "Merci beaucoup — ça va?",
    "ギフト包装をお願いします",
    "Use the back\\side entrance",
    "🎁 birthday present",
)
_TIERS = ("gold", "silver", "bronze")
_TIER_WEIGHTS = (0.10, 0.30, 0.60)
_CHANNELS = ("web", "mobile", "api", "store")
_PRIORITIES = 5
#: Scales (decimal places) of order_items.discount, so the unconstrained numeric has mixed scales.
_DISCOUNT_SCALES = (0, 1, 2, 3, 6)
_DISCOUNT_SCALE_WEIGHTS = (0.10, 0.20, 0.40, 0.15, 0.15)

_US_PER_DAY = 86_400_000_000


def _epoch_us(year: int) -> int:
    """Microseconds since the Unix epoch at the start of ``year`` (UTC)."""
    return (dt.date(year, 1, 1) - dt.date(1970, 1, 1)).days * _US_PER_DAY


_CUSTOMERS_SINCE_US = _epoch_us(2023)
_ORDERS_SINCE_US = _epoch_us(2024)
_UNTIL_US = _epoch_us(2026)

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("id", "uuid", "email", "name", "phone", "is_active", "created_at", "profile"),
    "products": ("id", "sku", "name", "description", "price", "barcode", "tags", "thumbnail", "in_stock"),
    "orders": ("id", "uuid", "customer_id", "status", "total", "is_paid", "note", "placed_at", "shipped_on", "meta"),
    "order_items": ("id", "order_id", "product_id", "quantity", "unit_price", "discount"),
}

_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, batch_size=65_536)

_Ints = npt.NDArray[np.int64]
_Bools = npt.NDArray[np.bool_]
_Bytes = npt.NDArray[np.uint8]

def encode(table: pa.Table) -> pa.Buffer:
    """CSV without header: NULL is an unquoted empty field, every string (even "") is quoted."""
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, _CSV_OPTIONS)
    return sink.getvalue()


def _table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    """Build a chunk, checking it has exactly the columns (in order) that ``_copy`` names."""
    if tuple(columns) != COLUMNS[name]:
        raise AssertionError(f"{name}: generated {tuple(columns)}, COPY expects {COLUMNS[name]}")
    return pa.table(columns)


# --- generation --------------------------------------------------------------------------------


def _rng(seed: int, stream: int, first_id: int) -> np.random.Generator:
    """Independent random stream per (seed, table, chunk): chunks can be generated in any order."""
    return np.random.default_rng([seed, stream, (first_id - 1) // CHUNK_ROWS])


def _chunk_bounds(total: int) -> Iterator[tuple[int, int]]:
    """Half-open id ranges [lo, hi) of CHUNK_ROWS covering 1..total."""
    for lo in range(1, total + 1, CHUNK_ROWS):
        yield lo, min(lo + CHUNK_ROWS, total + 1)


def customer_chunks(seed: int, n_customers: int) -> Iterator[pa.Buffer]:
    """Encoded customer chunks."""
    for lo, hi in _chunk_bounds(n_customers):
        yield encode(_customers(seed, lo, hi))


def _customers(seed: int, lo: int, hi: int) -> pa.Table:
    """Customers with ids lo..hi-1."""
    rng = _rng(seed, _CUSTOMERS, lo)
    n = hi - lo
    ids = np.arange(lo, hi, dtype=np.int64)
    id_text = pc.cast(pa.array(ids), pa.string())
    names = pc.binary_join_element_wise(_pick(rng, _FIRST_NAMES, n), _pick(rng, _LAST_NAMES, n), " ")
    tricky = pa.array(TRICKY_NAMES).take(pa.array((ids // 50) % len(TRICKY_NAMES)))
    names = pc.if_else(pa.array(ids % 50 == 7), tricky, names)
    area, line = rng.integers(200, 1000, n), rng.integers(0, 10_000, n)
    phones = pc.binary_join_element_wise(
        "+1-",
        pc.cast(pa.array(area), pa.string()),
        "-555-",
        pc.utf8_lpad(pc.cast(pa.array(line), pa.string()), 4, "0"),
        "",
    )
    tier = rng.choice(len(_TIERS), size=n, p=_TIER_WEIGHTS)
    newsletter = rng.random(n) < 0.40
    return _table("customers", {
        "id": pa.array(ids),
        "uuid": _uuids(rng, n),
        "email": pc.binary_join_element_wise("customer", id_text, "@example.com", ""),
        "name": names,
        "phone": _null_where(phones, rng.random(n) < 0.30),
        "is_active": pa.array(rng.random(n) >= 0.10),
        "created_at": _timestamps(rng, n, _CUSTOMERS_SINCE_US, _UNTIL_US),
        "profile": _PROFILES.take(pa.array(tier * 2 + newsletter)),
    })  # fmt: skip


def products(seed: int, n: int) -> tuple[pa.Table, _Ints]:
    """All products (at most 20k) and their prices in cents, which order items reuse."""
    rng = _rng(seed, _PRODUCTS, 1)
    ids = np.arange(1, n + 1, dtype=np.int64)
    id_text = pc.cast(pa.array(ids), pa.string())
    names = pc.binary_join_element_wise(
        _pick(rng, _PRODUCT_ADJECTIVES, n), _pick(rng, _PRODUCT_MATERIALS, n), _pick(rng, _PRODUCT_NOUNS, n), " "
    )
    tricky = pa.array(_TRICKY_PRODUCT_NAMES).take(pa.array((ids // 50) % len(_TRICKY_PRODUCT_NAMES)))
    price_cents = rng.integers(100, 100_000, n)  # 1.00 .. 999.99
    n_tags = rng.choice(len(_TAG_COUNT_WEIGHTS), size=n, p=_TAG_COUNT_WEIGHTS)
    tag_choice = _TAG_OFFSETS[n_tags] + (rng.random(n) * _TAG_GROUP_SIZES[n_tags]).astype(np.int64)
    thumbnails = _fixed_width_strings(
        np.hstack([np.full((n, 2), [ord("\\"), ord("x")], np.uint8), _hex(_random_bytes(rng, n, 8))])
    )
    table = _table("products", {
        "id": pa.array(ids),
        "sku": pc.binary_join_element_wise("SKU-", pc.utf8_lpad(id_text, 6, "0"), ""),
        "name": pc.if_else(pa.array(ids % 50 == 11), tricky, names),
        "description": _null_where(_pick(rng, _DESCRIPTIONS, n), rng.random(n) < 0.20),
        "price": _decimal(price_cents, 12, 2),
        "barcode": pa.array(BARCODE_BASE + ids * BARCODE_STEP),
        "tags": _TAG_LITERALS.take(pa.array(tag_choice)),
        "thumbnail": _null_where(thumbnails, rng.random(n) < 0.50),
        "in_stock": pa.array(rng.random(n) < 0.85),
    })  # fmt: skip
    return table, price_cents


def order_chunks(
    seed: int, orders: int, n_customers: int, price_cents: _Ints
) -> Iterator[tuple[pa.Buffer, pa.Buffer, int]]:
    """Encoded (orders, their items, item count) chunks; item ids continue across chunks."""
    next_item_id = 1
    for lo, hi in _chunk_bounds(orders):
        order_table, item_table = _orders(seed, lo, hi, n_customers, price_cents, next_item_id)
        next_item_id += item_table.num_rows
        yield encode(order_table), encode(item_table), item_table.num_rows


def _orders(
    seed: int, lo: int, hi: int, n_customers: int, price_cents: _Ints, first_item_id: int
) -> tuple[pa.Table, pa.Table]:
    """Orders with ids lo..hi-1 and their 1..3 items each; an order's total is the sum of its lines."""
    rng = _rng(seed, _ORDERS, lo)
    n = hi - lo
    ids = np.arange(lo, hi, dtype=np.int64)
    status = rng.choice(len(ORDER_STATUSES), size=n, p=_STATUS_WEIGHTS)
    placed_us = rng.integers(_ORDERS_SINCE_US, _UNTIL_US, n)
    shipped_on = (placed_us // _US_PER_DAY + rng.integers(1, 8, n)).astype(np.int32)
    channel, priority, gift = rng.integers(0, len(_CHANNELS), n), rng.integers(0, _PRIORITIES, n), rng.random(n) < 0.10

    per_order = rng.integers(1, 4, n)
    m = int(per_order.sum())
    product_id = rng.integers(1, len(price_cents) + 1, m)
    quantity = rng.integers(1, 6, m)
    unit_cents = price_cents[product_id - 1]
    totals = np.add.reduceat(quantity * unit_cents, np.cumsum(per_order) - per_order)

    order_table = _table("orders", {
        "id": pa.array(ids),
        "uuid": _uuids(rng, n),
        "customer_id": pa.array(rng.integers(1, n_customers + 1, n)),
        "status": _STATUS_LABELS.take(pa.array(status)),
        "total": _decimal(totals, 12, 2),
        "is_paid": pa.array(np.isin(status, _PAID_CODES)),
        "note": _null_where(_pick(rng, _NOTES, n), rng.random(n) < 0.60),
        "placed_at": pa.array(placed_us, pa.timestamp("us", tz="UTC")),
        "shipped_on": pa.array(shipped_on, pa.date32(), mask=~np.isin(status, _SHIPPED_CODES)),
        "meta": _METAS.take(pa.array((channel * _PRIORITIES + priority) * 2 + gift)),
    })  # fmt: skip
    item_table = _table("order_items", {
        "id": pa.array(np.arange(first_item_id, first_item_id + m, dtype=np.int64)),
        "order_id": pa.array(np.repeat(ids, per_order)),
        "product_id": pa.array(product_id),
        "quantity": pa.array(quantity.astype(np.int32)),
        "unit_price": _decimal(unit_cents, 12, 2),
        "discount": _null_where(_discounts(rng, m), rng.random(m) < 0.70),
    })  # fmt: skip
    return order_table, item_table


def _discounts(rng: np.random.Generator, n: int) -> pa.Array:
    """Decimal strings 0..19.999999 with 0, 1, 2, 3 or 6 places and no trailing zeros (e.g. 0.125, 1.333333)."""
    scale = np.asarray(_DISCOUNT_SCALES)[rng.choice(len(_DISCOUNT_SCALES), size=n, p=_DISCOUNT_SCALE_WEIGHTS)]
    step = 10 ** (6 - scale)
    micros = rng.integers(0, 20_000_000, n) // step * step
    whole = pc.cast(pa.array(micros // 1_000_000), pa.string())
    fraction = pc.utf8_rtrim(pc.utf8_lpad(pc.cast(pa.array(micros % 1_000_000), pa.string()), 6, "0"), "0")
    return pc.if_else(pc.equal(fraction, ""), whole, pc.binary_join_element_wise(whole, fraction, "."))


# --- column helpers ------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, vocabulary: Sequence[str], n: int) -> pa.Array:
    """n strings drawn uniformly from ``vocabulary``."""
    return pa.array(vocabulary, pa.string()).take(pa.array(rng.integers(0, len(vocabulary), n)))


def _null_where(values: pa.Array, mask: _Bools) -> pa.Array:
    """``values`` with NULL where ``mask`` is true."""
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def _random_bytes(rng: np.random.Generator, n: int, width: int) -> _Bytes:
    """An (n, width) array of random bytes."""
    return rng.integers(0, 256, (n, width), dtype=np.uint8)


def _hex(raw: _Bytes) -> _Bytes:
    """(n, k) bytes to (n, 2k) ASCII lowercase hex digits."""
    out = np.empty((raw.shape[0], raw.shape[1] * 2), np.uint8)
    out[:, 0::2] = _HEX_DIGITS[raw >> 4]
    out[:, 1::2] = _HEX_DIGITS[raw & 0x0F]
    return out


def _fixed_width_strings(chars: _Bytes) -> pa.Array:
    """A string array over the rows of an (n, width) ASCII matrix, without per-row Python objects."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars)))


def _uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """Random version-4 UUIDs in canonical text form."""
    raw = _random_bytes(rng, n, 16)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = _hex(raw)
    chars = np.full((n, 36), ord("-"), np.uint8)
    for start, stop, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        chars[:, at : at + stop - start] = digits[:, start:stop]
    return _fixed_width_strings(chars)


def _timestamps(rng: np.random.Generator, n: int, since_us: int, until_us: int) -> pa.Array:
    """UTC timestamps with microseconds, uniform in [since, until)."""
    return pa.array(rng.integers(since_us, until_us, n), pa.timestamp("us", tz="UTC"))


def _decimal(unscaled: _Ints, precision: int, scale: int) -> pa.Array:
    """Exact decimals from integers in units of 10**-scale (no float round trip)."""
    words = np.empty((len(unscaled), 2), np.int64)  # little-endian 128-bit two's complement
    words[:, 0] = unscaled
    words[:, 1] = unscaled >> 63
    return pa.Array.from_buffers(pa.decimal128(precision, scale), len(unscaled), [None, pa.py_buffer(words)])


def _array_literal(items: Sequence[str]) -> str:
    """PostgreSQL array literal with every element quoted (so NULL, commas and braces stay text)."""
    return "{" + ",".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in items) + "}"


# Small vocabularies are rendered once; rows pick from them by index.
_STATUS_LABELS = pa.array(ORDER_STATUSES)
_PROFILES = pa.array(
    [json.dumps({"tier": tier, "newsletter": newsletter}) for tier in _TIERS for newsletter in (False, True)]
)
_METAS = pa.array(
    [
        json.dumps({"channel": channel, "priority": priority, "gift": gift})
        for channel in _CHANNELS
        for priority in range(_PRIORITIES)
        for gift in (False, True)
    ]
)
_TAG_GROUPS = [list(itertools.combinations(_TAGS, k)) for k in range(len(_TAG_COUNT_WEIGHTS))]
_TAG_LITERALS = pa.array([_array_literal(combo) for group in _TAG_GROUPS for combo in group])
_TAG_GROUP_SIZES = np.array([len(group) for group in _TAG_GROUPS], np.int64)
_TAG_OFFSETS = np.cumsum(_TAG_GROUP_SIZES) - _TAG_GROUP_SIZES
