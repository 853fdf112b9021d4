"""The query plan: what to fetch, independent of how it is encoded.

A GraphQL document lowers to one ``Operation`` of root plans. The JSON compiler and
the typed-column compiler both read these nodes; nothing here is SQL or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from quiver.schema.model import Column, Entity, Relation

Direction = Literal["ASC", "DESC"]
Nulls = Literal["FIRST", "LAST"]


# -- selections ------------------------------------------------------------------
@dataclass(frozen=True)
class ScalarOut:
    key: str
    column: Column


@dataclass(frozen=True)
class TypenameOut:
    key: str
    type_name: str


@dataclass(frozen=True)
class CursorOut:
    key: str


@dataclass(frozen=True)
class ObjectOut:
    """A many-to-one relation: one nested object (or null)."""

    key: str
    relation: Relation
    selection: Selection


@dataclass(frozen=True)
class ListOut:
    """A one-to-many relation: a nested list with its own filter, order and limit."""

    key: str
    relation: Relation
    query: ListQuery


Output = ScalarOut | TypenameOut | CursorOut | ObjectOut | ListOut
Selection = tuple[Output, ...]


# -- filters ---------------------------------------------------------------------
@dataclass(frozen=True)
class Compare:
    column: Column
    op: str  # eq neq gt gte lt lte in nin like ilike
    value: Any  # coerced Python value; a list for in/nin


@dataclass(frozen=True)
class IsNull:
    column: Column
    is_null: bool


@dataclass(frozen=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    item: Filter


@dataclass(frozen=True)
class RelationMatch:
    """EXISTS a related row (the referenced one, or some referencing one) matching ``where``."""

    relation: Relation
    where: Filter


Filter = Compare | IsNull | And | Or | Not | RelationMatch


@dataclass(frozen=True)
class OrderKey:
    column: Column
    direction: Direction
    nulls: Nulls


@dataclass(frozen=True)
class ListQuery:
    entity: Entity
    selection: Selection
    where: Filter | None = None
    order: tuple[OrderKey, ...] = ()
    limit: int | None = None
    offset: int | None = None
    after: tuple[str | None, ...] | None = None  # cursor values, one per order key


# -- root fields -------------------------------------------------------------------
@dataclass(frozen=True)
class ListRoot:
    key: str
    query: ListQuery


@dataclass(frozen=True)
class OneRoot:
    key: str
    entity: Entity
    selection: Selection
    where: Filter


@dataclass(frozen=True)
class AggregateRoot:
    key: str
    entity: Entity
    where: Filter | None
    fields: tuple[tuple[str, str], ...]  # (response key, 'count' or '__typename')


@dataclass(frozen=True)
class TypenameRoot:
    key: str
    type_name: str


@dataclass(frozen=True)
class IntrospectionRoot:
    """``__schema`` / ``__type``: answered by graphql-core, no database."""

    key: str
    field_nodes: tuple[Any, ...]  # the graphql-core FieldNodes to execute


@dataclass(frozen=True)
class StreamFrom:
    """Where a subscription's replay starts: an event ``seq`` (inclusive) or a time."""

    seq: int | None = None
    time: datetime | None = None


@dataclass(frozen=True)
class SubscriptionRoot:
    """The changes of one entity whose row image matches ``where``, each rendered as ``selection``."""

    key: str
    entity: Entity
    selection: Selection
    where: Filter | None
    start: StreamFrom | None  # None: only changes published from now on


@dataclass(frozen=True)
class InsertRoot:
    key: str
    entity: Entity
    rows: tuple[dict[str, Any], ...]  # column name -> coerced value
    many: bool
    selection: Selection


@dataclass(frozen=True)
class UpdateRoot:
    key: str
    entity: Entity
    where: Filter
    values: dict[str, Any]  # column name -> coerced value
    selection: Selection


@dataclass(frozen=True)
class DeleteRoot:
    key: str
    entity: Entity
    where: Filter
    selection: Selection


Root = (ListRoot | OneRoot | AggregateRoot | TypenameRoot | IntrospectionRoot | InsertRoot | UpdateRoot | DeleteRoot
        | SubscriptionRoot)


@dataclass(frozen=True)
class Operation:
    kind: Literal["query", "mutation", "subscription"]
    roots: tuple[Root, ...]

    @property
    def needs_database(self) -> bool:
        return any(not isinstance(r, TypenameRoot | IntrospectionRoot) for r in self.roots)


def cursor_keys(query: ListQuery) -> tuple[OrderKey, ...]:
    """The keys a row's cursor holds: the ordering plus the primary key as tie-breaker."""
    keys = list(query.order)
    present = {k.column.name for k in keys}
    for name in query.entity.primary_key:
        if name not in present:
            keys.append(OrderKey(query.entity.columns[name], "ASC", "LAST"))
    return tuple(keys)


def whole_row(entity: Entity) -> Selection:
    """Every column of the entity in table order, each under its field name (a whole-entity read)."""
    return tuple(ScalarOut(c.field_name, c) for c in entity.columns.values())


def has_cursor(selection: Selection) -> bool:
    return any(isinstance(out, CursorOut) for out in selection)
