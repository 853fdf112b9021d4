"""Scratch databases for generated tests: created empty, dropped after, and tables whose every name
is findable again in the GraphQL schema through its comment (``table T``, ``column C``)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from tests.conftest import admin_url, database_url


def fresh_database(name: str) -> str:
    """An empty database ``name`` (dropped first if a crashed run left it); its URL."""
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def comment_names(conn: psycopg.Connection[object], ident: sql.Identifier, table: str, columns: list[str]) -> None:
    """``table <name>`` on the table and ``column <name>`` on each column, so that the GraphQL
    descriptions lead back from generated names to the SQL ones."""
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(f"table {table}")))
    for name in columns:
        conn.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
            ident, sql.Identifier(name), sql.Literal(f"column {name}")))
