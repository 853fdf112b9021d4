"""Arrow Flight: standard behaviour, auth on every RPC, TLS, memory, cancellation, ingest."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import orjson
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from tests.conftest import BIG_ORDERS, Server, start_server, stop_server, wait_for

TOKEN = "s3cret-token"
AUTH = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())])
ORDERS = {"kind": "graphql", "query": "{ orders(orderBy: [{id: ASC}], limit: 50) { id total status } }"}


def ticket(body: Mapping[str, object]) -> flight.Ticket:
    return flight.Ticket(orjson.dumps(body))


@pytest.fixture(scope="module")
def secured(demo_url: str) -> Iterator[Server]:
    running = start_server(demo_url, QUIVER_TOKENS=orjson.dumps([TOKEN, "other"]).decode())
    yield running
    stop_server(running)


def every_rpc(client: flight.FlightClient, options: flight.FlightCallOptions) -> dict[str, object]:
    """Call each RPC once; return what it gave or the exception it raised."""
    command = flight.FlightDescriptor.for_command(orjson.dumps(ORDERS))
    calls: dict[str, Callable[[], object]] = {
        "do_get": lambda: client.do_get(ticket(ORDERS), options).read_all(),
        "get_schema": lambda: client.get_schema(command, options),
        "get_flight_info": lambda: client.get_flight_info(flight.FlightDescriptor.for_path("orders"), options),
        "list_flights": lambda: list(client.list_flights(options=options)),
        "do_action": lambda: list(client.do_action(flight.Action("health", b""), options)),
        "list_actions": lambda: client.list_actions(options),
        "do_put": lambda: client.do_put(flight.FlightDescriptor.for_path("orders"),
                                        pa.schema([("uuid", pa.string())]), options)[0].close(),
    }
    results: dict[str, object] = {}
    for name, call in calls.items():
        try:
            results[name] = call()
        except Exception as error:  # noqa: BLE001 - recorded and asserted by the caller
            results[name] = error
    return results


def refused_unauthenticated(result: object) -> bool:
    """pyarrow raises FlightUnauthenticatedError, except GetSchema, which wraps the status in an OSError."""
    if isinstance(result, flight.FlightUnauthenticatedError):
        return True
    return isinstance(result, OSError) and "Detail: Unauthenticated" in str(result)


def test_every_rpc_needs_a_valid_token(secured: Server) -> None:
    client = flight.connect(secured.flight_url)
    for options in (flight.FlightCallOptions(),
                    flight.FlightCallOptions(headers=[(b"authorization", b"Bearer wrong")]),
                    flight.FlightCallOptions(headers=[(b"authorization", TOKEN.encode())])):
        for name, result in every_rpc(client, options).items():
            assert refused_unauthenticated(result), (name, result)
    results = every_rpc(client, AUTH)
    failures = {k: v for k, v in results.items() if isinstance(v, Exception) and k != "do_put"}
    assert not failures
    table = results["do_get"]
    assert isinstance(table, pa.Table) and table.num_rows == 50, table
    # do_put (an empty stream of one column) gets past auth; whatever it says then is about the stream.
    assert not refused_unauthenticated(results["do_put"]), results["do_put"]


def test_http_plane_takes_the_same_tokens(secured: Server) -> None:
    with secured.client() as http:
        body = {"query": "{ ordersAggregate { count } }"}
        assert http.post("/graphql", json=body).status_code == 401
        assert http.post("/graphql", json=body, headers={"authorization": "Bearer nope"}).status_code == 401
        assert http.post("/graphql", json=body, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert http.post("/graphql", json=body, headers={"authorization": "Bearer other"}).status_code == 200


def test_tls_round_trip(demo_url: str, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    running = start_server(demo_url, QUIVER_TLS_CERT=str(cert), QUIVER_TLS_KEY=str(key))
    try:
        assert running.flight_url.startswith("grpc+tls://")
        client = flight.connect(running.flight_url, tls_root_certs=cert.read_bytes())
        table = client.do_get(ticket(ORDERS)).read_all()
        assert table.num_rows == 50 and table.column_names == ["id", "total", "status"]
        plain = flight.connect(running.flight_url.replace("grpc+tls", "grpc"))
        with pytest.raises(flight.FlightError):
            plain.do_get(ticket(ORDERS)).read_all()
    finally:
        stop_server(running)


def test_standard_flight_behaviour(server: Server, db: psycopg.Connection[tuple[object, ...]]) -> None:
    client = flight.connect(server.flight_url)
    names = {info.descriptor.path[0].decode() for info in client.list_flights()}
    assert {"orders", "customers", "products", "orderItems", "customerOrderTotals"} <= names

    info = client.get_flight_info(flight.FlightDescriptor.for_path("orders"))
    row = db.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    count = row[0]
    assert isinstance(count, int), row
    assert info.total_records == count and len(info.endpoints) > 1
    parts = [client.do_get(e.ticket).read_all() for e in info.endpoints]
    assert all(p.schema == info.schema for p in parts)
    ids = [i for p in parts for i in p.column("id").to_pylist()]
    assert sorted(ids) == list(range(1, count + 1))  # every row exactly once

    command = flight.FlightDescriptor.for_command(orjson.dumps(ORDERS))
    info = client.get_flight_info(command)
    table = client.do_get(info.endpoints[0].ticket).read_all()
    assert client.get_schema(command).schema == table.schema == info.schema
    assert table.schema.field("status").type == pa.dictionary(pa.int16(), pa.string())

    health = [orjson.loads(r.body.to_pybytes()) for r in client.do_action(flight.Action("health", b""))]
    assert health == [{"status": "ok", "database": True}]


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_compression_is_selectable_per_request(server: Server, compression: str) -> None:
    client = flight.connect(server.flight_url)
    plain = client.do_get(ticket(ORDERS)).read_all()
    packed = client.do_get(ticket({**ORDERS, "compression": compression})).read_all()
    assert packed.equals(plain)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"kind": "graphql", "query": "{ nope }"}, pa.ArrowInvalid),
        ({"kind": "graphql", "query": "{ orders { id } customers { id } }"}, pa.ArrowInvalid),
        ({"kind": "graphql", "query": "mutation { deleteOrders(where: {}) { id } }"}, pa.ArrowInvalid),
        ({"kind": "entity", "entity": "nope"}, pa.ArrowKeyError),
        ({"kind": "sql", "query": "select 1"}, pa.ArrowInvalid),
        ({"kind": "graphql", "query": "{ orders { id } }", "compression": "snappy"}, pa.ArrowInvalid),
    ],
)
def test_errors_map_to_flight_status_codes(server: Server, body: dict[str, object], error: type) -> None:
    client = flight.connect(server.flight_url)
    with pytest.raises(error):
        client.do_get(ticket(body)).read_all()
    with pytest.raises(error):
        client.get_schema(flight.FlightDescriptor.for_command(orjson.dumps(body)))


def test_do_put_ingests_through_insert_so_triggers_fire(scratch_url: str) -> None:
    with psycopg.connect(scratch_url) as conn:
        conn.execute("CREATE TABLE audit (order_uuid uuid, at timestamptz DEFAULT now())")
        conn.execute("""CREATE FUNCTION audit_order() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO audit (order_uuid) VALUES (NEW.uuid); RETURN NEW; END $$""")
        conn.execute("CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit_order()")
        conn.commit()
    running = start_server(scratch_url)
    try:
        client = flight.connect(running.flight_url)
        rows = pa.table({
            "uuid": [f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)],
            "customerId": pa.array([1, 2, 3], pa.int64()),
            "status": pa.array(["paid", "shipped", "paid"]).dictionary_encode(),
            "total": pa.array(["1.10", "2.20", "3.30"]).cast(pa.decimal128(12, 2)),
            "placedAt": pa.array([0, 1, 2], pa.timestamp("us", tz="UTC")),
            "meta": ['{"via": "flight"}'] * 3,
        })
        writer, reader = client.do_put(flight.FlightDescriptor.for_path("orders"), rows.schema)
        writer.write_table(rows)
        writer.done_writing()
        assert orjson.loads(reader.read().to_pybytes()) == {"rows": 3}
        writer.close()
        bad = pa.table({"nope": [1]})
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("orders"), bad.schema)
        with pytest.raises(pa.ArrowInvalid):
            writer.write_table(bad)
            writer.close()
    finally:
        stop_server(running)
    with psycopg.connect(scratch_url) as conn:
        assert conn.execute("SELECT count(*) FROM audit").fetchone() == (3,)
        stored = conn.execute("SELECT status::text, total::text, meta FROM orders WHERE uuid::text LIKE "
                              "'00000000-0000-4000-8000-%' ORDER BY uuid").fetchall()
    assert stored == [("paid", "1.10", {"via": "flight"}), ("shipped", "2.20", {"via": "flight"}),
                      ("paid", "3.30", {"via": "flight"})]


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.mark.slow
def test_million_row_entity_streams_with_flat_memory(big_url: str) -> None:
    running = start_server(big_url)
    try:
        client = flight.connect(running.flight_url)
        client.do_get(ticket({"kind": "graphql", "query": "{ orders(limit: 1000) { id } }"})).read_all()
        idle_kb = _status_kb(running.pid, "VmRSS")
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.005):
                samples.append(_status_kb(running.pid, "VmRSS"))

        sampler = threading.Thread(target=sample)
        sampler.start()
        rows = 0
        try:
            reader = client.do_get(ticket({"kind": "entity", "entity": "orders"}))
            for chunk in reader:
                rows += chunk.data.num_rows
        finally:
            done.set()
            sampler.join()
        peak_kb = max([*samples, _status_kb(running.pid, "VmHWM")])
    finally:
        stop_server(running)
    growth_mb = (peak_kb - idle_kb) / 1024
    print(f"\nFlight 1M rows: idle {idle_kb / 1024:.0f} MB, peak {peak_kb / 1024:.0f} MB (+{growth_mb:.1f} MB)")
    assert rows == BIG_ORDERS
    assert growth_mb < 64, f"server memory grew by {growth_mb:.0f} MB while streaming"


@pytest.mark.slow
def test_client_that_goes_away_cancels_the_query(big_url: str) -> None:
    running = start_server(big_url)
    marker = "cancel-probe"
    try:
        client = flight.connect(running.flight_url)
        slow = {"kind": "graphql",
                "query": f'{{ orders(orderBy: [{{note: ASC}}, {{uuid: DESC}}], where: {{note: {{neq: "{marker}"}}}}) '
                         "{ id uuid note customer { name orders(limit: 3) { id } } } }"}
        reader = client.do_get(ticket(slow))
        reader.read_chunk()  # the stream is running
        probe = "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s"
        pattern = '%ORDER BY t1."note" ASC NULLS LAST, t1."uuid" DESC NULLS FIRST%'
        with psycopg.connect(big_url, autocommit=True) as conn:
            ours = conn.execute(probe, (pattern,)).fetchall()
            assert ours, "the stream's statement should be running (a leader, maybe parallel workers)"
            reader.cancel()
            client.close()
            wait_for(lambda: not conn.execute(probe, (pattern,)).fetchall(), 20,
                     "the PostgreSQL statement kept running after the client left")
    finally:
        stop_server(running)
