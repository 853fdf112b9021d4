"""The Python client (quiver.client) and `quiver query` against a real server over Arrow Flight."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pandas as pd  # type: ignore[import-untyped,unused-ignore]
import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
import typer

from quiver.cli.output import _iso_interval
from quiver.cli.query import query_command
from quiver.client import (
    Client,
    InvalidRequest,
    NotFound,
    QuiverError,
    Timeout,
    Unauthenticated,
    Unavailable,
)
from tests.conftest import SMALL_ORDERS, Server, free_port, start_server, stop_server

Db = psycopg.Connection[tuple[object, ...]]

ORDERS = """{ orders(orderBy: [{id: ASC}]) {
    id uuid customerId status total isPaid note placedAt shippedOn meta
    customer { name } orderItems(orderBy: [{id: ASC}]) { quantity unitPrice } } }"""
FLAT = "{ orders(orderBy: [{id: ASC}]) { id customerId status total isPaid note placedAt shippedOn meta } }"
PRODUCTS = "{ products(orderBy: [{id: ASC}]) { id name tags thumbnail price barcode } }"
ENTITIES = {"orders", "customers", "products", "orderItems", "customerOrderTotals"}


@pytest.fixture()
def client(server: Server) -> Iterator[Client]:
    with Client(server.flight_url) as connected:
        yield connected


@pytest.fixture(scope="module")
def auth_server(demo_url: str) -> Iterator[Server]:
    running = start_server(demo_url, QUIVER_TOKENS='["tok"]')
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def small_batches_server(demo_url: str) -> Iterator[Server]:
    """Arrow batches of ~16 kB, so a 2,000-row result arrives in many batches."""
    running = start_server(demo_url, QUIVER_ARROW_BATCH_BYTES="16384")
    yield running
    stop_server(running)


# -- query, stream, schema ------------------------------------------------------------------------
def test_query_stream_and_schema_agree(client: Client) -> None:
    table = client.query(ORDERS)
    assert isinstance(table, pa.Table)
    assert table.num_rows == SMALL_ORDERS
    assert table.column("id").to_pylist() == list(range(1, SMALL_ORDERS + 1))
    assert client.schema(ORDERS) == table.schema
    assert client.schema(ORDERS).equals(table.schema, check_metadata=True)
    reader = client.stream(ORDERS)
    assert isinstance(reader, pa.RecordBatchReader)
    assert reader.schema == table.schema
    assert reader.read_all().equals(table)


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_compression_changes_nothing_but_the_wire(client: Client, compression: str) -> None:
    plain = client.query(ORDERS)
    assert client.query(ORDERS, compression=compression).equals(plain)
    assert client.stream(ORDERS, compression=compression).read_all().equals(plain)


def test_variables(client: Client, db: Db) -> None:
    query = ("query($n: Int!, $s: OrderStatus!) { orders(where: {status: {eq: $s}}, limit: $n, orderBy: [{id: ASC}])"
             " { id status } }")
    table = client.query(query, {"n": 7, "s": "paid"})
    expected = [r[0] for r in db.execute("SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 7")]
    assert table.column("id").to_pylist() == expected
    assert set(table.column("status").to_pylist()) == {"paid"}
    assert client.schema(query, {"n": 1, "s": "paid"}) == table.schema
    assert client.stream(query, {"n": 7, "s": "paid"}).read_all().equals(table)


def test_stream_arrives_batch_by_batch(small_batches_server: Server) -> None:
    with Client(small_batches_server.flight_url) as quiver:
        whole = quiver.query(ORDERS)
        reader = quiver.stream(ORDERS)
        first = reader.read_next_batch()
        assert 0 < first.num_rows < SMALL_ORDERS  # one batch, not the whole result
        rest = list(reader)
        assert len(rest) >= 2
        assert pa.Table.from_batches([first, *rest]).equals(whole)
        # Abandoning a stream part way cancels it; the connection stays usable.
        abandoned = quiver.stream(ORDERS)
        abandoned.read_next_batch()
        abandoned.close()
        del abandoned
        assert quiver.query("{ orders(limit: 3) { id } }").num_rows == 3


# -- pandas, polars, DuckDB ---------------------------------------------------------------------------
def test_to_pandas_has_arrow_dtypes(client: Client) -> None:
    frame = client.to_pandas(FLAT)
    table = client.query(FLAT)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == table.schema.names
    assert len(frame) == SMALL_ORDERS
    for name, dtype in frame.dtypes.items():
        assert isinstance(dtype, pd.ArrowDtype), (name, dtype)
        assert dtype.pyarrow_dtype == table.schema.field(name).type
    assert frame["id"].tolist() == table.column("id").to_pylist()
    assert frame["total"].tolist() == table.column("total").to_pylist()
    assert pa.Table.from_pandas(frame, preserve_index=False).to_pylist() == table.to_pylist()
    numpy_backed = client.to_pandas("{ orders(limit: 5) { id } }", types_mapper=None)
    assert numpy_backed["id"].dtype == "int64"


def test_to_polars_equals_the_arrow_table(client: Client) -> None:
    frame = client.to_polars(FLAT)
    table = client.query(FLAT)
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == table.schema.names
    assert frame.height == SMALL_ORDERS
    assert frame.to_dicts() == table.to_pylist()
    assert frame.schema["status"] == pl.Categorical
    assert frame.schema["total"] == pl.Decimal(12, 2)
    assert frame["id"].sum() == pa.compute.sum(table.column("id")).as_py()


def test_duckdb_reads_the_client_table(client: Client, db: Db) -> None:
    tbl = client.query(FLAT)
    assert tbl.num_rows == SMALL_ORDERS
    totals = duckdb.sql("select count(*), sum(id) from tbl")  # DuckDB finds the Arrow table by its variable name
    assert totals is not None
    got = totals.fetchall()[0]
    expected = db.execute("SELECT count(*), sum(id) FROM orders").fetchone()
    assert expected is not None
    assert (got[0], int(got[1])) == (expected[0], int(str(expected[1])))
    grouped = duckdb.sql("select status::varchar, sum(total), count(*) from tbl group by 1 order by 1")
    assert grouped is not None
    by_status = grouped.fetchall()
    oracle = db.execute("SELECT status::text, sum(total), count(*) FROM orders GROUP BY 1 ORDER BY 1").fetchall()
    assert [(s, decimal.Decimal(t), n) for s, t, n in by_status] == [(s, t, n) for s, t, n in oracle]


# -- whole entities -----------------------------------------------------------------------------------
def test_read_entity_parallel_equals_sequential(client: Client, server: Server, db: Db) -> None:
    raw = flight.connect(server.flight_url)
    try:
        endpoints = raw.get_flight_info(flight.FlightDescriptor.for_path("orders")).endpoints
    finally:
        raw.close()
    assert len(endpoints) > 1  # the parallel path really has several endpoints to read
    parallel = client.read_entity("orders", parallel=True)
    sequential = client.read_entity("orders", parallel=False)
    assert parallel.num_rows == sequential.num_rows == SMALL_ORDERS
    assert parallel.schema == sequential.schema
    ordered = parallel.sort_by("id")
    assert ordered.equals(sequential.sort_by("id"))
    assert ordered.column("id").to_pylist() == [r[0] for r in db.execute("SELECT id FROM orders ORDER BY id")]
    # Concatenated in endpoint order: the primary-key range each row falls in never goes back.
    lows = [json.loads(e.ticket.ticket)["range"][0] for e in endpoints]
    for table in (parallel, sequential):
        ranges = [sum(1 for low in lows[1:] if row_id >= low) for row_id in table.column("id").to_pylist()]
        assert ranges == sorted(ranges)
        assert len(set(ranges)) == len(endpoints)
    assert set(parallel.schema.names) >= {"id", "uuid", "customerId", "status", "total", "placedAt", "meta"}


def test_read_entity_other_tables_and_views(client: Client, db: Db) -> None:
    for name, table in [("orderItems", "order_items"), ("customers", "customers"),
                        ("customerOrderTotals", "customer_order_totals")]:
        count = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert count is not None
        assert client.read_entity(name).num_rows == count[0], name
    assert client.read_entity("products", compression="zstd").equals(client.read_entity("products"))


def test_entities_and_health(client: Client) -> None:
    assert set(client.entities()) == ENTITIES
    health = client.health()
    assert health["status"] == "ok"
    assert health["database"] is True


# -- ingest -------------------------------------------------------------------------------------------------
def test_ingest_then_query_back(scratch_url: str) -> None:
    scratch = start_server(scratch_url)
    try:
        with Client(scratch.flight_url) as quiver:
            placed = dt.datetime(2025, 6, 1, 12, 30, tzinfo=dt.UTC)
            new = pa.table({
                "id": pa.array([900_001, 900_002, 900_003], pa.int64()),
                "uuid": [f"00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3)],
                "customerId": pa.array([1, 2, 3], pa.int64()),
                "status": pa.array(["paid", "pending", "shipped"]).dictionary_encode(),
                "total": pa.array([decimal.Decimal("10.50"), decimal.Decimal("0.00"), decimal.Decimal("99.99")],
                                  pa.decimal128(12, 2)),
                "note": ["client ingest", None, "client ingest"],
                "placedAt": pa.array([placed] * 3, pa.timestamp("us", tz="UTC")),
                "meta": ['{"via": "flight"}', "{}", '{"n": 3}'],
            })
            assert quiver.ingest("orders", new) == 3
            back = quiver.query("""{ orders(where: {id: {gte: "900001"}}, orderBy: [{id: ASC}]) {
                id uuid customerId status total note placedAt meta } }""")
            rows = back.to_pylist()
            assert [r["id"] for r in rows] == [900_001, 900_002, 900_003]
            assert [r["status"] for r in rows] == ["paid", "pending", "shipped"]
            assert [r["total"] for r in rows] == [decimal.Decimal("10.50"), decimal.Decimal("0.00"),
                                                  decimal.Decimal("99.99")]
            assert [r["note"] for r in rows] == ["client ingest", None, "client ingest"]
            assert [r["customerId"] for r in rows] == [1, 2, 3]
            assert all(r["placedAt"] == placed for r in rows)
            assert [json.loads(r["meta"]) for r in rows] == [{"via": "flight"}, {}, {"n": 3}]
            assert quiver.read_entity("orders").num_rows == 1_000 + 3

            # All or nothing: a foreign-key violation inserts none of the batch.
            bad = pa.table({"uuid": ["00000000-0000-4000-8000-000000000009"] * 2,
                            "customerId": pa.array([1, 99_999_999], pa.int64()),
                            "total": pa.array([decimal.Decimal("1.00")] * 2, pa.decimal128(12, 2))})
            with pytest.raises(InvalidRequest):
                quiver.ingest("orders", bad)
            assert quiver.read_entity("orders").num_rows == 1_000 + 3
            with pytest.raises(InvalidRequest, match="no column 'bogus'"):
                quiver.ingest("orders", pa.table({"bogus": [1]}))
            with pytest.raises(InvalidRequest, match="view"):
                quiver.ingest("customerOrderTotals", pa.table({"customerId": [1]}))
            with pytest.raises(NotFound):
                quiver.ingest("nowhere", pa.table({"id": [1]}))
            # A RecordBatchReader is sent batch by batch.
            more = new.slice(0, 2).set_column(0, "id", pa.array([900_004, 900_005], pa.int64()))
            assert quiver.ingest("orders", pa.RecordBatchReader.from_batches(more.schema, more.to_batches(1))) == 2
    finally:
        stop_server(scratch)


# -- errors ----------------------------------------------------------------------------------------------------
def _clean(error: QuiverError) -> None:
    assert "Traceback" not in error.message
    assert "Detail:" not in error.message
    assert error.message


def test_bad_queries_are_invalid_requests(client: Client) -> None:
    calls: list[Callable[[], object]] = [lambda: client.query("{ nope }"), lambda: client.stream("{ nope }"),
                                         lambda: client.schema("{ nope }"), lambda: client.to_pandas("{ nope }")]
    for call in calls:
        with pytest.raises(InvalidRequest) as caught:
            call()
        assert caught.value.message == "Cannot query field 'nope' on type 'Query'."
        _clean(caught.value)
    with pytest.raises(InvalidRequest, match="exactly one root field") as two:
        client.query("{ orders { id } customers { id } }")
    _clean(two.value)
    with pytest.raises(InvalidRequest, match="compression"):
        client.query("{ orders { id } }", compression="gzip")
    with pytest.raises(InvalidRequest, match="Variable"):
        client.query("query($n: Int!) { orders(limit: $n) { id } }", {"n": "many"})


def test_unknown_entity_is_not_found(client: Client) -> None:
    with pytest.raises(NotFound) as caught:
        client.read_entity("nowhere")
    assert caught.value.message == "not found: no table or view named 'nowhere'"
    with pytest.raises(NotFound):
        client.read_entity("nowhere", parallel=False)


def test_tokens(auth_server: Server) -> None:
    for token in (None, "wrong"):
        with Client(auth_server.flight_url, token) as quiver:
            for call in (quiver.health, quiver.entities, lambda q=quiver: q.query("{ orders { id } }"),
                         lambda q=quiver: q.schema("{ orders { id } }"), lambda q=quiver: q.read_entity("orders"),
                         lambda q=quiver: q.ingest("orders", pa.table({"id": [1]}))):
                with pytest.raises(Unauthenticated) as caught:
                    call()
                assert caught.value.message == "a valid bearer token is required"
    with Client(auth_server.flight_url, "tok") as quiver:
        assert quiver.health()["status"] == "ok"
        assert set(quiver.entities()) == ENTITIES
        assert quiver.query("{ orders(limit: 4) { id } }").num_rows == 4
        assert quiver.schema("{ orders { id } }").names == ["id"]
        assert quiver.read_entity("orders", parallel=True).num_rows == SMALL_ORDERS  # headers on worker threads too


def test_unreachable_server_is_unavailable() -> None:
    with Client(f"grpc://127.0.0.1:{free_port()}") as quiver, pytest.raises(Unavailable):
        quiver.health()


def test_call_timeout(server: Server) -> None:
    with Client(server.flight_url, timeout=1e-6) as quiver, pytest.raises(Timeout):
        quiver.query("{ orders { id } }")


def test_tls(demo_url: str, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    running = start_server(demo_url, QUIVER_TLS_CERT=str(cert), QUIVER_TLS_KEY=str(key), QUIVER_TOKENS='["tok"]')
    try:
        assert running.flight_url.startswith("grpc+tls://")
        with Client(running.flight_url, "tok", tls_root_certs=cert.read_bytes()) as quiver:
            assert quiver.health()["status"] == "ok"
            assert quiver.query("{ orders(limit: 5) { id } }").num_rows == 5
            assert quiver.read_entity("orders").num_rows == SMALL_ORDERS
        with Client(running.flight_url, "nope", tls_root_certs=cert.read_bytes()) as quiver, \
                pytest.raises(Unauthenticated):
            quiver.health()
        with Client(running.flight_url, "tok") as untrusted, pytest.raises(QuiverError):
            untrusted.health()  # the self-signed certificate is not in the system store
    finally:
        stop_server(running)


def test_bad_urls() -> None:
    for url in ("http://127.0.0.1:1", "127.0.0.1:8815", ""):
        with pytest.raises(ValueError):
            Client(url)


# -- quiver query ------------------------------------------------------------------------------------------------
def _run(server: Server, graphql: str, output: Path | None = None, fmt: str | None = None,
         variables: str | None = None, compression: str | None = None) -> None:
    query_command(graphql, None, server.flight_url, None, output, fmt, variables, compression)


def test_cli_arrow_file(client: Client, server: Server, tmp_path: Path) -> None:
    out = tmp_path / "orders.arrow"
    _run(server, ORDERS, out)
    with pa.ipc.open_file(out) as stored:
        assert stored.read_all().equals(client.query(ORDERS))
    assert not (tmp_path / "orders.arrow.part").exists()
    explicit = tmp_path / "orders.bin"
    _run(server, ORDERS, explicit, fmt="arrow", compression="zstd")
    with pa.ipc.open_file(explicit) as stored:
        assert stored.read_all().equals(client.query(ORDERS))


def test_cli_parquet_file(client: Client, server: Server, tmp_path: Path) -> None:
    out = tmp_path / "orders.parquet"
    _run(server, ORDERS, out, compression="lz4")
    expected = client.query(ORDERS)
    stored = pq.read_table(out)
    assert stored.schema.names == expected.schema.names
    assert stored.to_pylist() == expected.to_pylist()
    assert stored.cast(expected.schema).equals(expected)


def test_cli_csv_file(client: Client, server: Server, tmp_path: Path) -> None:
    out = tmp_path / "orders.csv"
    _run(server, FLAT, out)
    expected = client.query(FLAT)
    types = {f.name: f.type.value_type if pa.types.is_dictionary(f.type) else f.type for f in expected.schema}
    stored = pacsv.read_csv(out, convert_options=pacsv.ConvertOptions(
        column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False))
    assert stored.schema.names == expected.schema.names
    assert stored.to_pylist() == expected.to_pylist()


def test_cli_csv_nested_and_binary(client: Client, server: Server, tmp_path: Path) -> None:
    out = tmp_path / "nested.csv"
    _run(server, ORDERS, out, fmt="csv")
    expected = client.query(ORDERS).to_pylist()
    stored = pacsv.read_csv(out, convert_options=pacsv.ConvertOptions(
        column_types={"customer": pa.string(), "orderItems": pa.string()})).to_pylist()
    assert len(stored) == len(expected) == SMALL_ORDERS
    for got, want in zip(stored, expected, strict=True):
        assert json.loads(got["customer"]) == want["customer"]
        assert json.loads(got["orderItems"]) == [
            {"quantity": item["quantity"], "unitPrice": str(item["unitPrice"])} for item in want["orderItems"]]
    products = tmp_path / "products.csv"
    _run(server, PRODUCTS, products)
    want_products = client.query(PRODUCTS).to_pylist()
    got_products = pacsv.read_csv(products, convert_options=pacsv.ConvertOptions(
        column_types={"tags": pa.string(), "thumbnail": pa.string()}, strings_can_be_null=True,
        quoted_strings_can_be_null=False)).to_pylist()
    for got, want in zip(got_products, want_products, strict=True):
        assert json.loads(got["tags"]) == want["tags"]
        assert (base64.b64decode(got["thumbnail"]) if got["thumbnail"] is not None else None) == want["thumbnail"]


def test_cli_variables_and_empty_results(client: Client, server: Server, tmp_path: Path) -> None:
    query = "query($n: Int!) { orders(limit: $n, orderBy: [{id: ASC}]) { id total } }"
    out = tmp_path / "five.parquet"
    _run(server, query, out, variables='{"n": 5}')
    assert pq.read_table(out).equals(client.query(query, {"n": 5}))
    empty = "{ orders(where: {id: {lt: \"0\"}}) { id status } }"
    for name in ("empty.csv", "empty.parquet", "empty.arrow"):
        _run(server, empty, tmp_path / name)
    assert pacsv.read_csv(tmp_path / "empty.csv").schema.names == ["id", "status"]
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0
    with pa.ipc.open_file(tmp_path / "empty.arrow") as stored:
        assert stored.schema == client.schema(empty)
        assert stored.read_all().num_rows == 0


def test_cli_table(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    _run(server, FLAT)
    printed = capsys.readouterr().out
    assert f"{SMALL_ORDERS:,} rows (first 20 shown)" in printed
    _run(server, "{ customers(orderBy: [{id: ASC}], limit: 2) { id name } }")
    printed = capsys.readouterr().out
    assert printed.rstrip().endswith("2 rows")
    assert "name" in printed


def test_cli_errors(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited:
        _run(server, "{ nope }")
    assert exited.value.exit_code == 1
    assert "Cannot query field 'nope'" in capsys.readouterr().err
    with pytest.raises(typer.Exit):
        _run(server, "{ nope }", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.csv.part").exists()
    for kwargs in ({"output": tmp_path / "x.txt"}, {"fmt": "xlsx"}, {"fmt": "csv"},
                   {"fmt": "table", "output": tmp_path / "t.csv"}, {"variables": "[1]"}, {"variables": "{"}):
        with pytest.raises(typer.BadParameter):
            _run(server, "{ orders { id } }", **kwargs)
    with pytest.raises(typer.BadParameter):
        query_command(None, None, server.flight_url, None, None, None, None, None)
    with pytest.raises(typer.BadParameter):
        query_command("{ orders { id } }", None, "http://nope", None, None, None, None, None)


def test_cli_reads_query_and_variables_from_files(client: Client, server: Server, tmp_path: Path) -> None:
    source = tmp_path / "q.graphql"
    source.write_text("query($n: Int!) { orders(limit: $n, orderBy: [{id: ASC}]) { id } }")
    values = tmp_path / "v.json"
    values.write_text('{"n": 3}')
    out = tmp_path / "q.arrow"
    query_command(None, source, server.flight_url, None, out, None, f"@{values}", None)
    with pa.ipc.open_file(out) as stored:
        assert stored.read_all().column("id").to_pylist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("months", "days", "seconds"),
    [(0, 0, "0"), (14, 3, "3723.5"), (-14, -3, "-3723.000001"), (1, -1, "59"), (0, 0, "0.25"), (24, 0, "-7200")],
)
def test_interval_text_matches_postgresql(db: Db, months: int, days: int, seconds: str) -> None:
    """Intervals (no Arrow form in CSV or Parquet) are written as PostgreSQL's iso_8601 text."""
    db.execute("SET intervalstyle = iso_8601")
    row = db.execute("SELECT make_interval(0, %s, 0, %s, 0, 0, %s::numeric)::text",
                     (months, days, seconds)).fetchone()
    assert row is not None
    nanos = int(decimal.Decimal(seconds) * 1_000_000_000)
    assert _iso_interval(pa.MonthDayNano([months, days, nanos])) == row[0]
