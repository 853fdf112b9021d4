"""Change capture: an outbox table filled by triggers, in the same transaction as the change.

One generic PL/pgSQL function, ``quiver.capture()``, serves every captured table. It names
no user column: it reads the table's primary key from the catalog when it runs and turns
rows into jsonb through the transition tables, with only qualified references to aliases
of its own. So no column name can collide with the trigger's (``n``, ``o``, ``r``, ``k``
...), and DDL on a captured table (rename, add, drop, type change, a new primary key)
keeps capture working with nothing to reinstall.

Statement-level triggers with transition tables write one outbox row per changed row
(multi-row statements and COPY included) with one ``INSERT ... SELECT`` per statement.

* ``insert`` / ``delete``: the new / old row.
* ``update``: old and new rows are paired by primary key. A pair that changed is an
  ``update`` (``changed`` lists the columns); a key that only the old rows have is a
  ``delete``, one that only the new rows have an ``insert``. So an UPDATE that changes a
  key is a delete of the old key plus an insert of the new one, and a fold of the events
  by key equals the table.
* ``truncate``: one event per truncated table, ``entity_id`` empty: every earlier row of
  the entity is gone.
* A table without a primary key is captured with each row identified by its whole
  content (a WARNING per statement says so); an update is then a delete plus an insert.

New tables in the captured schemas are captured by an event trigger on
``ddl_command_end`` (it needs a superuser; without one ``install`` says so and
``quiver events status`` lists what is not captured). ``txid`` lets the relay publish
only rows whose transaction can no longer be followed by an earlier, still-running one
(see relay.py). Every row an UPDATE touched is an event, even when no value changed
(``changed`` is then empty), as in logical decoding: the new version of the row may be on
another page, and ``backfill`` reads by page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from quiver.arrow.events import OPS
from quiver.schema.model import Entity

SCHEMA = "quiver"
OUTBOX = f"{SCHEMA}.outbox"
CHANNEL = "quiver_outbox"
TRIGGERS = ("quiver_capture_insert", "quiver_capture_update", "quiver_capture_delete", "quiver_capture_truncate",
            "quiver_capture_notify")
EVENT_TRIGGER = "quiver_capture_new_tables"

OUTBOX_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {OUTBOX} (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL DEFAULT gen_random_uuid(),
    txid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    entity       text        NOT NULL,
    entity_id    text        NOT NULL,
    op           text        NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    data         jsonb       NOT NULL,
    changed      text[],
    actor        text,
    tenant_id    text,
    published_at timestamptz
);
ALTER TABLE {OUTBOX} DROP CONSTRAINT IF EXISTS outbox_op_check;
ALTER TABLE {OUTBOX} ADD CONSTRAINT outbox_op_check CHECK (op IN ({", ".join(f"'{op}'" for op in OPS)}));
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
-- The schemas whose new tables are captured as they are created (empty: none).
CREATE TABLE IF NOT EXISTS {SCHEMA}.captured_schemas (schema_name text PRIMARY KEY);
-- Every captured table with the entity name and shape its row images were last taken in.
CREATE TABLE IF NOT EXISTS {SCHEMA}.captured_tables (
    relid    oid PRIMARY KEY,
    entity   text NOT NULL,
    shape    text NOT NULL
);

CREATE OR REPLACE FUNCTION {SCHEMA}.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END $$;

-- The entity name of a table: its name, qualified by its schema outside public.
CREATE OR REPLACE FUNCTION {SCHEMA}.entity_name(schema_name text, table_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN schema_name = 'public' THEN table_name ELSE schema_name || '.' || table_name END
$$;

-- The SQL expression naming a row by its key, over the row's jsonb ``x.d``: the key column's
-- JSON text (one column) or a JSON array of them (several); the whole row without a key.
CREATE OR REPLACE FUNCTION {SCHEMA}.key_sql(relation oid) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE count(*)
        WHEN 0 THEN 'CAST(x.d AS text)'
        WHEN 1 THEN format('(x.d ->> %L)', min(a.attname))
        ELSE format('CAST(jsonb_build_array(%s) AS text)',
                    string_agg(format('x.d -> %L', a.attname), ', ' ORDER BY k.ord))
    END
    FROM pg_catalog.pg_index AS i
    CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = relation AND i.indisprimary
$$;

-- The entity name of a table by oid.
CREATE OR REPLACE FUNCTION {SCHEMA}.entity_of(relation oid) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT {SCHEMA}.entity_name(n.nspname, c.relname)
    FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = relation
$$;

-- What a row image of the table depends on: its entity name, its columns and types, its key.
CREATE OR REPLACE FUNCTION {SCHEMA}.shape(relation oid) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT {SCHEMA}.entity_name(n.nspname, c.relname) || '|' || {SCHEMA}.key_sql(relation) || '|' ||
           coalesce((SELECT string_agg(pg_catalog.quote_ident(a.attname) || ' ' ||
                                       pg_catalog.format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                     FROM pg_catalog.pg_attribute AS a
                     WHERE a.attrelid = relation AND a.attnum > 0 AND NOT a.attisdropped), '')
    FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = relation
$$;

CREATE OR REPLACE FUNCTION {SCHEMA}.capture() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    quiver_entity text := {SCHEMA}.entity_name(TG_TABLE_SCHEMA, TG_TABLE_NAME);
    quiver_actor text := nullif(current_setting('quiver.actor', true), '');
    quiver_tenant text := nullif(current_setting('quiver.tenant_id', true), '');
    quiver_key text;
    quiver_columns constant text := 'entity, entity_id, op, data, changed, actor, tenant_id';
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO {OUTBOX} (entity, entity_id, op, data, changed, actor, tenant_id)
        VALUES (quiver_entity, '', 'truncate', '{{}}'::jsonb, NULL, quiver_actor, quiver_tenant);
        RETURN NULL;
    END IF;
    quiver_key := {SCHEMA}.key_sql(TG_RELID);
    IF quiver_key = 'CAST(x.d AS text)' THEN
        RAISE WARNING 'quiver: % has no primary key; its rows are captured identified by their content',
            quiver_entity;
    END IF;
    IF TG_OP = 'INSERT' OR TG_OP = 'DELETE' THEN
        EXECUTE format(
            'INSERT INTO {OUTBOX} (%s) SELECT $1, %s, %L, x.d, NULL, $2, $3 '
            'FROM (SELECT to_jsonb(t.*) AS d FROM %I AS t) AS x',
            quiver_columns, quiver_key, lower(TG_OP), CASE TG_OP WHEN 'INSERT' THEN 'new_rows' ELSE 'old_rows' END)
        USING quiver_entity, quiver_actor, quiver_tenant;
        RETURN NULL;
    END IF;
    -- UPDATE: pair old and new rows by key; each row becomes jsonb once. Every updated row is an
    -- event, one whose values did not change too: its new version may sit on another page, and a
    -- backfill reading by page relies on hearing of it. Without a key, identical rows would pair
    -- with each other many times over: DISTINCT keeps one event per (content, op).
    EXECUTE format(
        'INSERT INTO {OUTBOX} (%1$s) '
        'SELECT %3$s $1, coalesce(n.k, o.k), '
        '       CASE WHEN o.k IS NULL THEN ''insert'' WHEN n.k IS NULL THEN ''delete'' ELSE ''update'' END, '
        '       coalesce(n.d, o.d), c.changed, $2, $3 '
        'FROM (SELECT %2$s AS k, x.d FROM (SELECT to_jsonb(t.*) AS d FROM old_rows AS t OFFSET 0) AS x) AS o '
        'FULL JOIN (SELECT %2$s AS k, x.d FROM (SELECT to_jsonb(t.*) AS d FROM new_rows AS t OFFSET 0) AS x) AS n '
        '  ON o.k = n.k '
        'CROSS JOIN LATERAL (SELECT CASE WHEN o.k IS NULL OR n.k IS NULL THEN NULL ELSE ARRAY('
        '    SELECT e.key FROM jsonb_each(n.d) AS e WHERE e.value IS DISTINCT FROM o.d -> e.key '
        '    ORDER BY e.key) END AS changed) AS c',
        quiver_columns, quiver_key, CASE WHEN quiver_key = 'CAST(x.d AS text)' THEN 'DISTINCT' ELSE '' END)
    USING quiver_entity, quiver_actor, quiver_tenant;
    RETURN NULL;
END $$;

-- Every row of a table as one event each (``op``): the rows CREATE TABLE AS wrote before
-- capture was attached.
CREATE OR REPLACE FUNCTION {SCHEMA}.emit_rows(relation regclass, op text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    quiver_key text;
    quiver_count bigint;
    quiver_schema text;
    quiver_table text;
BEGIN
    SELECT n.nspname, c.relname INTO quiver_schema, quiver_table
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = relation;
    quiver_key := {SCHEMA}.key_sql(relation);
    EXECUTE format(
        'INSERT INTO {OUTBOX} (entity, entity_id, op, data) SELECT $1, %s, $2, x.d '
        'FROM (SELECT to_jsonb(t.*) AS d FROM %s AS t) AS x', quiver_key, relation)
    USING {SCHEMA}.entity_name(quiver_schema, quiver_table), op;
    GET DIAGNOSTICS quiver_count = ROW_COUNT;
    RETURN quiver_count;
END $$;

-- Attach capture to one table (idempotent): four capture triggers and the relay's wake-up.
CREATE OR REPLACE FUNCTION {SCHEMA}.attach(relation regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS quiver_capture_insert ON %s', relation);
    EXECUTE format('DROP TRIGGER IF EXISTS quiver_capture_update ON %s', relation);
    EXECUTE format('DROP TRIGGER IF EXISTS quiver_capture_delete ON %s', relation);
    EXECUTE format('DROP TRIGGER IF EXISTS quiver_capture_truncate ON %s', relation);
    EXECUTE format('DROP TRIGGER IF EXISTS quiver_capture_notify ON %s', relation);
    EXECUTE format('CREATE TRIGGER quiver_capture_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.capture()', relation);
    EXECUTE format('CREATE TRIGGER quiver_capture_update AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.capture()', relation);
    EXECUTE format('CREATE TRIGGER quiver_capture_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                   'FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.capture()', relation);
    EXECUTE format('CREATE TRIGGER quiver_capture_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.capture()', relation);
    EXECUTE format('CREATE TRIGGER quiver_capture_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.notify_outbox()', relation);
    INSERT INTO {SCHEMA}.captured_tables (relid, entity, shape)
    SELECT relation, {SCHEMA}.entity_of(relation), {SCHEMA}.shape(relation)
    ON CONFLICT (relid) DO UPDATE SET entity = excluded.entity, shape = excluded.shape;
END $$;

-- After DDL that changes a captured table's row images (a column renamed, added, dropped or
-- retyped; another key; the table renamed or moved): one truncate of the entity as it was, then
-- every row as a ``snapshot`` event, so that the sinks' images take the new shape.
CREATE OR REPLACE FUNCTION {SCHEMA}.reimage(relation oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    quiver_before {SCHEMA}.captured_tables;
    quiver_now text := {SCHEMA}.shape(relation);
BEGIN
    SELECT * INTO quiver_before FROM {SCHEMA}.captured_tables AS t WHERE t.relid = relation;
    IF NOT FOUND OR quiver_now IS NULL OR quiver_before.shape = quiver_now THEN
        RETURN;
    END IF;
    INSERT INTO {OUTBOX} (entity, entity_id, op, data)
    VALUES (quiver_before.entity, '', 'truncate', '{{}}'::jsonb);
    PERFORM {SCHEMA}.emit_rows(relation::regclass, 'snapshot');
    UPDATE {SCHEMA}.captured_tables AS t SET entity = {SCHEMA}.entity_of(relation), shape = quiver_now
    WHERE t.relid = relation;
END $$;

CREATE OR REPLACE FUNCTION {SCHEMA}.detach(relation regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    quiver_trigger text;
BEGIN
    FOREACH quiver_trigger IN ARRAY ARRAY[{", ".join(f"'{t}'" for t in TRIGGERS)}] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', quiver_trigger, relation);
    END LOOP;
    DELETE FROM {SCHEMA}.captured_tables AS t WHERE t.relid = relation;
END $$;

-- New tables in a captured schema are captured as they are created; a dropped captured table
-- is a truncate of its entity (its rows are gone).
CREATE OR REPLACE FUNCTION {SCHEMA}.capture_new_tables() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
    quiver_command record;
BEGIN
    FOR quiver_command IN
        SELECT DISTINCT d.objid, d.command_tag, d.schema_name FROM pg_event_trigger_ddl_commands() AS d
        JOIN pg_class AS c ON c.oid = d.objid
        -- A column rename is reported as a 'table column' of the table: its objid is the table.
        WHERE d.classid = 'pg_class'::regclass AND d.object_type IN ('table', 'table column')
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    LOOP
        IF quiver_command.command_tag = 'ALTER TABLE' THEN
            PERFORM {SCHEMA}.reimage(quiver_command.objid);
        ELSIF quiver_command.schema_name IN (SELECT schema_name FROM {SCHEMA}.captured_schemas) THEN
            PERFORM {SCHEMA}.attach(quiver_command.objid::regclass);
            IF quiver_command.command_tag <> 'CREATE TABLE' THEN
                -- CREATE TABLE AS / SELECT INTO wrote rows before capture was attached.
                PERFORM {SCHEMA}.emit_rows(quiver_command.objid::regclass, 'insert');
            END IF;
        END IF;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION {SCHEMA}.capture_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO {OUTBOX} (entity, entity_id, op, data)
    SELECT {SCHEMA}.entity_name(d.schema_name, d.object_name), '', 'truncate', '{{}}'::jsonb
    FROM pg_event_trigger_dropped_objects() AS d
    WHERE d.object_type = 'table' AND d.original
      AND (d.schema_name IN (SELECT schema_name FROM {SCHEMA}.captured_schemas)
           OR d.objid IN (SELECT relid FROM {SCHEMA}.captured_tables));
    DELETE FROM {SCHEMA}.captured_tables AS t
    WHERE t.relid IN (SELECT d.objid FROM pg_event_trigger_dropped_objects() AS d WHERE d.object_type = 'table');
END $$;
"""

EVENT_TRIGGERS_DDL = f"""
DROP EVENT TRIGGER IF EXISTS {EVENT_TRIGGER};
CREATE EVENT TRIGGER {EVENT_TRIGGER} ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
    EXECUTE FUNCTION {SCHEMA}.capture_new_tables();
DROP EVENT TRIGGER IF EXISTS quiver_capture_dropped_tables;
CREATE EVENT TRIGGER quiver_capture_dropped_tables ON sql_drop
    WHEN TAG IN ('DROP TABLE')
    EXECUTE FUNCTION {SCHEMA}.capture_dropped_tables();
"""


@dataclass(frozen=True)
class Installed:
    """What ``install`` did: the tables it attached, and whether new tables are captured by themselves."""

    tables: tuple[str, ...]
    follows_new_tables: bool
    why_not: str | None = None


def install(conn: psycopg.Connection[Any], entities: Sequence[Entity], *,
            schemas: Sequence[str] = ()) -> Installed:
    """Create the outbox and attach capture to ``entities`` (idempotent), in one transaction.

    With ``schemas``, tables created later in those schemas are captured as they are created,
    where the role may create event triggers (a superuser); otherwise ``why_not`` says why not.
    """
    with conn.transaction():
        conn.execute(OUTBOX_DDL)
        for entity in entities:
            conn.execute("SELECT quiver.attach(%s::regclass)", (entity.qualified,))
        conn.execute(f"DELETE FROM {SCHEMA}.captured_schemas")
        for schema in schemas:
            conn.execute(f"INSERT INTO {SCHEMA}.captured_schemas VALUES (%s)", (schema,))
    why_not = None
    if schemas:
        try:
            with conn.transaction():
                conn.execute(EVENT_TRIGGERS_DDL)
        except psycopg.errors.InsufficientPrivilege as error:
            why_not = f"creating an event trigger needs a superuser ({error.diag.message_primary})"
    return Installed(tuple(e.qualified for e in entities), bool(schemas) and why_not is None, why_not)


def uninstall(conn: psycopg.Connection[Any], entities: Sequence[Entity], *, drop_outbox: bool = False) -> None:
    with conn.transaction():
        conn.execute(f"DROP EVENT TRIGGER IF EXISTS {EVENT_TRIGGER}")
        conn.execute("DROP EVENT TRIGGER IF EXISTS quiver_capture_dropped_tables")
        exists = conn.execute("SELECT to_regprocedure('quiver.detach(regclass)') IS NOT NULL").fetchone()
        if exists and exists[0]:
            for entity in entities:
                conn.execute("SELECT quiver.detach(%s::regclass)", (entity.qualified,))
        if drop_outbox:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


@dataclass(frozen=True)
class TableCapture:
    """One table of the captured schemas and whether every kind of change of it is captured."""

    schema: str
    table: str
    captured: bool
    has_primary_key: bool


def coverage(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> list[TableCapture]:
    """Every table of ``schemas`` (partitions excepted) and whether capture is attached to it."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname,"
        "       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = ANY(%s)) = %s,"
        "       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)"
        " ORDER BY 1, 2", (list(TRIGGERS), len(TRIGGERS), list(schemas))).fetchall()
    return [TableCapture(schema, table, bool(captured), bool(keyed)) for schema, table, captured, keyed in rows]


@dataclass(frozen=True)
class Writer:
    """The oldest transaction that holds a transaction id: the relay publishes nothing it may precede."""

    pid: int
    database: str
    state: str
    seconds: float


def oldest_writer(conn: psycopg.Connection[Any]) -> Writer | None:
    """The relay's gate is cluster-wide: an open writing transaction in any database holds every later event."""
    row = conn.execute(
        "SELECT pid, coalesce(datname, ''), coalesce(state, ''),"
        "       extract(epoch FROM clock_timestamp() - xact_start)"
        " FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        " ORDER BY age(backend_xid) DESC LIMIT 1").fetchone()
    if row is None:
        return None
    pid, database, state, seconds = row
    return Writer(int(pid), database, state, float(seconds or 0))
