"""Change capture: an outbox table filled by triggers, in the same transaction as the change.

Statement-level triggers with transition tables write one outbox row per changed row
(multi-row statements and COPY included) with one ``INSERT ... SELECT`` per statement,
which costs far less than a PL/pgSQL call per row. ``seq`` is the outbox position;
``txid`` lets the relay publish only rows whose transaction can no longer be
followed by an earlier, still-running one (see relay.py). Updates that change
nothing produce no event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from quiver.schema.model import Entity, quote_ident

SCHEMA = "quiver"
OUTBOX = f"{SCHEMA}.outbox"
CHANNEL = "quiver_outbox"

OUTBOX_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {OUTBOX} (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL DEFAULT gen_random_uuid(),
    txid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    entity       text        NOT NULL,
    entity_id    text        NOT NULL,
    op           text        NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    occurred_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    data         jsonb       NOT NULL,
    changed      text[],
    actor        text,
    tenant_id    text,
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON {OUTBOX} (seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published_at ON {OUTBOX} (published_at) WHERE published_at IS NOT NULL;
COMMENT ON TABLE {OUTBOX} IS 'Quiver change events, written by triggers in the changing transaction.';
-- Time-ordered event ids where the server has them (PostgreSQL 18's uuidv7()): ids with locality
-- are cheaper to look up in Lucene than random ones, and the search sink looks each one up
-- (external versioning).
DO $$ BEGIN
    IF to_regprocedure('pg_catalog.uuidv7()') IS NOT NULL THEN
        ALTER TABLE {OUTBOX} ALTER COLUMN event_id SET DEFAULT uuidv7();
    END IF;
END $$;

CREATE OR REPLACE FUNCTION {SCHEMA}.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END $$;
"""

_SETTING = "nullif(current_setting('quiver.{name}', true), '')"


def _entity_id(alias: str, primary_key: Sequence[str]) -> str:
    if len(primary_key) == 1:
        return f"CAST({alias}.{quote_ident(primary_key[0])} AS text)"
    values = ", ".join(f"{alias}.{quote_ident(c)}" for c in primary_key)
    return f"CAST(json_build_array({values}) AS text)"


def _trigger_function(entity: Entity, op: str) -> tuple[str, str]:
    name = f"{SCHEMA}.{quote_ident('capture_' + entity.schema + '_' + entity.name + '_' + op)}"
    actor, tenant = _SETTING.format(name="actor"), _SETTING.format(name="tenant_id")
    label = entity.name.replace("'", "''")
    columns = "entity, entity_id, op, data, changed, actor, tenant_id"
    if op == "insert":
        body = (f"INSERT INTO {OUTBOX} ({columns}) SELECT '{label}', {_entity_id('n', entity.primary_key)}, "
                f"'insert', to_jsonb(n), NULL, {actor}, {tenant} FROM new_rows AS n;")
    elif op == "delete":
        body = (f"INSERT INTO {OUTBOX} ({columns}) SELECT '{label}', {_entity_id('o', entity.primary_key)}, "
                f"'delete', to_jsonb(o), NULL, {actor}, {tenant} FROM old_rows AS o;")
    else:
        join = " AND ".join(f"o.{quote_ident(c)} = n.{quote_ident(c)}" for c in entity.primary_key)
        # Each row becomes jsonb once (OFFSET 0 keeps the planner from inlining it into every
        # use), not once per column compared: 3-4x cheaper on wide rows.
        rows = ("CROSS JOIN LATERAL (SELECT to_jsonb(n) AS new_json, to_jsonb(o) AS old_json OFFSET 0) j "
                "CROSS JOIN LATERAL (SELECT ARRAY(SELECT k FROM jsonb_each(j.new_json) AS e(k, v) "
                "WHERE v IS DISTINCT FROM j.old_json -> k ORDER BY k) AS changed) c")
        body = (f"INSERT INTO {OUTBOX} ({columns}) SELECT '{label}', {_entity_id('n', entity.primary_key)}, "
                f"'update', j.new_json, c.changed, {actor}, {tenant} "
                f"FROM new_rows AS n JOIN old_rows AS o ON {join} {rows} "
                f"WHERE cardinality(c.changed) > 0;")
    return (f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n    {body}\n    RETURN NULL;\nEND $$;"), name


def install_sql(entity: Entity) -> str:
    """Triggers that capture every insert, update and delete of ``entity``."""
    if not entity.primary_key:
        raise ValueError(f"{entity.name} has no primary key; events need one to name the changed row")
    statements = []
    table = entity.qualified
    transitions = (("insert", "NEW TABLE AS new_rows"), ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                   ("delete", "OLD TABLE AS old_rows"))
    for op, references in transitions:
        function_sql, function = _trigger_function(entity, op)
        trigger = quote_ident(f"quiver_capture_{op}")
        statements.append(function_sql)
        statements.append(f"DROP TRIGGER IF EXISTS {trigger} ON {table};")
        statements.append(f"CREATE TRIGGER {trigger} AFTER {op.upper()} ON {table} REFERENCING {references} "
                          f"FOR EACH STATEMENT EXECUTE FUNCTION {function}();")
    notify = quote_ident("quiver_capture_notify")
    statements.append(f"DROP TRIGGER IF EXISTS {notify} ON {table};")
    statements.append(f"CREATE TRIGGER {notify} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                      f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.notify_outbox();")
    return "\n".join(statements)


def uninstall_sql(entity: Entity) -> str:
    table = entity.qualified
    statements = [f"DROP TRIGGER IF EXISTS {quote_ident('quiver_capture_' + op)} ON {table};"
                  for op in ("insert", "update", "delete", "notify")]
    for op in ("insert", "update", "delete"):
        _, function = _trigger_function(entity, op)
        statements.append(f"DROP FUNCTION IF EXISTS {function}();")
    return "\n".join(statements)


def install(conn: psycopg.Connection[Any], entities: Sequence[Entity]) -> None:
    """Create the outbox and the capture triggers (idempotent), in one transaction."""
    with conn.transaction():
        conn.execute(OUTBOX_DDL)
        for entity in entities:
            conn.execute(install_sql(entity))


def uninstall(conn: psycopg.Connection[Any], entities: Sequence[Entity], *, drop_outbox: bool = False) -> None:
    with conn.transaction():
        for entity in entities:
            conn.execute(uninstall_sql(entity))
        if drop_outbox:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
