"""Flight SQL through arrow-go's ``flightsql`` client (arrow-go v18.8.0), checked against psycopg.

The CLI in clients/go-flightsql is built once per session (``go build`` fetches its modules from the
module proxy when the cache is empty; a missing toolchain or a failed build fails the tests). It
connects with ``flightsql.NewClient`` and an ``authorization: Bearer`` header and prints what it read
as JSON. Against a real ``quiver serve`` over the demo database this proves that a Go program:

* runs a query (Execute, then DoGet on every endpoint) and reads the same values psycopg reads —
  integers, text, numeric (as PostgreSQL's text), timestamps, dates, booleans, NULLs and arrays —
  with the FlightInfo schema equal to the stream's;
* prepares a statement with PostgreSQL ``$1`` placeholders, binds a parameter record built from the
  parameter schema the server returns, runs it twice with different values and closes it;
* reads the catalog (catalogs, schemas, tables with their column schemas, table types, primary and
  foreign keys, SqlInfo, XDBC type info) and finds it equal to pg_catalog, in the result schemas
  arrow-go's ``schema_ref`` package defines;
* gets refusals as gRPC codes with clear messages and no server internals: bad SQL and writes are
  InvalidArgument, the statement timeout is DeadlineExceeded (Flight's TIMED_OUT), no token is
  Unauthenticated;
* cancels a running query with CancelFlightInfo: CANCELLED, the DoGet ends with Canceled and the
  PostgreSQL statement stops.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from tests.conftest import ROOT, Server, start_server, stop_server

TOKEN = "tok"
Row = tuple[Any, ...]
LEAKS = ("Traceback", ".py", "/work")


@pytest.fixture(scope="session")
def go_flightsql(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain (`go`) is not on PATH: it is needed to build clients/go-flightsql")
    binary = tmp_path_factory.mktemp("go-flightsql") / "quiver-flightsql-go"
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false"}
    build = subprocess.run([go, "build", "-o", str(binary), "./"], cwd=ROOT / "clients" / "go-flightsql", env=env,
                           capture_output=True, text=True, timeout=1800)
    if build.returncode != 0:
        pytest.fail(f"go build of clients/go-flightsql failed ({build.returncode}):\n{build.stderr}")
    return binary


@pytest.fixture(scope="module")
def served(demo_url: str) -> Iterator[Server]:
    running = start_server(demo_url, QUIVER_TOKENS=f'["{TOKEN}"]', QUIVER_STATEMENT_TIMEOUT_MS="1000")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def patient(demo_url: str) -> Iterator[Server]:
    """A server whose statement timeout is far away, so that only a cancel can end a slow query."""
    running = start_server(demo_url, QUIVER_TOKENS=f'["{TOKEN}"]', QUIVER_STATEMENT_TIMEOUT_MS="120000")
    yield running
    stop_server(running)


def run_go(binary: Path, server: Server, *args: str, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    """The CLI's exit status and the one JSON object it printed."""
    addr = server.flight_url.removeprefix("grpc://")
    command = [str(binary), "-addr", addr, *(["-token", token] if token is not None else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.stdout.count("\n") == 1, (done.returncode, done.stdout[:2000], done.stderr[:2000])
    printed: dict[str, Any] = orjson.loads(done.stdout)
    return done.returncode, printed


def read(binary: Path, server: Server, *args: str) -> dict[str, Any]:
    status, printed = run_go(binary, server, *args)
    assert status == 0 and "error" not in printed, printed
    return printed


def refused(binary: Path, server: Server, *args: str, token: str | None = TOKEN) -> dict[str, Any]:
    status, printed = run_go(binary, server, *args, token=token)
    assert status == 2, printed
    assert set(printed) == {"error"}, printed
    error: dict[str, Any] = printed["error"]
    assert set(error) == {"code", "message", "call"}
    assert not any(leak in error["message"] for leak in LEAKS), error
    assert len(error["message"]) < 1000, error
    return error


def render(value: Any) -> Any:
    """A psycopg value in the CLI's JSON form (numeric as PostgreSQL's text, timestamps in UTC)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


def oracle(db: psycopg.Connection[Row], sql: str, params: tuple[Any, ...] = ()) -> list[list[Any]]:
    """psycopg's rows for ``sql`` (``$n`` placeholders become psycopg's), rendered."""
    for n in range(len(params), 0, -1):
        sql = sql.replace(f"${n}", f"%(p{n})s")
    rows = db.execute(sql, {f"p{n}": p for n, p in enumerate(params, 1)} if params else None).fetchall()
    return [[render(v) for v in row] for row in rows]


def types(schema: list[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in schema]


# -- queries ----------------------------------------------------------------------------------

ORDERS = (
    "SELECT o.id, o.uuid, o.status, o.total, o.is_paid, o.note, o.placed_at, o.shipped_on, o.meta, c.name, "
    "ARRAY(SELECT i.quantity FROM order_items i WHERE i.order_id = o.id ORDER BY i.id) AS quantities, "
    "ARRAY(SELECT i.unit_price FROM order_items i WHERE i.order_id = o.id ORDER BY i.id) AS prices "
    "FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id <= 300 ORDER BY o.id"
)


def test_a_query_reads_what_psycopg_reads(go_flightsql: Path, served: Server, db: psycopg.Connection[Row]) -> None:
    got = read(go_flightsql, served, "query", ORDERS)
    assert got["schema"] == got["info_schema"]
    assert types(got["schema"]) == ["int64", "utf8", "utf8", "decimal(12, 2)", "bool", "utf8", "timestamp[us, tz=UTC]",
                                    "date32", "utf8", "utf8", "list<item: int32, nullable>",
                                    "list<item: utf8, nullable>"]
    assert [f["name"] for f in got["schema"]] == ["id", "uuid", "status", "total", "is_paid", "note", "placed_at",
                                                  "shipped_on", "meta", "name", "quantities", "prices"]
    assert got["endpoints"] >= 1
    expected = oracle(db, ORDERS)
    rows = got["rows"]
    for row in rows:  # jsonb arrives as PostgreSQL's text; psycopg parses it
        row[8] = orjson.loads(row[8])
    assert len(rows) == len(expected) == 300
    assert rows == expected
    # The comparison covers NULLs and values, several statuses and multi-item arrays.
    assert any(r[5] is None for r in rows) and any(r[5] is not None for r in rows)
    assert any(r[7] is None for r in rows) and any(r[7] is not None for r in rows)
    assert len({r[2] for r in rows}) > 1
    assert any(len(r[10]) > 1 for r in rows)


SCALARS = (
    "SELECT 9007199254740993::bigint AS big, (-2147483648)::int AS small, 7::int2 AS tiny, -1.5::float8 AS f, "
    "'héllo \"x\"'::text AS t, ''::text AS empty, NULL::int AS nothing, "
    "12345678901234567890.123456789::numeric AS huge, 0.0000001::numeric AS tiny_numeric, "
    "'\\x00ff10'::bytea AS raw, DATE '0001-01-01' AS first_day, "
    "TIMESTAMPTZ '2024-02-29 12:34:56.789012+02' AS leap, ARRAY['a', NULL, 'c d']::text[] AS texts, "
    "'{}'::int[] AS no_ints, false AS flag"
)


def test_scalars_of_every_kind_match_psycopg(go_flightsql: Path, served: Server, db: psycopg.Connection[Row]) -> None:
    got = read(go_flightsql, served, "query", SCALARS)
    assert types(got["schema"]) == ["int64", "int32", "int16", "float64", "utf8", "utf8", "int32", "utf8", "utf8",
                                    "binary", "date32", "timestamp[us, tz=UTC]", "list<item: utf8, nullable>",
                                    "list<item: int32, nullable>", "bool"]
    assert got["rows"] == oracle(db, SCALARS)
    assert got["rows"][0][0] == 2**53 + 1  # exact: neither side went through a float


def test_an_empty_result_keeps_its_schema(go_flightsql: Path, served: Server) -> None:
    got = read(go_flightsql, served, "query", "SELECT id, note FROM orders WHERE false")
    assert got["rows"] == []
    assert got["schema"] == got["info_schema"]
    assert types(got["schema"]) == ["int64", "utf8"]


# -- prepared statements ------------------------------------------------------------------------

PREPARED = (
    "SELECT o.id, o.total, o.status, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.customer_id <= $1 AND c.name <> $2 AND o.total::float8 > $3 ORDER BY o.id"
)


def test_a_prepared_statement_runs_twice_with_new_parameters(go_flightsql: Path, served: Server,
                                                             db: psycopg.Connection[Row]) -> None:
    name = db.execute("SELECT name FROM customers WHERE id = 3").fetchone()
    assert name is not None
    first, second = (40, "nobody", 100.5), (80, name[0], 1000.0)
    got = read(go_flightsql, served, "prepared", PREPARED, orjson.dumps(first).decode(),
               orjson.dumps(second).decode())
    assert [(f["name"], f["type"]) for f in got["parameter_schema"]] == [("$1", "int64"), ("$2", "utf8"),
                                                                         ("$3", "float64")]
    assert types(got["dataset_schema"]) == ["int64", "decimal(12, 2)", "utf8", "utf8"]
    runs = got["runs"]
    assert len(runs) == 2
    for run, params in zip(runs, (first, second), strict=True):
        assert run["schema"] == run["info_schema"] == got["dataset_schema"]
        assert run["rows"] == oracle(db, PREPARED, params)
        assert run["rows"]
    assert runs[0]["rows"] != runs[1]["rows"]


def test_timestamp_and_date_parameters(go_flightsql: Path, served: Server, db: psycopg.Connection[Row]) -> None:
    sql = "SELECT id, placed_at, shipped_on FROM orders WHERE placed_at > $1 AND shipped_on < $2 ORDER BY id"
    params = ("2025-01-01T00:00:00.5+02:00", "2025-03-01")
    got = read(go_flightsql, served, "prepared", sql, orjson.dumps(params).decode())
    assert types(got["parameter_schema"]) == ["timestamp[us, tz=UTC]", "date32"]
    moment, day = dt.datetime.fromisoformat(params[0]), dt.date.fromisoformat(params[1])
    assert got["runs"][0]["rows"] == oracle(db, sql, (moment, day))
    assert got["runs"][0]["rows"]


@pytest.mark.parametrize(
    ("sql", "pg_type", "value"),
    [
        pytest.param("SELECT id FROM orders WHERE total > $1 AND id <= 100 ORDER BY id", "numeric", "1000.00",
                     id="numeric"),
        pytest.param("SELECT id FROM orders WHERE status = $1 AND id <= 100 ORDER BY id", "order_status", "paid",
                     id="enum"),
        pytest.param("SELECT id FROM orders WHERE uuid = $1", "uuid", None, id="uuid"),
    ],
)
def test_a_parameter_bound_as_the_server_describes_it(go_flightsql: Path, served: Server,
                                                      db: psycopg.Connection[Row], sql: str, pg_type: str,
                                                      value: str | None) -> None:
    """The server describes numeric, enum and uuid parameters as utf8; a string bound so must work."""
    if value is None:
        found = db.execute("SELECT uuid::text FROM orders WHERE id = 7").fetchone()
        assert found is not None
        value = found[0]
    status, got = run_go(go_flightsql, served, "prepared", sql, orjson.dumps([value]).decode())
    assert status == 0, got
    assert types(got["parameter_schema"]) == ["utf8"]
    assert got["runs"][0]["rows"] == oracle(db, sql.replace("$1", f"$1::text::{pg_type}"), (value,))
    assert got["runs"][0]["rows"]


# -- metadata -----------------------------------------------------------------------------------

TABLES = ["customers", "order_items", "orders", "products"]


@pytest.fixture(scope="module")
def catalog(go_flightsql: Path, served: Server) -> dict[str, Any]:
    return read(go_flightsql, served, "metadata", "public", *TABLES)


@pytest.fixture(scope="module")
def pg_catalog(demo_url: str) -> Iterator[psycopg.Connection[Row]]:
    with psycopg.connect(demo_url, autocommit=True) as conn:
        yield conn


def test_catalogs_and_schemas_are_pg_catalogs(catalog: dict[str, Any], pg_catalog: psycopg.Connection[Row]) -> None:
    database = pg_catalog.execute("SELECT current_database()").fetchone()
    assert database is not None
    assert catalog["GetCatalogs"]["rows"] == [{"catalog_name": database[0]}]
    schemas = pg_catalog.execute("SELECT nspname::text FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_toast%' "
                                 "AND nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1").fetchall()
    assert catalog["GetDBSchemas"]["rows"] == [{"catalog_name": database[0], "db_schema_name": s} for (s,) in schemas]
    assert {"public", "pg_catalog", "information_schema"} <= {s for (s,) in schemas}
    assert {r["table_type"] for r in catalog["GetTableTypes"]["rows"]} >= {"TABLE", "VIEW"}


def test_tables_and_their_columns_are_pg_catalogs(catalog: dict[str, Any],
                                                  pg_catalog: psycopg.Connection[Row]) -> None:
    relations = pg_catalog.execute(
        "SELECT current_database()::text, n.nspname::text, c.relname::text, "
        "CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' "
        "ELSE 'TABLE' END FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 3").fetchall()
    rows = catalog["GetTables"]["rows"]
    assert [(r["catalog_name"], r["db_schema_name"], r["table_name"], r["table_type"]) for r in rows] == relations
    assert {"TABLE", "VIEW"} <= {r["table_type"] for r in rows}
    for row in rows:
        columns = pg_catalog.execute(
            "SELECT a.attname::text, NOT a.attnotnull, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = ('public.' || quote_ident(%s))::regclass AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum", (row["table_name"],)).fetchall()
        fields = row["table_schema"]
        assert [(f["name"], f["nullable"], f["metadata"]["ARROW:FLIGHT:SQL:TYPE_NAME"]) for f in fields] == columns
        for f in fields:
            assert f["metadata"]["ARROW:FLIGHT:SQL:CATALOG_NAME"] == row["catalog_name"]
            assert f["metadata"]["ARROW:FLIGHT:SQL:DB_SCHEMA_NAME"] == "public"
            assert f["metadata"]["ARROW:FLIGHT:SQL:TABLE_NAME"] == row["table_name"]
    orders = next(r for r in rows if r["table_name"] == "orders")["table_schema"]
    assert [(f["name"], f["type"]) for f in orders][:4] == [("id", "int64"), ("uuid", "utf8"),
                                                            ("customer_id", "int64"), ("status", "utf8")]


def test_primary_keys_are_pg_catalogs(catalog: dict[str, Any], pg_catalog: psycopg.Connection[Row]) -> None:
    for table in TABLES:
        expected = pg_catalog.execute(
            "SELECT a.attname::text, k.ord::int, con.conname::text FROM pg_constraint con, "
            "unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord), pg_attribute a "
            "WHERE con.contype = 'p' AND con.conrelid = ('public.' || quote_ident(%s))::regclass "
            "AND a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY 2", (table,)).fetchall()
        rows = catalog["keys"][table]["GetPrimaryKeys"]["rows"]
        assert [(r["column_name"], r["key_sequence"], r["key_name"]) for r in rows] == expected
        assert all((r["db_schema_name"], r["table_name"]) == ("public", table) for r in rows)
        assert expected


FOREIGN_KEYS = (
    "SELECT pc.relname::text, pa.attname::text, fc.relname::text, fa.attname::text, k.ord::int, con.conname::text "
    "FROM pg_constraint con, unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(fk, pk, ord), "
    "pg_class fc, pg_class pc, pg_attribute fa, pg_attribute pa "
    "WHERE con.contype = 'f' AND fc.oid = con.conrelid AND pc.oid = con.confrelid "
    "AND fa.attrelid = fc.oid AND fa.attnum = k.fk AND pa.attrelid = pc.oid AND pa.attnum = k.pk "
)


def test_foreign_keys_are_pg_catalogs(catalog: dict[str, Any], pg_catalog: psycopg.Connection[Row]) -> None:
    def keys(rows: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
        return {(r["pk_table_name"], r["pk_column_name"], r["fk_table_name"], r["fk_column_name"], r["key_sequence"],
                 r["fk_key_name"]) for r in rows}

    for table in TABLES:
        imported = set(pg_catalog.execute(FOREIGN_KEYS + "AND fc.relname = %s", (table,)).fetchall())
        exported = set(pg_catalog.execute(FOREIGN_KEYS + "AND pc.relname = %s", (table,)).fetchall())
        assert keys(catalog["keys"][table]["GetImportedKeys"]["rows"]) == imported
        assert keys(catalog["keys"][table]["GetExportedKeys"]["rows"]) == exported
    assert ("orders", "id", "order_items", "order_id", 1, "order_items_order_id_fkey") in keys(
        catalog["keys"]["order_items"]["GetImportedKeys"]["rows"])
    cascade = catalog["keys"]["orders"]["GetExportedKeys"]["rows"]
    assert [(r["fk_table_name"], r["delete_rule"]) for r in cascade] == [("order_items", 0)]  # ON DELETE CASCADE


def test_sql_info_and_xdbc_types(catalog: dict[str, Any], pg_catalog: psycopg.Connection[Row]) -> None:
    version = pg_catalog.execute("SHOW server_version").fetchone()
    assert version is not None
    info = {r["info_name"]: r["value"] for r in catalog["GetSqlInfo"]["rows"]}
    # FLIGHT_SQL_SERVER_NAME 0, FLIGHT_SQL_SERVER_VERSION 1, FLIGHT_SQL_SERVER_READ_ONLY 3
    assert set(info) == {0, 1, 3}
    assert isinstance(info[0], str) and info[0]
    assert info[1] == f"PostgreSQL {version[0]}"
    assert info[3] is True
    xdbc = catalog["GetXdbcTypeInfo"]["rows"]
    names = [r["type_name"] for r in xdbc]
    assert {"bigint", "integer", "text", "numeric", "boolean"} <= set(names)
    known = pg_catalog.execute("SELECT count(*) FROM unnest(%s::text[]) AS n WHERE to_regtype(n) IS NOT NULL",
                               (names,)).fetchone()
    assert known == (len(names),)  # every type is one PostgreSQL knows
    assert [r["data_type"] for r in xdbc] == sorted(r["data_type"] for r in xdbc)


@pytest.mark.parametrize("command", ["GetCatalogs", "GetDBSchemas", "GetTables", "GetTableTypes", "GetSqlInfo",
                                     "GetXdbcTypeInfo", "GetPrimaryKeys", "GetImportedKeys", "GetExportedKeys"])
def test_metadata_schemas_are_arrow_gos_reference_schemas(catalog: dict[str, Any], command: str) -> None:
    """Field for field (name, type, nullability) as arrow-go's schema_ref defines them.

    The field order is not compared: for GetPrimaryKeys, FlightSql.proto puts key_name before
    key_sequence and arrow-go's reference the other way round; the server follows the proto.
    """
    found = catalog[command] if command in catalog else catalog["keys"]["orders"][command]
    by_name = {f["name"]: f for f in found["schema"]}
    reference = {f["name"]: f for f in found["reference_schema"]}
    differing = {name for name in by_name.keys() | reference.keys() if by_name.get(name) != reference.get(name)}
    assert by_name == reference, f"{command}: fields {sorted(differing)} differ from arrow-go's schema_ref " \
                                 f"(Go renders a nullable union child as 'name: type=T, nullable=code')"
    assert found["matches_reference_ignoring_order"]


# -- refusals -----------------------------------------------------------------------------------

def test_bad_sql_is_invalid_argument_with_postgres_message(go_flightsql: Path, served: Server,
                                                           db: psycopg.Connection[Row]) -> None:
    sql = "SELEC id FROM orders"
    with pytest.raises(psycopg.errors.SyntaxError) as caught:
        db.execute(sql)
    db.rollback()
    error = refused(go_flightsql, served, "query", sql)
    assert error["code"] == "InvalidArgument"
    primary = caught.value.diag.message_primary
    assert primary and primary in error["message"]
    unknown = refused(go_flightsql, served, "query", "SELECT no_such_column FROM orders")
    assert unknown["code"] == "InvalidArgument"
    assert 'column "no_such_column" does not exist' in unknown["message"]


def test_a_write_is_invalid_argument_and_changes_nothing(go_flightsql: Path, served: Server,
                                                         db: psycopg.Connection[Row]) -> None:
    email = f"go-flightsql-{uuid.uuid4()}@example.com"
    error = refused(go_flightsql, served, "query", f"INSERT INTO customers (email, name) VALUES ('{email}', 'x')")
    assert error["code"] == "InvalidArgument"
    assert "read-only" in error["message"]
    assert db.execute("SELECT count(*) FROM customers WHERE email = %s", (email,)).fetchone() == (0,)


def test_the_statement_timeout_is_deadline_exceeded(go_flightsql: Path, served: Server) -> None:
    error = refused(go_flightsql, served, "query", "SELECT pg_sleep(5)")
    assert error["code"] == "DeadlineExceeded"  # Flight's TIMED_OUT is gRPC's DEADLINE_EXCEEDED
    assert "statement timeout" in error["message"]


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_no_or_a_wrong_token_is_unauthenticated(go_flightsql: Path, served: Server, token: str | None) -> None:
    error = refused(go_flightsql, served, "query", "SELECT 1", token=token)
    assert error["code"] == "Unauthenticated"
    assert error["call"] == "Execute"
    metadata = refused(go_flightsql, served, "metadata", "public", token=token)
    assert metadata["code"] == "Unauthenticated"


# -- cancel -------------------------------------------------------------------------------------

def active(conn: psycopg.Connection[Row], marker: str) -> int:
    found = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                         "AND pid <> pg_backend_pid()", (f"%{marker}%",)).fetchone()
    assert found is not None
    return int(found[0])


def test_cancel_flight_info_stops_the_query(go_flightsql: Path, patient: Server, pg_catalog: psycopg.Connection[Row],
                                           ) -> None:
    marker = f"go_cancel_{uuid.uuid4().hex}"
    try:
        got = read(go_flightsql, patient, "cancel", f"SELECT pg_sleep(60) AS {marker}")
        assert got["status"] == "CANCEL_STATUS_CANCELLED", got
        assert got["doget_ended"], got
        assert got["doget_code"] == "Canceled", got
        assert got["doget_rows"] == 0
        assert not any(leak in got["doget_error"] for leak in LEAKS), got
        deadline = time.monotonic() + 5
        while active(pg_catalog, marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert active(pg_catalog, marker) == 0, "the PostgreSQL statement is still running after the cancel"
    finally:  # never leave a sleeping backend behind, whatever happened
        pg_catalog.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE %s "
                           "AND pid <> pg_backend_pid()", (f"%{marker}%",))


GO_IMPORTS = ["context", "fmt", "log", "github.com/apache/arrow-go/v18/arrow/array",
              "github.com/apache/arrow-go/v18/arrow/flight/flightsql", "google.golang.org/grpc",
              "google.golang.org/grpc/credentials/insecure", "google.golang.org/grpc/metadata"]


def test_the_go_example_in_the_docs_runs(served: Server, pg_catalog: psycopg.Connection[Row],
                                        tmp_path: Path) -> None:
    """docs/clients.md's Go block, built as a program in clients/go-flightsql's module, reads what psycopg reads."""
    go = shutil.which("go")
    assert go is not None, "the Go toolchain (`go`) is not on PATH"
    doc = (ROOT / "docs" / "clients.md").read_text()
    [block] = re.findall(r"```go\n(.*?)```", doc, re.DOTALL)
    body = (block.replace("127.0.0.1:8815", served.flight_url.removeprefix("grpc://"))
            .replace("Bearer my-token", f"Bearer {TOKEN}"))
    imports = "\n".join(f'\t"{name}"' for name in GO_IMPORTS)
    (tmp_path / "main.go").write_text(f"package main\n\nimport (\n{imports}\n)\n\nfunc main() {{\n{body}}}\n")
    for name in ("go.mod", "go.sum"):
        shutil.copy(ROOT / "clients" / "go-flightsql" / name, tmp_path / name)
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false"}
    built = subprocess.run([go, "build", "-o", "example", "."], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=1800)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([str(tmp_path / "example")], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    expected = [row[0] for row in pg_catalog.execute("SELECT id FROM orders WHERE customer_id = 42 ORDER BY id")]
    assert expected and [int(line) for line in ran.stdout.split()] == expected
