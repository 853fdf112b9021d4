"""The Apache Arrow Flight SQL JDBC driver (the driver DBeaver uses) against `quiver serve`, checked with psycopg.

The driver is Maven Central's flight-sql-jdbc-driver 18.3.0 (scripts/fetch-jdbc-driver), driven by
clients/jdbc/QuiverJdbcCheck.java, compiled here with javac. Proved:

* DatabaseMetaData as DBeaver reads it (product name and version, catalogs, schemas, tables with and
  without a type filter, table types, a table's columns in order with JDBC types, PostgreSQL type names
  and nullability, its primary key, imported and exported keys) equals pg_catalog/information_schema;
* a Statement's values (ids, text, numeric, timestamps, dates, NULLs, arrays, bytes) equal psycopg's;
* a PreparedStatement with ``$1``-style placeholders, setInt/setString, executed twice with different
  parameters, equals psycopg; ``?`` placeholders are PostgreSQL syntax errors;
* bad SQL, writes, a statement over QUIVER_STATEMENT_TIMEOUT_MS and a missing token each reach the
  JDBC user as a clean message (PostgreSQL's text, "read-only", TIMED_OUT, UNAUTHENTICATED);
* the driver's ``token`` property authenticates against QUIVER_TOKENS. The driver sends the token as
  ``authorization: Bearer`` on a Flight Handshake before any other call, so the server must answer
  Handshake; the tests that do not check authentication use a server without tokens.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, Server, start_server, stop_server

JAR = ROOT / "clients" / "jdbc" / "lib" / "flight-sql-jdbc-driver-18.3.0.jar"
SOURCE = ROOT / "clients" / "jdbc" / "QuiverJdbcCheck.java"
TOKEN = "tok"
# Arrow's memory module reads java.nio internals; on the classpath the driver is in the unnamed module.
JVM_FLAGS = ["--add-opens=java.base/java.nio=ALL-UNNAMED", "-Duser.timezone=UTC"]
# PostgreSQL type (information_schema.columns.data_type) → java.sql.Types, as Quiver's Arrow types map:
# numeric(p, s) is decimal128 (DECIMAL); unconstrained numeric, uuid, json(b) and enums travel as utf8 text,
# so JDBC sees VARCHAR.
JDBC_TYPES = {
    "bigint": -5, "integer": 4, "smallint": 5, "text": 12, "character varying": 12, "uuid": 12, "numeric": 12,
    "jsonb": 12, "json": 12, "USER-DEFINED": 12, "boolean": 16, "date": 91, "double precision": 8,
    "timestamp with time zone": 2014, "timestamp without time zone": 93,
}
DECIMAL = 3


def jdbc_type(kind: str, type_name: str) -> int:
    """The java.sql.Types code JDBC reports: numeric with a precision is DECIMAL, as Quiver's decimal128."""
    return DECIMAL if kind == "numeric" and "(" in type_name else JDBC_TYPES[kind]


RULES = {"CASCADE": 0, "RESTRICT": 1, "SET NULL": 2, "NO ACTION": 3, "SET DEFAULT": 4}  # DatabaseMetaData


@dataclass
class Jdbc:
    """The compiled check program and how to run it."""

    java: str
    classpath: str

    def run(self, url: str, *args: str) -> Result:
        done = subprocess.run([self.java, *JVM_FLAGS, "-cp", self.classpath, "QuiverJdbcCheck", url, *args],
                              capture_output=True, text=True, timeout=180)
        lines = []
        for line in done.stdout.splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"QuiverJdbcCheck printed a line that is not JSON: {line!r}\n{done.stderr}")
        return Result(done.returncode, lines, done.stdout + done.stderr)


@dataclass
class Result:
    returncode: int
    lines: list[dict[str, Any]]
    output: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["kind"] == kind]

    def ok(self) -> Result:
        assert self.returncode == 0, f"the JDBC driver failed:\n{self.output}"
        return self

    def error(self) -> dict[str, Any]:
        """The one error line; the failure must be clean: no Python traceback, source path or server path."""
        assert self.returncode != 0, f"expected a failure, got:\n{self.output}"
        errors = self.of("error")
        assert len(errors) == 1, self.output
        for leak in ("Traceback", ".py", "/work"):
            assert leak not in self.output, f"{leak!r} reached the JDBC user:\n{self.output}"
        return errors[0]

    def results(self) -> list[list[list[Any]]]:
        """Each executed result's rows (a prepared statement prints one result per run)."""
        found: list[list[list[Any]]] = []
        for line in self.lines:
            if line["kind"] == "columns":
                found.append([])
            elif line["kind"] == "row":
                found[-1].append(line["values"])
        return found


@pytest.fixture(scope="session")
def jdbc(tmp_path_factory: pytest.TempPathFactory) -> Jdbc:
    """QuiverJdbcCheck compiled once against the pinned driver jar."""
    java, javac = shutil.which("java"), shutil.which("javac")
    if java is None or javac is None:
        pytest.fail("java and javac (a JDK 17+, e.g. Debian's openjdk-17-jdk-headless) are needed on PATH")
    if not JAR.exists():
        pytest.fail(f"{JAR.relative_to(ROOT)} is missing: run scripts/fetch-jdbc-driver (make install does)")
    classes = tmp_path_factory.mktemp("jdbc-classes")
    compiled = subprocess.run([javac, "-d", str(classes), "-cp", str(JAR), str(SOURCE)],
                              capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, f"javac failed:\n{compiled.stdout}{compiled.stderr}"
    return Jdbc(java, f"{JAR}:{classes}")


def jdbc_url(server: Server, token: str | None = None) -> str:
    port = server.flight_url.rsplit(":", 1)[1]
    return f"jdbc:arrow-flight-sql://127.0.0.1:{port}?useEncryption=false" + (f"&token={token}" if token else "")


@pytest.fixture(scope="module")
def served(demo_url: str) -> Iterator[Server]:
    """`quiver serve` with a bearer token and a 1 s statement timeout."""
    running = start_server(demo_url, QUIVER_TOKENS=f'["{TOKEN}"]', QUIVER_STATEMENT_TIMEOUT_MS="1000")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def open_url(served: Server) -> str:
    """The JDBC URL with the token: data, metadata and errors are checked as a DBeaver user connects."""
    return jdbc_url(served, TOKEN)


@pytest.fixture()
def pg(demo_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    with psycopg.connect(demo_url) as connection:
        yield connection


# -- authentication ---------------------------------------------------------------------------------------
def test_the_token_property_authenticates(jdbc: Jdbc, served: Server) -> None:
    result = jdbc.run(jdbc_url(served, TOKEN), "query", "SELECT 1 AS one")
    assert result.returncode == 0, (
        "the driver's `token` property did not authenticate: it sends `authorization: Bearer <token>` on a "
        f"Flight Handshake first, which the server must accept:\n{result.output}")
    assert result.results() == [[[1]]]


def test_a_wrong_token_is_unauthenticated(jdbc: Jdbc, served: Server) -> None:
    error = jdbc.run(jdbc_url(served, "not-the-token"), "query", "SELECT 1").error()
    assert error["status"] == "UNAUTHENTICATED", error


def test_a_missing_token_is_unauthenticated(jdbc: Jdbc, served: Server) -> None:
    error = jdbc.run(jdbc_url(served), "query", "SELECT 1").error()
    assert error["status"] == "UNAUTHENTICATED", error
    assert "bearer token is required" in error["message"]


# -- metadata ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("table", "parent"), [("orders", "customers"), ("order_items", "orders")])
def test_metadata_equals_the_catalog(jdbc: Jdbc, open_url: str, pg: psycopg.Connection[tuple[Any, ...]],
                                     table: str, parent: str) -> None:
    got = jdbc.run(open_url, "metadata", "public", table, parent).ok()
    database, version = pg.execute("SELECT current_database(), current_setting('server_version')").fetchone() or ()

    [product] = got.of("product")
    assert (product["name"], product["version"]) == ("Quiver (PostgreSQL)", f"PostgreSQL {version}")
    assert [c["name"] for c in got.of("catalog")] == [database]
    schemas = [r[0] for r in pg.execute(
        "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name NOT LIKE 'pg\\_toast%' "
        "AND schema_name NOT LIKE 'pg\\_temp\\_%' ORDER BY 1")]
    assert [(s["catalog"], s["name"]) for s in got.of("schema")] == [(database, s) for s in schemas]
    assert {t["name"] for t in got.of("table_type")} >= {"TABLE", "VIEW", "MATERIALIZED VIEW"}

    kinds = {"BASE TABLE": "TABLE", "VIEW": "VIEW", "FOREIGN": "FOREIGN TABLE"}
    tables = sorted([(name, kinds[kind]) for name, kind in pg.execute(
        "SELECT table_name::text, table_type::text FROM information_schema.tables WHERE table_schema = 'public'")]
        + [(name, "MATERIALIZED VIEW") for (name,) in pg.execute(
            "SELECT matviewname::text FROM pg_matviews WHERE schemaname = 'public'")])
    assert sorted((t["name"], t["type"]) for t in got.of("table")) == tables
    assert {(t["catalog"], t["schema"]) for t in got.of("table")} == {(database, "public")}
    assert sorted(t["name"] for t in got.of("base_table")) == [name for name, kind in tables if kind == "TABLE"]

    columns = pg.execute(
        "SELECT c.column_name::text, c.ordinal_position::int, c.data_type::text, c.is_nullable::text, "
        "format_type(a.atttypid, a.atttypmod) FROM information_schema.columns c "
        "JOIN pg_attribute a ON a.attrelid = "
        "(quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass "
        "AND a.attname = c.column_name WHERE c.table_schema = 'public' AND c.table_name = %s "
        "ORDER BY c.ordinal_position", (table,)).fetchall()
    assert [(c["table"], c["name"], c["position"], c["data_type"], c["type_name"], c["is_nullable"], c["nullable"])
            for c in got.of("column")] == [
        (table, name, position, jdbc_type(kind, type_name), type_name, nullable, 1 if nullable == "YES" else 0)
        for name, position, kind, nullable, type_name in columns]

    primary = pg.execute(
        "SELECT k.column_name::text, k.ordinal_position::int, k.constraint_name::text "
        "FROM information_schema.table_constraints t JOIN information_schema.key_column_usage k "
        "USING (constraint_schema, constraint_name) WHERE t.constraint_type = 'PRIMARY KEY' "
        "AND t.table_schema = 'public' AND t.table_name = %s ORDER BY 2", (table,)).fetchall()
    assert primary, f"the demo table {table} has a primary key"
    assert [(k["table"], k["column"], k["sequence"], k["name"]) for k in got.of("primary_key")] == [
        (table, *row) for row in primary]

    def foreign_keys(side: str, name: str) -> list[tuple[Any, ...]]:
        rows = pg.execute(
            "SELECT pk.table_name::text, pk.column_name::text, fk.table_schema::text, fk.table_name::text, "
            "fk.column_name::text, fk.ordinal_position::int, fk.constraint_name::text, rc.update_rule::text, "
            "rc.delete_rule::text FROM information_schema.referential_constraints rc "
            "JOIN information_schema.key_column_usage fk ON fk.constraint_schema = rc.constraint_schema "
            "AND fk.constraint_name = rc.constraint_name "
            "JOIN information_schema.key_column_usage pk ON pk.constraint_schema = rc.unique_constraint_schema "
            "AND pk.constraint_name = rc.unique_constraint_name "
            "AND pk.ordinal_position = fk.position_in_unique_constraint "
            f"WHERE {side}.table_schema = 'public' AND {side}.table_name = %s", (name,)).fetchall()
        return sorted((*row[:7], RULES[row[7]], RULES[row[8]]) for row in rows)

    def keys(kind: str) -> list[tuple[Any, ...]]:
        return sorted((k["pk_table"], k["pk_column"], k["fk_schema"], k["fk_table"], k["fk_column"], k["sequence"],
                       k["fk_name"], k["update_rule"], k["delete_rule"]) for k in got.of(kind))

    imported, exported = foreign_keys("fk", table), foreign_keys("pk", parent)
    assert imported and exported, "the demo tables have foreign keys both ways"
    assert keys("imported_key") == imported
    assert keys("exported_key") == exported


# -- queries ----------------------------------------------------------------------------------------------
def jdbc_value(value: Any) -> Any:
    """A psycopg value as QuiverJdbcCheck prints the driver's: timestamps in UTC to the microsecond, text."""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [jdbc_value(v) for v in value]
    if isinstance(value, dict):
        return value
    return value if value is None or isinstance(value, bool | int | float) else str(value)


ORDERS = ("SELECT id, uuid, customer_id, status, total, is_paid, note, placed_at, shipped_on, meta "
          "FROM orders WHERE id <= 60 ORDER BY id")
LITERALS = ("SELECT 9007199254740993::int8 AS big, (-2147483648)::int4 AS small, 7::int2 AS tiny, 1.5::float8 AS f, "
            "NULL::text AS nothing, NULL::int AS no_int, 'héllo \"q\" \\ x'::text AS text, "
            "'2024-02-29 12:34:56.789+02'::timestamptz AS ts, '1970-01-01 00:00:00+00'::timestamptz AS epoch, "
            "'2024-01-01 10:00'::timestamp AS naive, '2024-02-29'::date AS leap, -0.001::numeric(12, 3) AS n, "
            "12345678901234567890.5::numeric AS wide, true AS t, '{1,NULL,3}'::int[] AS ints, "
            "'{a,NULL,\"c d\"}'::text[] AS texts, '\\x00ff'::bytea AS b")


@pytest.mark.parametrize("sql", [ORDERS, LITERALS], ids=["orders", "literals"])
def test_a_query_equals_psycopg(jdbc: Jdbc, open_url: str, pg: psycopg.Connection[tuple[Any, ...]],
                                sql: str) -> None:
    got = jdbc.run(open_url, "query", sql).ok()
    cursor = pg.execute(sql)
    expected = [[jdbc_value(v) for v in row] for row in cursor.fetchall()]
    labels = [c.name for c in cursor.description or []]
    [columns] = got.of("columns")
    assert columns["labels"] == labels
    [rows] = got.results()
    json_columns = [i for i, v in enumerate(expected[0]) if isinstance(v, dict)]
    for row in rows:
        for i in json_columns:
            row[i] = json.loads(row[i])  # jsonb arrives as PostgreSQL's JSON text
    assert rows == expected
    if sql is ORDERS:
        assert any(v is None for row in rows for v in row), "the sample has NULLs (note, shipped_on)"


def test_a_prepared_statement_runs_twice_with_new_parameters(
        jdbc: Jdbc, open_url: str, pg: psycopg.Connection[tuple[Any, ...]]) -> None:
    sql = ("SELECT id, customer_id, status, total, placed_at FROM orders "
           "WHERE customer_id <= {0} AND status = {1} ORDER BY id")  # an enum bound from a string
    runs = [(40, "paid"), (90, "delivered")]
    got = jdbc.run(open_url, "prepared", sql.format("$1", "$2"), "int:40", "str:paid", "--",
                   "int:90", "str:delivered").ok()
    assert got.of("parameters") == [{"kind": "parameters", "count": 2}]
    expected = [[[jdbc_value(v) for v in row] for row in pg.execute(sql.format("%s", "%s"), run).fetchall()]
                for run in runs]
    assert all(expected) and expected[0] != expected[1]
    assert got.results() == expected


def test_question_mark_placeholders_are_postgresql_syntax_errors(jdbc: Jdbc, open_url: str) -> None:
    error = jdbc.run(open_url, "prepared", "SELECT id FROM orders WHERE id = ?", "int:1").error()
    assert "syntax error" in " ".join([error["message"], *error["causes"]])


# -- errors -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT * FROM no_such_table", "SELECT no_such_column FROM orders"])
def test_bad_sql_has_postgresql_message(jdbc: Jdbc, open_url: str, pg: psycopg.Connection[tuple[Any, ...]],
                                        sql: str) -> None:
    with pytest.raises(psycopg.Error) as caught:
        pg.execute(sql)
    primary = caught.value.diag.message_primary
    assert primary
    error = jdbc.run(open_url, "query", sql).error()
    assert error["status"] == "INVALID_ARGUMENT", error
    assert primary in error["message"], error
    assert f"SQLSTATE {caught.value.sqlstate}" in error["message"], error


@pytest.mark.parametrize("sql", ["INSERT INTO customers (email, name) VALUES ('jdbc@example.com', 'J')",
                                 "CREATE TABLE jdbc_made (i int)"])
def test_writes_are_refused_as_read_only(jdbc: Jdbc, open_url: str, pg: psycopg.Connection[tuple[Any, ...]],
                                         sql: str) -> None:
    before = pg.execute("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM order_items), "
                        "to_regclass('public.jdbc_made') IS NULL").fetchone()
    error = jdbc.run(open_url, "query", sql).error()
    assert "read-only: cannot execute" in error["message"] and "SQLSTATE 25006" in error["message"], error
    after = pg.execute("SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM order_items), "
                       "to_regclass('public.jdbc_made') IS NULL").fetchone()
    assert after == before


def test_a_statement_over_the_timeout_is_timed_out(jdbc: Jdbc, open_url: str) -> None:
    error = jdbc.run(open_url, "query", "SELECT pg_sleep(5)").error()
    assert error["status"] == "TIMED_OUT", error
    assert "statement timeout" in error["message"], error

