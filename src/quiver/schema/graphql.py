"""Build the graphql-core schema from the model.

One object type per table or view; root fields for a list, by primary key and a
count aggregate; relations both ways; filters, ordering and mutations; a subscription
field per entity (its changes, from the event stream).
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLField,
    GraphQLFloat,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
)

from quiver.schema import naming, scalars
from quiver.schema.fields import (
    ColumnField,
    CountField,
    CursorField,
    DeleteMutation,
    Descriptor,
    InsertMutation,
    RelationField,
    RootAggregate,
    RootList,
    RootOne,
    RootSubscription,
    UpdateMutation,
)
from quiver.schema.model import Column, Entity, Kind, Model, PgType

ORDER_DIRECTION = GraphQLEnumType(
    "OrderDirection",
    {
        "ASC": GraphQLEnumValue("ASC"),
        "DESC": GraphQLEnumValue("DESC"),
        "ASC_NULLS_FIRST": GraphQLEnumValue("ASC_NULLS_FIRST"),
        "ASC_NULLS_LAST": GraphQLEnumValue("ASC_NULLS_LAST"),
        "DESC_NULLS_FIRST": GraphQLEnumValue("DESC_NULLS_FIRST"),
        "DESC_NULLS_LAST": GraphQLEnumValue("DESC_NULLS_LAST"),
    },
    description="Sort direction; PostgreSQL's default puts NULLs last ascending, first descending.",
)
SUBSCRIPTION_FROM = GraphQLInputObjectType(
    "SubscriptionFrom",
    {
        "seq": GraphQLInputField(scalars.BigInt, description="Replay from this event `seq` (inclusive)."),
        "time": GraphQLInputField(scalars.DateTime, description="Replay the events that occurred at or after this."),
    },
    description="Where a subscription starts: set one field; leave `from` out to receive only new changes.",
)

_SCALARS: dict[Kind, GraphQLScalarType] = {
    Kind.INT: GraphQLInt, Kind.BIGINT: scalars.BigInt, Kind.FLOAT: GraphQLFloat, Kind.NUMERIC: scalars.Decimal_,
    Kind.TEXT: GraphQLString, Kind.BOOL: GraphQLBoolean, Kind.UUID: scalars.UUID,
    Kind.TIMESTAMPTZ: scalars.DateTime, Kind.TIMESTAMP: scalars.LocalDateTime, Kind.DATE: scalars.Date,
    Kind.TIME: scalars.Time, Kind.INTERVAL: scalars.Interval, Kind.JSON: scalars.JSON, Kind.BYTEA: scalars.Bytes,
    Kind.OTHER: GraphQLString,
}

# Which comparison operators each scalar kind offers.
_ORDERED = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "nin")
_OPERATORS: dict[Kind, tuple[str, ...]] = {
    Kind.INT: _ORDERED, Kind.BIGINT: _ORDERED, Kind.FLOAT: _ORDERED, Kind.NUMERIC: _ORDERED,
    Kind.TEXT: (*_ORDERED, "like", "ilike"), Kind.OTHER: (*_ORDERED, "like", "ilike"),
    Kind.BOOL: ("eq", "neq"), Kind.UUID: _ORDERED, Kind.TIMESTAMPTZ: _ORDERED, Kind.TIMESTAMP: _ORDERED,
    Kind.DATE: _ORDERED, Kind.TIME: _ORDERED, Kind.INTERVAL: _ORDERED, Kind.ENUM: _ORDERED,
    Kind.JSON: (), Kind.BYTEA: ("eq", "neq"),
}
_LIST_OPERATORS = ("in", "nin")


def _ext(descriptor: Descriptor) -> dict[str, Any]:
    return {"quiver": descriptor}


def _put(fields: dict[str, Any], name: str, value: Any, where: str) -> None:
    """Add one field; a second field of the same name is refused, never silently dropped.

    ``introspect`` makes every name unique (docs/graphql.md, "Names"); this is the guard that holds
    whatever model reaches the builder.
    """
    if name in fields:
        raise ValueError(f"two GraphQL fields named {name!r} in {where}: {_origin(fields[name])} and "
                         f"{_origin(value)}; see docs/graphql.md, Names")
    fields[name] = value


def _origin(value: Any) -> str:
    """What a generated field or input field stands for, for error messages."""
    meaning = (value.extensions or {}).get("quiver")
    if isinstance(meaning, ColumnField):
        return f"column {meaning.column.name!r}"
    if isinstance(meaning, RelationField):
        return f"the relation to {meaning.relation.target.qualified}"
    entity = getattr(meaning, "entity", None)
    if entity is not None:
        return f"a field of table {entity.qualified}"
    return "a generated field"


class SchemaBuilder:
    """Builds the schema; one instance per model, types memoised by name."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.enums: dict[str, GraphQLEnumType] = {}
        self.filters: dict[str, GraphQLInputObjectType] = {}
        self.objects: dict[str, GraphQLObjectType] = {}
        self.wheres: dict[str, GraphQLInputObjectType] = {}
        self.orders: dict[str, GraphQLInputObjectType] = {}

    # -- scalars and filters -------------------------------------------------
    def scalar(self, pg_type: PgType) -> GraphQLScalarType | GraphQLEnumType:
        if pg_type.kind is Kind.ENUM:
            return self.enum(pg_type)
        return _SCALARS[pg_type.kind]

    def enum(self, pg_type: PgType) -> GraphQLEnumType:
        assert pg_type.enum_name is not None
        name = self.model.enums.get(pg_type.enum_name) or naming.pascal(
            pg_type.enum_name.replace('"', "").split(".")[-1])
        if name not in self.enums:
            values = {value: GraphQLEnumValue(label)
                      for label, value in naming.enum_value_names(pg_type.enum_labels).items()}
            self.enums[name] = GraphQLEnumType(name, values, description=f"PostgreSQL enum {pg_type.enum_name}.")
        elif self.enums[name].description != f"PostgreSQL enum {pg_type.enum_name}.":
            raise ValueError(f"two enums named {name!r}: {self.enums[name].description} and {pg_type.enum_name}")
        return self.enums[name]

    def output_type(self, column: Column) -> GraphQLOutputType:
        scalar = self.scalar(column.type)
        base: GraphQLScalarType | GraphQLEnumType | GraphQLList[Any] = (
            GraphQLList(scalar) if column.type.is_array else scalar
        )
        return base if column.nullable else GraphQLNonNull(base)

    def filter(self, pg_type: PgType) -> GraphQLInputObjectType:
        scalar = self.scalar(pg_type)
        name = ("List" if pg_type.is_array else "") + scalar.name + "Filter"
        if name in self.filters:
            return self.filters[name]
        operators = () if pg_type.is_array else _OPERATORS[pg_type.kind]
        fields: dict[str, GraphQLInputField] = {}
        for op in operators:
            if op in _LIST_OPERATORS:
                fields[op] = GraphQLInputField(GraphQLList(GraphQLNonNull(scalar)))
            else:
                fields[op] = GraphQLInputField(scalar)
        fields["isNull"] = GraphQLInputField(GraphQLBoolean, description="true: IS NULL; false: IS NOT NULL.")
        self.filters[name] = GraphQLInputObjectType(name, fields, description=f"Conditions on a {scalar.name}.")
        return self.filters[name]

    # -- per entity ------------------------------------------------------------
    def where(self, entity: Entity) -> GraphQLInputObjectType:
        name = entity.type_name + "Where"
        if name not in self.wheres:
            def fields() -> dict[str, GraphQLInputField]:
                result: dict[str, GraphQLInputField] = {}
                for c in entity.columns.values():
                    _put(result, c.field_name, GraphQLInputField(self.filter(c.type)), name)
                for rel_name, rel in entity.relations.items():
                    description = ("Its " if rel.many_to_one else "Some of its ") + f"{rel_name} match."
                    _put(result, rel_name, GraphQLInputField(self.where(rel.target), description=description), name)
                where = self.wheres[name]
                _put(result, "and", GraphQLInputField(GraphQLList(GraphQLNonNull(where)), description="All match."),
                     name)
                _put(result, "or", GraphQLInputField(GraphQLList(GraphQLNonNull(where)), description="Any matches."),
                     name)
                _put(result, "not", GraphQLInputField(where, description="Does not match."), name)
                return result

            self.wheres[name] = GraphQLInputObjectType(name, fields, description=f"Filter on {entity.type_name}.")
        return self.wheres[name]

    def order_by(self, entity: Entity) -> GraphQLInputObjectType:
        name = entity.type_name + "OrderBy"
        if name not in self.orders:
            sortable = [c for c in entity.columns.values() if not c.type.is_array and c.type.kind is not Kind.JSON]
            self.orders[name] = GraphQLInputObjectType(
                name,
                {c.field_name: GraphQLInputField(ORDER_DIRECTION) for c in sortable},
                description="One sort key: set exactly one field per list item.",
            )
        return self.orders[name]

    def list_args(self, entity: Entity, *, root: bool) -> dict[str, GraphQLArgument]:
        args = {
            "where": GraphQLArgument(self.where(entity)),
            "orderBy": GraphQLArgument(GraphQLList(GraphQLNonNull(self.order_by(entity)))),
            "limit": GraphQLArgument(GraphQLInt),
            "offset": GraphQLArgument(GraphQLInt),
        }
        if root and entity.primary_key:  # keyset pages need a unique order: without a key, rows would be lost
            args["after"] = GraphQLArgument(
                GraphQLString, description="Keyset pagination: the `_cursor` of the last row already seen."
            )
        return args

    def object(self, entity: Entity) -> GraphQLObjectType:
        if entity.type_name not in self.objects:
            def fields() -> dict[str, GraphQLField]:
                result: dict[str, GraphQLField] = {}
                for column in entity.columns.values():
                    _put(result, column.field_name, GraphQLField(
                        self.output_type(column), description=column.comment, extensions=_ext(ColumnField(column))
                    ), entity.type_name)
                for rel_name, rel in entity.relations.items():
                    target = self.object(rel.target)
                    if rel.many_to_one:
                        nullable = any(rel.source.columns[c].nullable for c in rel.source_columns)
                        _put(result, rel_name, GraphQLField(
                            target if nullable else GraphQLNonNull(target), extensions=_ext(RelationField(rel)),
                            description=f"The {rel.target.type_name} this row references.",
                        ), entity.type_name)
                    else:
                        _put(result, rel_name, GraphQLField(
                            GraphQLNonNull(GraphQLList(GraphQLNonNull(target))),
                            args=self.list_args(rel.target, root=False), extensions=_ext(RelationField(rel)),
                            description=f"The {rel.target.type_name} rows that reference this row.",
                        ), entity.type_name)
                if entity.primary_key:  # a table or view without one has no unique order to page by
                    _put(result, "_cursor", GraphQLField(
                        GraphQLNonNull(GraphQLString), extensions=_ext(CursorField()),
                        description="Opaque keyset cursor of this row for its list's ordering; pass it as `after`.",
                    ), entity.type_name)
                return result

            self.objects[entity.type_name] = GraphQLObjectType(
                entity.type_name, fields, description=entity.comment
            )
        return self.objects[entity.type_name]

    def aggregate(self, entity: Entity) -> GraphQLObjectType:
        return GraphQLObjectType(
            entity.type_name + "Aggregate",
            {"count": GraphQLField(GraphQLNonNull(GraphQLInt), extensions=_ext(CountField()))},
            description=f"Aggregates over {entity.type_name} rows.",
        )

    def insert_input(self, entity: Entity) -> GraphQLInputObjectType:
        fields = {}
        for column in entity.columns.values():
            if column.generated:
                continue
            scalar = self.scalar(column.type)
            base: GraphQLScalarType | GraphQLEnumType | GraphQLList[Any] = (
                GraphQLList(scalar) if column.type.is_array else scalar
            )
            required = not column.nullable and not column.has_default
            fields[column.field_name] = GraphQLInputField(GraphQLNonNull(base) if required else base)
        return GraphQLInputObjectType(entity.type_name + "Insert", fields, description="A row to insert.")

    def set_input(self, entity: Entity) -> GraphQLInputObjectType:
        fields = {}
        for column in entity.columns.values():
            if column.generated:
                continue
            scalar = self.scalar(column.type)
            fields[column.field_name] = GraphQLInputField(GraphQLList(scalar) if column.type.is_array else scalar)
        return GraphQLInputObjectType(entity.type_name + "Set", fields, description="Columns to change.")

    # -- roots -------------------------------------------------------------------
    def query(self) -> GraphQLObjectType:
        fields: dict[str, GraphQLField] = {}
        for entity in self.model.entities.values():
            obj = self.object(entity)
            _put(fields, entity.list_field, GraphQLField(
                GraphQLNonNull(GraphQLList(GraphQLNonNull(obj))), args=self.list_args(entity, root=True),
                extensions=_ext(RootList(entity)), description=f"{entity.type_name} rows.",
            ), "Query")
            if entity.one_field:
                args = {
                    entity.columns[c].field_name: GraphQLArgument(
                        GraphQLNonNull(self.scalar(entity.columns[c].type))
                    )
                    for c in entity.primary_key
                }
                _put(fields, entity.one_field, GraphQLField(
                    obj, args=args, extensions=_ext(RootOne(entity)),
                    description=f"One {entity.type_name} by primary key, or null.",
                ), "Query")
            _put(fields, entity.list_field + "Aggregate", GraphQLField(
                GraphQLNonNull(self.aggregate(entity)), args={"where": GraphQLArgument(self.where(entity))},
                extensions=_ext(RootAggregate(entity)), description=f"Aggregates over {entity.type_name} rows.",
            ), "Query")
        return GraphQLObjectType("Query", fields)

    def mutation(self) -> GraphQLObjectType | None:
        fields: dict[str, GraphQLField] = {}
        for entity in self.model.entities.values():
            if not entity.writable:
                continue
            obj = self.object(entity)
            insert_one, insert_many, update, delete = naming.mutation_fields(entity.type_name, entity.list_field)
            rows = GraphQLNonNull(GraphQLList(GraphQLNonNull(obj)))
            insert = self.insert_input(entity)
            where = GraphQLNonNull(self.where(entity))
            _put(fields, insert_one, GraphQLField(
                obj, args={"object": GraphQLArgument(GraphQLNonNull(insert))},
                extensions=_ext(InsertMutation(entity, many=False)), description=f"Insert one {entity.type_name}.",
            ), "Mutation")
            _put(fields, insert_many, GraphQLField(
                rows, args={"objects": GraphQLArgument(GraphQLNonNull(GraphQLList(GraphQLNonNull(insert))))},
                extensions=_ext(InsertMutation(entity, many=True)), description=f"Insert {entity.type_name} rows.",
            ), "Mutation")
            _put(fields, update, GraphQLField(
                rows, args={"where": GraphQLArgument(where),
                            "set": GraphQLArgument(GraphQLNonNull(self.set_input(entity)))},
                extensions=_ext(UpdateMutation(entity)), description=f"Update the matching {entity.type_name} rows.",
            ), "Mutation")
            _put(fields, delete, GraphQLField(
                rows, args={"where": GraphQLArgument(where)},
                extensions=_ext(DeleteMutation(entity)), description=f"Delete the matching {entity.type_name} rows.",
            ), "Mutation")
        return GraphQLObjectType("Mutation", fields) if fields else None

    def subscription(self) -> GraphQLObjectType:
        """One field per entity: its row after each change (null for a TRUNCATE), from the event stream."""
        fields: dict[str, GraphQLField] = {}
        for entity in self.model.entities.values():
            args = {"where": GraphQLArgument(self.where(entity)), "from": GraphQLArgument(SUBSCRIPTION_FROM)}
            _put(fields, entity.list_field, GraphQLField(
                self.object(entity), args=args, extensions=_ext(RootSubscription(entity)),
                description=f"Each change of a matching {entity.type_name} row (the deleted row for a delete); "
                            "`extensions` carries op and seq.",
            ), "Subscription")
        return GraphQLObjectType("Subscription", fields)


def build_schema(model: Model) -> GraphQLSchema:
    """The GraphQL schema for ``model``."""
    if not model.entities:
        raise ValueError("no tables or views found in the configured schemas")
    builder = SchemaBuilder(model)
    return GraphQLSchema(query=builder.query(), mutation=builder.mutation(), subscription=builder.subscription())


def descriptor(field: GraphQLField) -> Descriptor | None:
    """The meaning of a generated field (None for introspection fields)."""
    ext = field.extensions or {}
    found: Descriptor | None = ext.get("quiver")
    return found


__all__: list[str] = ["build_schema", "descriptor"]
