"""A non-Python Flight client: the Arrow Go library reads exactly what pyarrow reads.

The CLI in clients/go is built once per session (``go build`` fetches its modules
from the module proxy when the cache is empty; a failed build fails the tests).
It prints the schema with Go's type strings and every value as JSON; this file
renders pyarrow's table the same way and compares value for value.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

from tests.conftest import ROOT, Server, start_server, stop_server

TOKEN = "secret-token"
AUTH = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())])
QUERY = (
    "{ orders(orderBy:[{id:ASC}], limit: 500) { id uuid status total isPaid placedAt shippedOn meta"
    " customer { id name } orderItems(orderBy:[{id:ASC}]) { quantity unitPrice } } }"
)


@pytest.fixture(scope="session")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is not on PATH")
    binary = tmp_path_factory.mktemp("go-client") / "quiver-flight-go"
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false"}
    build = subprocess.run([go, "build", "-o", str(binary), "./"], cwd=ROOT / "clients" / "go", env=env,
                           capture_output=True, text=True, timeout=1800)
    if build.returncode != 0:
        pytest.fail(f"go build failed ({build.returncode}):\n{build.stderr}")
    return binary


@pytest.fixture(scope="module")
def secured(demo_url: str) -> Iterator[Server]:
    running = start_server(demo_url, QUIVER_TOKENS=f'["{TOKEN}"]')
    yield running
    stop_server(running)


def run_go(binary: Path, server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    addr = server.flight_url.removeprefix("grpc://")
    return subprocess.run([str(binary), "-addr", addr, *args], capture_output=True, text=True, timeout=600)


def read_go(binary: Path, server: Server, *args: str) -> dict[str, Any]:
    done = run_go(binary, server, "-token", TOKEN, *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = orjson.loads(done.stdout)
    return result


def go_type(t: pa.DataType) -> str:
    """The string Arrow Go's ``DataType.String()`` gives for ``t``."""
    if pa.types.is_dictionary(t):
        ordered = "true" if t.ordered else "false"
        return f"dictionary<values={go_type(t.value_type)}, indices={go_type(t.index_type)}, ordered={ordered}>"
    if pa.types.is_list(t):
        item = t.value_field
        return f"list<{item.name}: {go_type(item.type)}{', nullable' if item.nullable else ''}>"
    if pa.types.is_struct(t):
        return "struct<" + ", ".join(f"{f.name}: {go_type(f.type)}{' nullable' if f.nullable else ''}" for f in t) + ">"
    if pa.types.is_decimal128(t):
        return f"decimal({t.precision}, {t.scale})"
    if pa.types.is_timestamp(t):
        return f"timestamp[{t.unit}, tz={t.tz}]" if t.tz else f"timestamp[{t.unit}]"
    names = {pa.string(): "utf8", pa.large_string(): "large_utf8", pa.bool_(): "bool", pa.date32(): "date32",
             pa.float32(): "float32", pa.float64(): "float64"}
    return names.get(t, str(t))  # integer and binary names agree


def go_schema(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": go_type(f.type), "nullable": f.nullable} for f in schema]


def render(value: Any, t: pa.DataType) -> Any:
    """One pyarrow value in the Go client's JSON form."""
    if value is None:
        return None
    if pa.types.is_dictionary(t):
        return render(value, t.value_type)
    if pa.types.is_int64(t) or pa.types.is_uint64(t):
        return str(value)
    if pa.types.is_decimal(t):
        return format(value, "f")
    if pa.types.is_timestamp(t):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if pa.types.is_date32(t):
        return value.isoformat()
    if pa.types.is_binary(t):
        return base64.b64encode(value).decode()
    if pa.types.is_list(t):
        return [render(v, t.value_type) for v in value]
    if pa.types.is_struct(t):
        return {f.name: render(value[f.name], f.type) for f in t}
    return value


def test_graphql_ticket_matches_pyarrow(go_client: Path, secured: Server) -> None:
    ticket = orjson.dumps({"kind": "graphql", "query": QUERY})
    table = flight.connect(secured.flight_url).do_get(flight.Ticket(ticket), AUTH).read_all()
    got = read_go(go_client, secured, "-ticket", ticket.decode())

    assert table.num_rows == got["rows"] == 500
    assert got["batches"] >= 1
    assert got["schema"] == go_schema(table.schema)
    expected = {f.name: [render(v, f.type) for v in table.column(f.name).to_pylist()] for f in table.schema}
    assert got["columns"] == expected
    # The comparison covers the interesting cases, not just empty or uniform columns.
    columns = got["columns"]
    assert None in columns["shippedOn"] and any(columns["shippedOn"])
    assert len(set(columns["status"])) > 1
    assert any(len(items) > 1 for items in columns["orderItems"])
    assert columns["id"][:2] == ["1", "2"]


def python_checksums(table: pa.Table) -> dict[str, Any]:
    sums: dict[str, Any] = {}
    for f in table.schema:
        if pa.types.is_int64(f.type):
            sums[f.name] = str(pc.sum(table.column(f.name)).as_py() or 0)
        elif pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            sums[f.name] = sum(len(s.encode()) for s in table.column(f.name).to_pylist() if s is not None)
    return sums


def test_partitioned_entity_read_matches_pyarrow(go_client: Path, secured: Server) -> None:
    client = flight.connect(secured.flight_url)
    info = client.get_flight_info(flight.FlightDescriptor.for_path("orders"), AUTH)
    assert len(info.endpoints) > 1
    table = pa.concat_tables([client.do_get(e.ticket, AUTH).read_all() for e in info.endpoints])
    got = read_go(go_client, secured, "-path", "orders", "-summary")

    assert "columns" not in got
    assert table.num_rows == got["rows"] == 2000
    assert got["schema"] == go_schema(info.schema) == go_schema(table.schema)
    assert got["checksums"]["id"] == str(pc.sum(table.column("id")).as_py()) == str(sum(range(1, 2001)))
    assert got["checksums"] == python_checksums(table)


@pytest.mark.parametrize("token", [None, "wrong-token"])
@pytest.mark.parametrize("target", [["-path", "orders"], ["-ticket", '{"kind":"entity","entity":"orders"}']])
def test_missing_or_bad_token_is_unauthenticated(go_client: Path, secured: Server, token: str | None,
                                                 target: list[str]) -> None:
    done = run_go(go_client, secured, *(["-token", token] if token else []), *target)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "Unauthenticated" in done.stderr


@pytest.mark.parametrize("ticket", ["not json", '{"kind":"graphql","query":"{ orders { noSuchField } }"}'])
def test_bad_ticket_is_invalid_argument(go_client: Path, secured: Server, ticket: str) -> None:
    done = run_go(go_client, secured, "-token", TOKEN, "-ticket", ticket)
    assert done.returncode != 0
    assert done.stdout == ""
    assert "InvalidArgument" in done.stderr


@pytest.mark.parametrize(
    ("ticket", "code"),
    [
        ("not json", "InvalidArgument"),
        ('{"kind":"entity","entity":"nope"}', "NotFound"),
        ('{"kind":"graphql","query":"{ orders { noSuchField } }"}', "InvalidArgument"),
        ('{"kind":"entity","entity":"orders","range":[{"a":1},null]}', "InvalidArgument"),
        # 120 KB: one command-line argument holds at most 128 KiB (300 KB: tests/integration/flight/)
        ('{"kind":"entity","entity":"' + "x" * 120_000 + '"}', "NotFound"),
    ],
)
def test_refusals_carry_the_code_and_no_traceback(go_client: Path, secured: Server, ticket: str, code: str) -> None:
    done = run_go(go_client, secured, "-token", TOKEN, "-ticket", ticket)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"quiver-flight-go: {code}: "), done.stderr[:500]
    assert not any(leak in done.stderr for leak in ("Traceback", ".py", "/work")), done.stderr[:2000]
    assert len(done.stderr) < 2_000


def test_statement_timeout_is_deadline_exceeded(go_client: Path, scratch_url: str) -> None:
    import psycopg

    with psycopg.connect(scratch_url) as conn:
        conn.execute("CREATE VIEW slow_view AS SELECT g AS n FROM generate_series(1, 3) g "
                     "WHERE pg_sleep(8) IS NOT NULL")
    running = start_server(scratch_url, QUIVER_STATEMENT_TIMEOUT_MS="500")
    try:
        for target in (["-ticket", '{"kind":"entity","entity":"slow_view"}'], ["-path", "slow_view"]):
            done = run_go(go_client, running, *target)
            assert done.stderr.startswith("quiver-flight-go: DeadlineExceeded: "), done.stderr[:500]
            assert "statement timeout" in done.stderr
            assert not any(leak in done.stderr for leak in ("Traceback", ".py", "/work")), done.stderr
    finally:
        stop_server(running)
