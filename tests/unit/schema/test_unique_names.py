"""Clashing database names get unique GraphQL names by the documented rule (docs/graphql.md, "Names").

The rule is checked on hand-built models (no database); the generated integration test
(tests/integration/query/test_generated_names.py) checks it end to end on random schemas.
"""

from __future__ import annotations

import re

import pytest

from quiver.plan import nodes
from quiver.schema import naming
from quiver.schema.graphql import build_schema
from quiver.schema.introspect import _add_relations, _name_entities, _preference
from quiver.schema.model import Column, Entity, Kind, Model, PgType
from quiver.sql import columns, json
from quiver.sql.params import SettingParams

INT = PgType(kind=Kind.INT, sql="integer")


def entity(name: str, schema: str = "public", columns_: tuple[str, ...] = ("id",), view: bool = False) -> Entity:
    found = Entity(schema=schema, name=name, type_name=naming.type_name(name), list_field=naming.camel(name),
                   one_field="", is_view=view)
    fields = naming.unique_fields([naming.camel(c) for c in columns_], naming.RESERVED_FIELDS)
    for column, field_name in zip(columns_, fields, strict=True):
        found.columns[column] = Column(column, field_name, INT, nullable=column != "id", has_default=False,
                                       generated=False)
    found.primary_key = ("id",) if "id" in columns_ else ()
    return found


def name_all(*entities: Entity, schemas: tuple[str, ...] = ("public",)) -> dict[str, tuple[str, str]]:
    """Name ``entities`` as introspection does (``plain`` stands in for PostgreSQL's quote_ident test)."""
    ranked = sorted(entities, key=lambda e: _preference(schemas, e.schema, e.name,
                                                        re.fullmatch(r"[a-z_][a-z0-9_]*", e.name) is not None
                                                        and e.name not in ("order", "user")))
    _name_entities(ranked)
    for e in entities:
        e.one_field = naming.one_field(e.type_name, e.list_field) if e.primary_key else ""
    return {e.name: (e.type_name, e.list_field) for e in entities}


def model_of(*entities: Entity) -> Model:
    model = Model()
    for e in entities:
        assert e.type_name not in model.entities
        model.entities[e.type_name] = e
    return model


def test_order_beside_orders_both_stay_and_the_unquoted_one_keeps_the_name() -> None:
    # The catalog order must not matter: "order" first or last gives the same names.
    for order in ((entity("order"), entity("orders")), (entity("orders"), entity("order"))):
        assert name_all(*order) == {"orders": ("Order", "orders"), "order": ("Order2", "order2")}


def test_mixed_case_twin_is_numbered() -> None:
    names = name_all(entity("Order_Items"), entity("order_items"), entity("orders"))
    assert names == {"order_items": ("OrderItem", "orderItems"), "Order_Items": ("OrderItem2", "orderItems2"),
                     "orders": ("Order", "orders")}


def test_built_in_type_names_are_never_taken() -> None:
    names = name_all(entity("queries"), entity("string_filters"), entity("big_ints"), entity("order_directions"))
    assert names == {"queries": ("Query2", "queries2"), "string_filters": ("StringFilter2", "stringFilters2"),
                     "big_ints": ("BigInt2", "bigInts2"), "order_directions": ("OrderDirection2", "orderDirections2")}


def test_a_derived_type_name_clash_renames_the_longer_name() -> None:
    # `orders` claims OrderWhere for its filter input; the table `order_wheres` wants it as its type.
    names = name_all(entity("order_wheres"), entity("orders"))
    assert names == {"orders": ("Order", "orders"), "order_wheres": ("OrderWhere2", "orderWheres2")}


def test_other_schemas_get_their_schema_prefix_first() -> None:
    sales, public, archive = entity("orders", "sales"), entity("orders"), entity("orders", "archive")
    name_all(sales, public, archive, schemas=("archive", "sales", "public"))
    assert [(e.type_name, e.list_field) for e in (public, archive, sales)] == [
        ("Order", "orders"), ("ArchiveOrder", "archiveOrders"), ("SalesOrder", "salesOrders")]
    # Without a `public` twin, the first configured schema keeps the plain names.
    sales, archive = entity("orders", "sales"), entity("orders", "archive")
    name_all(sales, archive, schemas=("sales", "archive"))
    assert [(e.type_name, e.list_field) for e in (sales, archive)] == [
        ("Order", "orders"), ("ArchiveOrder", "archiveOrders")]


def test_one_table_gives_one_set_of_names_and_the_schema_builds() -> None:
    tables = [entity(n) for n in ("order", "orders", "Order_Items", "order_items", "orderItems", "r", "R", "rs",
                                  "queries", "order_wheres", "order_aggregates")]
    name_all(*tables)
    claimed = [naming.entity_claims(t.type_name, t.list_field, has_key=True, writable=True) for t in tables]
    everything = [n for c in claimed for n in c]
    assert len(everything) == len(set(everything))
    schema = build_schema(model_of(*tables))
    query = schema.query_type
    assert query is not None
    assert {t.list_field for t in tables} <= set(query.fields)


def test_column_field_clashes_are_numbered_in_table_order() -> None:
    assert naming.unique_fields(["userId", "userId", "id"], naming.RESERVED_FIELDS) == ["userId", "userId2", "id"]
    # A later column's own name is not stolen by an earlier clash.
    assert naming.unique_fields(["userId", "userId", "userId2"]) == ["userId", "userId3", "userId2"]
    assert naming.unique_fields(["and", "or", "not", "cursor"], naming.RESERVED_FIELDS) == [
        "and2", "or2", "not2", "cursor"]


def test_enum_labels_that_give_one_name_are_numbered() -> None:
    assert naming.enum_value_names(["in-progress", "in_progress", "true", "ok"]) == {
        "in-progress": "in_progress", "in_progress": "in_progress2", "true": "_true", "ok": "ok"}


def test_relation_names_never_overwrite_a_column_or_a_relation() -> None:
    parent = entity("orders", columns_=("id", "orderItems"))
    child = entity("order_items", columns_=("id", "order", "order_id", "orderByOrderId"))
    twin = entity("Order_Items", columns_=("id", "order_id"))
    name_all(parent, child, twin)
    _add_relations(child, parent, ("order_id",), ("id",))
    _add_relations(twin, parent, ("order_id",), ("id",))
    _add_relations(child, parent, ("order_id",), ("id",))  # a second key on the same column
    assert set(child.relations) == {"orderByOrderId2", "orderByOrderId3"}
    assert set(parent.relations) == {"orderItemsByOrderId", "orderItems2", "orderItemsByOrderId2"}
    build_schema(model_of(parent, child, twin))


def test_the_schema_builder_refuses_a_duplicate_instead_of_dropping_it() -> None:
    table = entity("orders", columns_=("id", "x"))
    table.columns["x"] = Column("x", "id", INT, nullable=True, has_default=False, generated=False)
    with pytest.raises(TypeError, match="two GraphQL fields named 'id' in Order: column 'id' and column 'x'"):
        build_schema(model_of(table))


def test_no_compiler_reads_a_row_by_a_name_a_column_or_key_could_have() -> None:
    parent = entity("r", columns_=("id", "r"))
    child = entity("t", columns_=("id", "r_id"))
    name_all(parent, child)
    _add_relations(child, parent, ("r_id",), ("id",))
    backward = parent.relations["t"]
    inner = nodes.ListQuery(child, (nodes.ScalarOut("r", child.columns["id"]),))
    selection = (nodes.ScalarOut("r", parent.columns["r"]), nodes.ListOut("t1", backward, inner))
    root = nodes.ListRoot("r", nodes.ListQuery(parent, selection))
    for sql in (json.compile_root(root, SettingParams()).sql, columns.compile_root(root, SettingParams())):
        assert not re.search(r"\b(row_to_json|json_agg)\((?!\"quiver row\"\.\*)", sql), sql
