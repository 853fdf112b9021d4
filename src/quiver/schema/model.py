"""The database model: entities, columns and relations, as plain dataclasses.

Introspection fills it from pg_catalog; the GraphQL schema, the query plan and the
SQL compilers read it. Nothing here knows about GraphQL or SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Kind(Enum):
    """How a PostgreSQL type is represented in GraphQL (and later in Arrow)."""

    INT = "int"  # int2, int4
    BIGINT = "bigint"  # int8: exact, beyond 2^53
    FLOAT = "float"  # float4, float8
    NUMERIC = "numeric"  # numeric: exact decimal
    TEXT = "text"
    BOOL = "bool"
    UUID = "uuid"
    TIMESTAMPTZ = "timestamptz"
    TIMESTAMP = "timestamp"
    DATE = "date"
    TIME = "time"
    INTERVAL = "interval"
    JSON = "json"  # json and jsonb
    BYTEA = "bytea"
    ENUM = "enum"
    OTHER = "other"  # anything else travels as its text form


@dataclass(frozen=True)
class PgType:
    """A column's type: its scalar kind, SQL spelling, and array-ness."""

    kind: Kind
    sql: str  # e.g. 'numeric(12,2)', '"public"."order_status"'
    is_array: bool = False
    element_sql: str | None = None  # SQL of the element type for arrays
    jsonb: bool = False
    enum_labels: tuple[str, ...] = ()
    enum_name: str | None = None  # qualified name of the enum type
    numeric_precision: int | None = None
    numeric_scale: int | None = None

    @property
    def scalar_sql(self) -> str:
        """The SQL of one value (the element type for arrays)."""
        return self.element_sql if self.is_array and self.element_sql else self.sql


@dataclass(frozen=True)
class Column:
    name: str
    field_name: str  # camelCase GraphQL name
    type: PgType
    nullable: bool
    has_default: bool
    generated: bool  # GENERATED ALWAYS (identity or stored): never written
    comment: str | None = None


@dataclass
class Relation:
    """A foreign key seen from one side.

    ``many_to_one`` is the referencing side (an order's customer); the reverse is
    one-to-many (a customer's orders). Columns pair up position by position.
    """

    field_name: str
    many_to_one: bool
    source: Entity
    target: Entity
    source_columns: tuple[str, ...]
    target_columns: tuple[str, ...]


@dataclass
class Entity:
    schema: str
    name: str
    type_name: str  # PascalCase singular
    list_field: str  # camelCase root list field
    one_field: str  # camelCase root by-primary-key field
    is_view: bool
    columns: dict[str, Column] = field(default_factory=dict)  # by column name, in table order
    primary_key: tuple[str, ...] = ()
    relations: dict[str, Relation] = field(default_factory=dict)  # by GraphQL field name
    comment: str | None = None

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def event_name(self) -> str:
        """The ``entity`` of its change events: the table name, qualified by its schema outside public."""
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"

    def column_by_field(self, field_name: str) -> Column:
        for column in self.columns.values():
            if column.field_name == field_name:
                return column
        raise KeyError(field_name)

    @property
    def writable(self) -> bool:
        return not self.is_view


@dataclass
class Model:
    entities: dict[str, Entity] = field(default_factory=dict)  # by GraphQL type name
    enums: dict[str, str] = field(default_factory=dict)  # PgType.enum_name -> GraphQL enum type name

    def entity(self, type_name: str) -> Entity:
        return self.entities[type_name]


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (names come from the catalog or GraphQL's name grammar)."""
    return '"' + name.replace('"', '""') + '"'
