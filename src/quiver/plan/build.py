"""Lower a GraphQL request to one query plan.

graphql-core parses, validates and coerces variables and arguments; this module
walks the collected fields (fragments, aliases, @skip/@include already resolved)
and checks Quiver's own limits, so a bad request never reaches the database.
Introspection (``__schema``, ``__type``) counts against the same limits: graphql-core
answers it in memory, and unbounded it is the cheapest way to make a server work hard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql import (
    DocumentNode,
    Executor,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    OperationType,
    SelectionSetNode,
    get_named_type,
    parse,
    validate,
)
from graphql.execution.collect_fields import FieldDetails, collect_fields, collect_subfields
from graphql.execution.values import get_argument_values

from quiver.config import Limits
from quiver.plan import nodes
from quiver.plan.cursors import decode_cursor
from quiver.schema import fields
from quiver.schema.graphql import descriptor
from quiver.schema.model import Column, Entity

_DIRECTIONS: dict[str, tuple[nodes.Direction, nodes.Nulls]] = {
    "ASC": ("ASC", "LAST"), "DESC": ("DESC", "FIRST"),
    "ASC_NULLS_FIRST": ("ASC", "FIRST"), "ASC_NULLS_LAST": ("ASC", "LAST"),
    "DESC_NULLS_FIRST": ("DESC", "FIRST"), "DESC_NULLS_LAST": ("DESC", "LAST"),
}


LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
# graphql-core's own limits (parser: tokens, nesting; validation: introspection depth) say so in their code.
_LIMIT_MESSAGES = ("tokens. Parsing aborted", "nested too deeply", "Maximum introspection depth exceeded")
# Boolean and relation filters nest; deeper than this is no hand-written filter and risks recursion limits.
MAX_FILTER_DEPTH = 32
# ``ofType`` follows one type's wrappers, no fan-out; introspection nests it 9 deep: it adds no depth.
_NO_FAN_OUT = frozenset({"ofType"})


def _coded(errors: Sequence[GraphQLError]) -> list[GraphQLError]:
    return [GraphQLError(e.message, e.nodes, e.source, e.positions, e.path, extensions={"code": LIMIT_EXCEEDED})
            if any(m in e.message for m in _LIMIT_MESSAGES) else e for e in errors]


class PlanError(Exception):
    """The request cannot be planned; carries spec-shaped GraphQL errors."""

    def __init__(self, errors: Sequence[GraphQLError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class Prepared:
    """A validated request: its plan plus what introspection needs."""

    operation: nodes.Operation
    executor: Executor[Any]
    document: Any  # graphql-core DocumentNode
    variables: Mapping[str, Any]
    operation_name: str | None


def prepare(
    schema: GraphQLSchema,
    source: str,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
    limits: Limits | None = None,
) -> Prepared:
    """Parse, validate and plan ``source``; raises PlanError with GraphQL errors."""
    limits = limits or Limits()
    try:
        document = parse(source, max_tokens=limits.max_tokens)
    except GraphQLError as error:
        raise PlanError(_coded([error])) from None
    _check_field_nodes(document, limits)
    try:
        return _validated(schema, document, variables, operation_name, limits)
    except RecursionError:
        too_deep = GraphQLError("the request is nested too deeply to plan", extensions={"code": LIMIT_EXCEEDED})
        raise PlanError([too_deep]) from None


def _check_field_nodes(document: DocumentNode, limits: Limits) -> None:
    """Refuse, before validation, a document with more field nodes than ``max_nodes``.

    Every field node is selected at least once unless it repeats another one, and repeats
    are what makes validation (overlapping fields) quadratic; so this bounds its cost.
    """
    count = 0
    pending = [s for s in (getattr(d, "selection_set", None) for d in document.definitions)
               if isinstance(s, SelectionSetNode)]
    while pending:
        for selection in pending.pop().selections:
            count += isinstance(selection, FieldNode)
            inner = getattr(selection, "selection_set", None)
            if inner is not None:
                pending.append(inner)
    if count > limits.max_nodes:
        raise PlanError([GraphQLError(f"query selects more than the maximum of {limits.max_nodes} fields "
                                      f"(the document has {count} field selections)",
                                      extensions={"code": LIMIT_EXCEEDED})])


def _validated(schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any] | None,
               operation_name: str | None, limits: Limits) -> Prepared:
    errors = validate(schema, document, max_errors=20)
    if errors:
        raise PlanError(_coded(errors))
    built = Executor.build(schema, document, raw_variable_values=dict(variables or {}), operation_name=operation_name)
    if isinstance(built, list):
        raise PlanError(_coded(built))
    return Prepared(_Planner(schema, built, limits).operation(), built, document, dict(variables or {}), operation_name)


class _Planner:
    def __init__(self, schema: GraphQLSchema, executor: Executor[Any], limits: Limits) -> None:
        self.schema = schema
        self.ex = executor
        self.limits = limits
        self.nodes = 0

    # -- roots -------------------------------------------------------------------
    def operation(self) -> nodes.Operation:
        op = self.ex.operation
        if op.operation is OperationType.MUTATION:
            root_type, kind = self.schema.mutation_type, "mutation"
        elif op.operation is OperationType.QUERY:
            root_type, kind = self.schema.query_type, "query"
        else:
            root_type, kind = self.schema.subscription_type, "subscription"
        assert root_type is not None
        grouped = collect_fields(self.schema, self.ex.fragments, self.ex.variable_values, root_type, op)
        roots = [self.root(root_type, key, details) for key, details in grouped.grouped_field_set.items()]
        return nodes.Operation(kind, tuple(roots))  # type: ignore[arg-type]

    def root(self, root_type: GraphQLObjectType, key: str, details: list[FieldDetails]) -> nodes.Root:
        node = details[0].node
        name = node.name.value
        self.count(details, [key])
        if name == "__typename":
            return nodes.TypenameRoot(key, root_type.name)
        if name in ("__schema", "__type"):
            meta = self.schema.get_type("__Schema" if name == "__schema" else "__Type")
            assert isinstance(meta, GraphQLObjectType)
            self.introspection(meta, details, [key], 1)
            return nodes.IntrospectionRoot(key, tuple(d.node for d in details))
        field = root_type.fields[name]
        args = get_argument_values(field, node, self.ex.variable_values, details[0].fragment_variable_values)
        meaning = descriptor(field)
        obj = get_named_type(field.type)
        path = [key]
        if isinstance(meaning, fields.RootList):
            assert isinstance(obj, GraphQLObjectType)
            return nodes.ListRoot(key, self.list_query(meaning.entity, obj, details, args, path, depth=1))
        if isinstance(meaning, fields.RootOne):
            assert isinstance(obj, GraphQLObjectType)
            entity = meaning.entity
            where = nodes.And(tuple(
                nodes.Compare(entity.columns[c], "eq", args[entity.columns[c].field_name]) for c in entity.primary_key
            ))
            return nodes.OneRoot(key, entity, self.selection(entity, obj, details, path, 1), where)
        if isinstance(meaning, fields.RootAggregate):
            assert isinstance(obj, GraphQLObjectType)
            return nodes.AggregateRoot(
                key, meaning.entity, self.where_arg(meaning.entity, args.get("where"), details, path),
                self.aggregate_fields(obj, details),
            )
        if isinstance(meaning, fields.RootSubscription):
            assert isinstance(obj, GraphQLObjectType)
            entity = meaning.entity
            start = self.stream_from(args.get("from"), details, path)
            return nodes.SubscriptionRoot(key, entity, self.selection(entity, obj, details, path, 1),
                                          self.where_arg(entity, args.get("where"), details, path), start)
        if isinstance(meaning, fields.InsertMutation):
            assert isinstance(obj, GraphQLObjectType)
            raw = args["objects"] if meaning.many else [args["object"]]
            if not raw:
                raise self.error("insert needs at least one object", details, path)
            rows = tuple(self.row_values(meaning.entity, r) for r in raw)
            selection = self.selection(meaning.entity, obj, details, path, 1)
            return nodes.InsertRoot(key, meaning.entity, rows, meaning.many, selection)
        if isinstance(meaning, fields.UpdateMutation):
            assert isinstance(obj, GraphQLObjectType)
            values = self.row_values(meaning.entity, args["set"])
            if not values:
                raise self.error("`set` names no column to change", details, path)
            found = self.where_arg(meaning.entity, args["where"], details, path)
            return nodes.UpdateRoot(key, meaning.entity, found or nodes.And(()), values,
                                    self.selection(meaning.entity, obj, details, path, 1))
        if isinstance(meaning, fields.DeleteMutation):
            assert isinstance(obj, GraphQLObjectType)
            found = self.where_arg(meaning.entity, args["where"], details, path)
            selection = self.selection(meaning.entity, obj, details, path, 1)
            return nodes.DeleteRoot(key, meaning.entity, found or nodes.And(()), selection)
        raise self.error(f"field {name} has no plan", details, path)

    # -- selections ----------------------------------------------------------------
    def check_depth(self, depth: int, details: list[FieldDetails], path: Sequence[str | int]) -> None:
        if depth > self.limits.max_depth:
            raise self.error(f"query is nested deeper than the maximum depth of {self.limits.max_depth}",
                             details, path, LIMIT_EXCEEDED)

    def introspection(self, obj: GraphQLObjectType, details: list[FieldDetails], path: Sequence[str | int],
                      depth: int) -> None:
        """Count an introspection selection's fields and depth as a query's (``ofType`` levels aside)."""
        self.check_depth(depth, details, path)
        grouped = collect_subfields(
            self.schema, self.ex.fragments, self.ex.variable_values, self.ex.operation, obj, details
        ).grouped_field_set
        for key, sub in grouped.items():
            sub_path = [*path, key]
            self.count(sub, sub_path)
            name = sub[0].node.name.value
            target = get_named_type(obj.fields[name].type) if name in obj.fields else None
            if isinstance(target, GraphQLObjectType):
                self.introspection(target, sub, sub_path, depth + (name not in _NO_FAN_OUT))

    def selection(
        self, entity: Entity, obj: GraphQLObjectType, details: list[FieldDetails], path: Sequence[str | int], depth: int
    ) -> nodes.Selection:
        self.check_depth(depth, details, path)
        grouped = collect_subfields(
            self.schema, self.ex.fragments, self.ex.variable_values, self.ex.operation, obj, details
        ).grouped_field_set
        outputs: list[nodes.Output] = []
        for key, sub in grouped.items():
            sub_path = [*path, key]
            self.count(sub, sub_path)
            node = sub[0].node
            if node.name.value == "__typename":
                outputs.append(nodes.TypenameOut(key, obj.name))
                continue
            field = obj.fields[node.name.value]
            meaning = descriptor(field)
            if isinstance(meaning, fields.ColumnField):
                outputs.append(nodes.ScalarOut(key, meaning.column))
            elif isinstance(meaning, fields.CursorField):
                outputs.append(nodes.CursorOut(key))
            elif isinstance(meaning, fields.RelationField):
                target = get_named_type(field.type)
                assert isinstance(target, GraphQLObjectType)
                rel = meaning.relation
                if rel.many_to_one:
                    outputs.append(nodes.ObjectOut(key, rel, self.selection(rel.target, target, sub, sub_path,
                                                                            depth + 1)))
                else:
                    args = get_argument_values(field, node, self.ex.variable_values, sub[0].fragment_variable_values)
                    query = self.list_query(rel.target, target, sub, args, sub_path, depth + 1)
                    outputs.append(nodes.ListOut(key, rel, query))
            else:
                raise self.error(f"field {node.name.value} has no plan", sub, sub_path)
        return tuple(outputs)

    def list_query(
        self, entity: Entity, obj: GraphQLObjectType, details: list[FieldDetails], args: dict[str, Any],
        path: Sequence[str | int], depth: int,
    ) -> nodes.ListQuery:
        limit, offset = args.get("limit"), args.get("offset")
        for name, value in (("limit", limit), ("offset", offset)):
            if value is not None and value < 0:
                raise self.error(f"`{name}` must not be negative", details, path)
        if limit is not None and self.limits.max_limit is not None and limit > self.limits.max_limit:
            raise self.error(f"`limit` {limit} exceeds the maximum of {self.limits.max_limit}", details, path,
                             LIMIT_EXCEEDED)
        order = self.order_arg(entity, args.get("orderBy"), details, path)
        selection = self.selection(entity, obj, details, path, depth)
        query = nodes.ListQuery(entity, selection, self.where_arg(entity, args.get("where"), details, path),
                                order, limit, offset)
        after = args.get("after")
        if (after is not None or nodes.has_cursor(selection)) and not entity.primary_key:
            raise self.error(f"{entity.type_name} has no primary key: no unique order for `after` or `_cursor`",
                             details, path)  # the schema offers neither; a guard for hand-built plans
        if after is not None or nodes.has_cursor(selection):
            # Keyset pagination and cursors need a total order: add the primary key (also with no
            # orderBy: a first page in heap order followed by pages in key order loses rows).
            query = nodes.ListQuery(entity, selection, query.where, nodes.cursor_keys(query), limit, offset)
        if after is not None:
            values = decode_cursor(after)
            if values is None or len(values) != len(query.order):
                raise self.error("`after` is not a cursor of this list's ordering", details, path)
            query = nodes.ListQuery(entity, selection, query.where, query.order, limit, offset, values)
        return query

    def aggregate_fields(self, obj: GraphQLObjectType, details: list[FieldDetails]) -> tuple[tuple[str, str], ...]:
        grouped = collect_subfields(
            self.schema, self.ex.fragments, self.ex.variable_values, self.ex.operation, obj, details
        ).grouped_field_set
        outputs = []
        for key, sub in grouped.items():
            name = sub[0].node.name.value
            if name != "__typename":
                assert isinstance(descriptor(obj.fields[name]), fields.CountField)
            outputs.append((key, name if name == "__typename" else "count"))
        return tuple(outputs)

    # -- arguments ---------------------------------------------------------------------
    def where_arg(
        self, entity: Entity, value: Mapping[str, Any] | None, details: list[FieldDetails], path: Sequence[str | int]
    ) -> nodes.Filter | None:
        return None if value is None else self.where(entity, value, details, path)

    def where(
        self, entity: Entity, value: Mapping[str, Any], details: list[FieldDetails], path: Sequence[str | int],
        depth: int = 1,
    ) -> nodes.Filter:
        if depth > MAX_FILTER_DEPTH:
            raise self.error(f"`where` is nested deeper than {MAX_FILTER_DEPTH} levels", details, path,
                             LIMIT_EXCEEDED)
        items: list[nodes.Filter] = []
        for name, condition in value.items():
            if condition is None:
                raise self.error(f"filter `{name}` is null; leave it out, or use isNull", details, path)
            if name == "and":
                items.append(nodes.And(tuple(self.where(entity, c, details, path, depth + 1) for c in condition)))
            elif name == "or":
                items.append(nodes.Or(tuple(self.where(entity, c, details, path, depth + 1) for c in condition)))
            elif name == "not":
                items.append(nodes.Not(self.where(entity, condition, details, path, depth + 1)))
            elif name in entity.relations:
                rel = entity.relations[name]
                items.append(nodes.RelationMatch(rel, self.where(rel.target, condition, details, path, depth + 1)))
            else:
                items.extend(self.column_conditions(entity.column_by_field(name), condition, details, path))
        return items[0] if len(items) == 1 else nodes.And(tuple(items))

    def column_conditions(
        self, column: Column, condition: Mapping[str, Any], details: list[FieldDetails], path: Sequence[str | int]
    ) -> list[nodes.Filter]:
        result: list[nodes.Filter] = []
        for op, operand in condition.items():
            if operand is None:
                raise self.error(f"`{column.field_name}.{op}` is null; use isNull to match NULL", details, path)
            if op == "isNull":
                result.append(nodes.IsNull(column, bool(operand)))
            else:
                result.append(nodes.Compare(column, op, list(operand) if op in ("in", "nin") else operand))
        if not result:
            raise self.error(f"filter on `{column.field_name}` names no operator", details, path)
        return result

    def order_arg(
        self, entity: Entity, value: Sequence[Mapping[str, str]] | None, details: list[FieldDetails],
        path: Sequence[str | int],
    ) -> tuple[nodes.OrderKey, ...]:
        keys: list[nodes.OrderKey] = []
        for item in value or ():
            if len(item) != 1:
                raise self.error("each `orderBy` item must set exactly one field", details, path)
            ((name, direction),) = item.items()
            if direction is None:
                raise self.error(f"`orderBy.{name}` is null", details, path)
            keys.append(nodes.OrderKey(entity.column_by_field(name), *_DIRECTIONS[direction]))
        return tuple(keys)

    def stream_from(self, value: Mapping[str, Any] | None, details: list[FieldDetails],
                    path: Sequence[str | int]) -> nodes.StreamFrom | None:
        if value is not None and (len(value) != 1 or next(iter(value.values())) is None):
            raise self.error("`from` must set exactly one of `seq` and `time`", details, path)
        if not value:
            return None
        if "seq" in value:
            return nodes.StreamFrom(seq=max(int(value["seq"]), 0))
        if value["time"] in ("infinity", "-infinity"):
            raise self.error("`from.time` must be a finite time", details, path)
        return nodes.StreamFrom(time=datetime.fromisoformat(value["time"]))

    def row_values(self, entity: Entity, value: Mapping[str, Any]) -> dict[str, Any]:
        return {entity.column_by_field(name).name: v for name, v in value.items()}

    # -- bookkeeping ---------------------------------------------------------------------
    def count(self, details: list[FieldDetails], path: Sequence[str | int]) -> None:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise self.error(f"query selects more than the maximum of {self.limits.max_nodes} fields", details, path,
                             LIMIT_EXCEEDED)

    @staticmethod
    def error(message: str, details: list[FieldDetails], path: Sequence[str | int],
              code: str | None = None) -> PlanError:
        extensions = {"code": code} if code else None
        return PlanError([GraphQLError(message, [d.node for d in details], path=path, extensions=extensions)])
