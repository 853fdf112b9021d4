"""Arrow parity: the correctness suite's queries, answered by Arrow Flight and Arrow over HTTP.

Every GraphQL request that ``test_correctness`` sends is recorded (its test functions
run unchanged against a recording client, so the JSON plane is still checked against
the SQL oracle) and replayed on both Arrow planes:

* DoGet with ticket ``{"kind": "graphql", "query": ..., "variables": ...}``;
* ``POST /graphql`` with ``Accept: application/vnd.apache.arrow.stream``;
* GetSchema with ``FlightDescriptor.for_command`` of the same JSON.

For each request with one root field that has an Arrow form (list, by-key, aggregate):
DoGet's schema == GetSchema's == the HTTP stream's (exactly: nullability and field
metadata included), the columns are the selection's response keys in order, and the
Arrow rows, normalised as ``quiver.arrow.types`` documents, equal the JSON plane's
answer, key order and JSON types included. A document with several root fields (or a
root with no Arrow form, like ``__typename``) is refused by both Arrow planes
(INVALID_ARGUMENT / HTTP 400 with a JSON error) and then split into one document per
root field, each compared on its own. Nothing is skipped: the last test counts.
"""

from __future__ import annotations

import base64
import inspect
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson
import psycopg
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.ipc as ipc
import pytest
from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    VariableNode,
    Visitor,
    parse,
    print_ast,
    value_from_ast_untyped,
    visit,
)

from tests.conftest import Server
from tests.integration import test_correctness as correctness

Db = psycopg.Connection[Any]
ARROW = "application/vnd.apache.arrow.stream"
JSON_MARK = {b"quiver:type": b"json"}
MIN_COMPARED = 100


# --- the correctness suite's cases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One run of a correctness test function: its name and parameter values."""

    id: str
    function: Callable[..., None]
    arguments: dict[str, Any]
    marks: tuple[Any, ...] = ()


def _case_id(values: Sequence[Any], index: int) -> str:
    simple = [str(v) for v in values
              if (v is None or isinstance(v, int | str)) and 0 < len(str(v)) <= 24 and " " not in str(v)]
    return "-".join(simple) or str(index)


def correctness_cases() -> list[Case]:
    """Every test function of ``test_correctness`` with every parametrization, in definition order."""
    parameter_set = type(pytest.param(None))
    cases: list[Case] = []
    for name, function in vars(correctness).items():
        if not name.startswith("test_") or not inspect.isfunction(function):
            continue
        axes: list[list[tuple[str, dict[str, Any], tuple[Any, ...]]]] = []
        for mark in getattr(function, "pytestmark", []):
            if mark.name != "parametrize":
                raise AssertionError(f"{name}: unexpected mark {mark.name}; teach test_arrow_parity about it")
            names, values = mark.args[0], mark.args[1]
            names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
            axis = []
            for index, value in enumerate(values):
                marks: tuple[Any, ...] = ()
                if isinstance(value, parameter_set):
                    marks, given_id, value = tuple(value.marks), value.id, value.values
                else:
                    given_id = None
                    value = (value,) if len(names) == 1 else tuple(value)
                case_id = given_id if isinstance(given_id, str) and given_id else _case_id(value, index)
                axis.append((case_id, dict(zip(names, value, strict=True)), marks))
            axes.append(axis)
        for combination in itertools.product(*axes):
            ids = [c[0] for c in combination]
            arguments = {k: v for c in combination for k, v in c[1].items()}
            marks = tuple(m for c in combination for m in c[2])
            cases.append(Case(name + (f"[{'-'.join(ids)}]" if ids else ""), function, arguments, marks))
    assert len({c.id for c in cases}) == len(cases), "case ids must be unique"
    return cases


CASES = correctness_cases()


@dataclass
class Recorded:
    query: str
    variables: dict[str, Any] | None
    response: httpx.Response


class Recorder:
    """Stands in for the correctness suite's httpx client: forwards each POST and keeps it."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.requests: list[Recorded] = []

    def post(self, url: str, *, json: dict[str, Any]) -> httpx.Response:
        response = self.http.post(url, json=json)
        self.requests.append(Recorded(json["query"], json.get("variables"), response))
        return response


def record(case: Case, http: httpx.Client, db: Db) -> list[Recorded]:
    """Run one correctness case (oracle assertions included) and return the requests it sent."""
    recorder = Recorder(http)
    parameters = inspect.signature(case.function).parameters
    fixtures = {"client": recorder, "db": db}
    arguments = {name: fixtures[name] if name in fixtures else case.arguments[name] for name in parameters}
    case.function(**arguments)
    return recorder.requests


# --- documents: root fields and splitting ------------------------------------------------------------------


def _included(node: FieldNode | FragmentSpreadNode | InlineFragmentNode, variables: dict[str, Any]) -> bool:
    for directive in node.directives or ():
        if directive.name.value not in ("skip", "include"):
            continue
        (argument,) = directive.arguments or ()
        value = argument.value
        if isinstance(value, VariableNode):
            condition = bool(variables[value.name.value])
        else:
            assert isinstance(value, BooleanValueNode)
            condition = value.value
        if condition == (directive.name.value == "skip"):
            return False
    return True


def fields_by_key(selections: Sequence[SelectionNode], fragments: dict[str, FragmentDefinitionNode],
                  variables: dict[str, Any]) -> dict[str, list[FieldNode]]:
    """A selection set's fields grouped by response key, in first-occurrence order (fragments flattened)."""
    grouped: dict[str, list[FieldNode]] = {}
    for selection in selections:
        if not _included(selection, variables):  # type: ignore[arg-type]
            continue
        if isinstance(selection, FieldNode):
            key = (selection.alias or selection.name).value
            grouped.setdefault(key, []).append(selection)
            continue
        if isinstance(selection, FragmentSpreadNode):
            inner = fragments[selection.name.value].selection_set.selections
        else:
            assert isinstance(selection, InlineFragmentNode)
            inner = selection.selection_set.selections
        for key, nodes in fields_by_key(inner, fragments, variables).items():
            grouped.setdefault(key, []).extend(nodes)
    return grouped


@dataclass
class Document:
    """A parsed request: its operation, fragments, variables as sent and as in effect (defaults applied)."""

    query: str
    variables: dict[str, Any]
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]
    effective: dict[str, Any]

    @classmethod
    def parse(cls, query: str, variables: dict[str, Any] | None) -> Document:
        ast = parse(query)
        operations = [d for d in ast.definitions if isinstance(d, OperationDefinitionNode)]
        assert len(operations) == 1, "the correctness suite sends one operation per document"
        fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
        effective = dict(variables or {})
        for definition in operations[0].variable_definitions or ():
            name = definition.variable.name.value
            if name not in effective and definition.default_value is not None:
                effective[name] = value_from_ast_untyped(definition.default_value)
        return cls(query, dict(variables or {}), operations[0], fragments, effective)

    def roots(self) -> dict[str, list[FieldNode]]:
        return fields_by_key(self.operation.selection_set.selections, self.fragments, self.effective)

    def keys(self, root: str) -> list[str]:
        """The response keys of one root field's selection: the Arrow columns, in order."""
        selections = [s for node in self.roots()[root] if node.selection_set for s in node.selection_set.selections]
        return list(fields_by_key(selections, self.fragments, self.effective))

    def split(self, root: str) -> Document:
        """A document asking for ``root`` only, with just the fragments and variables it uses."""
        nodes = self.roots()[root]
        fragments: dict[str, FragmentDefinitionNode] = {}
        pending = _names(nodes, FragmentSpreadNode)
        while pending:
            name = pending.pop()
            if name not in fragments:
                fragments[name] = self.fragments[name]
                pending |= _names([fragments[name]], FragmentSpreadNode)
        used = _names([*nodes, *fragments.values()], VariableNode)
        definitions = tuple(d for d in self.operation.variable_definitions or () if d.variable.name.value in used)
        operation = OperationDefinitionNode(
            operation=self.operation.operation, name=self.operation.name, variable_definitions=definitions,
            directives=self.operation.directives, selection_set=SelectionSetNode(selections=tuple(nodes)),
        )
        query = print_ast(DocumentNode(definitions=(operation, *fragments.values())))
        variables = {k: v for k, v in self.variables.items() if k in used}
        return Document.parse(query, variables)


class _Collect(Visitor):
    """Names of the fragment spreads or variables under a node."""

    def __init__(self, kind: type[FragmentSpreadNode] | type[VariableNode]) -> None:
        super().__init__()
        self.kind = kind
        self.found: set[str] = set()

    def enter(self, node: Any, *_: Any) -> None:
        if isinstance(node, self.kind):
            self.found.add(node.name.value)


def _names(nodes: Sequence[Any], kind: type[FragmentSpreadNode] | type[VariableNode]) -> set[str]:
    collect = _Collect(kind)
    for node in nodes:
        visit(node, collect)
    return collect.found


# --- normalisation: Arrow values -> the JSON plane's forms ----------------------------------------------


def iso(value: datetime, offset: bool) -> str:
    """PostgreSQL's JSON rendering of a timestamp (UTC): trailing fractional zeros dropped."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + ("+00:00" if offset else "")


def normalise(value: Any, column: pa.Field, *, bigint_text: bool = True) -> Any:
    """One Arrow value (as ``to_pylist`` gives it) in the JSON plane's form, per ``quiver.arrow.types``."""
    kind = column.type
    if value is None:
        return None
    if pa.types.is_struct(kind):
        return {child.name: normalise(value[child.name], child) for child in kind}
    if pa.types.is_list(kind):
        return [normalise(v, kind.value_field) for v in value]
    if pa.types.is_dictionary(kind):
        assert isinstance(value, str)
        return value
    if pa.types.is_int64(kind):
        return str(value) if bigint_text else value
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return value
    if pa.types.is_decimal(kind):
        assert isinstance(value, Decimal) and -value.as_tuple().exponent == kind.scale  # type: ignore[operator]
        return format(value, "f")
    if pa.types.is_timestamp(kind):
        assert kind.unit == "us" and kind.tz in (None, "UTC"), kind
        assert isinstance(value, datetime)
        return iso(value, offset=kind.tz is not None)
    if pa.types.is_date32(kind):
        assert isinstance(value, date)
        return value.isoformat()
    if pa.types.is_binary(kind):
        return base64.b64encode(value).decode()
    if pa.types.is_string(kind):
        return orjson.loads(value) if column.metadata == JSON_MARK else value
    raise TypeError(f"no documented JSON form for Arrow type {kind} (field {column.name})")


def arrow_rows(table: pa.Table, *, aggregate: bool) -> list[dict[str, Any]]:
    """The table's rows in JSON form; an aggregate's count is GraphQL Int (a number), not BigInt."""
    fields = list(table.schema)
    return [{f.name: normalise(row[f.name], f, bigint_text=not aggregate) for f in fields} for row in table.to_pylist()]


def describe(kind: pa.DataType | pa.Schema) -> Any:
    """Every field's name, type, nullability and metadata, recursively (for exact schema comparison)."""
    fields = list(kind) if isinstance(kind, pa.Schema) else [kind.field(i) for i in range(kind.num_fields)]
    return [(f.name, str(f.type), f.nullable, dict(f.metadata or {}), describe(f.type)) for f in fields]


# --- the planes ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def flight_client(server: Server) -> Iterator[flight.FlightClient]:
    client = flight.connect(server.flight_url)
    yield client
    client.close()


def ticket(document: Document) -> bytes:
    return orjson.dumps({"kind": "graphql", "query": document.query, "variables": document.variables})


def json_plane(http: httpx.Client, document: Document) -> Any:
    response = http.post("/graphql", json={"query": document.query, "variables": document.variables})
    assert response.status_code == 200, response.text
    body = orjson.loads(response.content)
    assert "errors" not in body, body["errors"]
    return body["data"]


def http_arrow(http: httpx.Client, document: Document) -> httpx.Response:
    return http.post("/graphql", json={"query": document.query, "variables": document.variables},
                     headers={"Accept": ARROW})


@dataclass
class Tally:
    """How many queries each plane answered and were compared, and how many documents were refused."""

    json: int = 0
    flight: int = 0
    http: int = 0
    get_schema: int = 0
    refused: int = 0
    queries: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.json += other.json
        self.flight += other.flight
        self.http += other.http
        self.get_schema += other.get_schema
        self.refused += other.refused
        self.queries += other.queries


TALLIES: dict[str, Tally] = {}


def assert_refused(http: httpx.Client, client: flight.FlightClient, document: Document) -> None:
    """No Arrow form: Flight answers INVALID_ARGUMENT (DoGet and GetSchema), HTTP 400 with a JSON error."""
    with pytest.raises(pa.ArrowInvalid, match="exactly one root field"):
        client.do_get(flight.Ticket(ticket(document))).read_all()
    with pytest.raises(pa.ArrowInvalid, match="exactly one root field"):
        client.get_schema(flight.FlightDescriptor.for_command(ticket(document)))
    response = http_arrow(http, document)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/json")
    errors = orjson.loads(response.content)["errors"]
    assert errors and "exactly one root field" in errors[0]["message"]
    assert errors[0]["extensions"]["code"] == "BAD_REQUEST"


def compare(http: httpx.Client, client: flight.FlightClient, document: Document, root: str, expected: Any,
            tally: Tally) -> None:
    """One single-root document: both Arrow planes against the JSON plane's value ``expected``."""
    (name,) = {node.name.value for node in document.roots()[root]}
    aggregate = name.endswith("Aggregate")
    where = f"\nquery: {document.query}\nvariables: {document.variables}"
    tally.json += 1

    flight_table = client.do_get(flight.Ticket(ticket(document))).read_all()
    tally.flight += 1
    response = http_arrow(http, document)
    assert response.status_code == 200, response.text + where
    assert response.headers["content-type"] == ARROW, where
    http_table = ipc.open_stream(response.content).read_all()
    tally.http += 1
    schema = client.get_schema(flight.FlightDescriptor.for_command(ticket(document))).schema
    tally.get_schema += 1
    tally.queries.append(document.query)

    assert flight_table.schema.equals(schema, check_metadata=True), f"DoGet {flight_table.schema}\n" \
                                                                    f"GetSchema {schema}{where}"
    assert http_table.schema.equals(schema, check_metadata=True), f"HTTP {http_table.schema}\n" \
                                                                  f"GetSchema {schema}{where}"
    assert describe(flight_table.schema) == describe(schema) == describe(http_table.schema), where
    assert schema.names == document.keys(root), where

    if isinstance(expected, list):
        wanted = expected
    elif aggregate:
        assert isinstance(expected, dict), where
        wanted = [expected]
    else:  # by primary key: one row or none
        wanted = [] if expected is None else [expected]
    for row in wanted:
        assert list(row) == schema.names, where
    for plane, table in (("Flight", flight_table), ("HTTP", http_table)):
        got = arrow_rows(table, aggregate=aggregate)
        assert got == wanted, f"{plane} rows differ from the JSON plane{where}"
        assert orjson.dumps(got) == orjson.dumps(wanted), f"{plane}: same values, but key order or types differ{where}"


def run_case(case: Case, http: httpx.Client, client: flight.FlightClient, db: Db) -> Tally:
    tally = Tally()
    requests = record(case, http, db)
    for request in requests:
        assert request.response.status_code == 200
        answer = orjson.loads(request.response.content)["data"]
        document = Document.parse(request.query, request.variables)
        roots = document.roots()
        assert list(roots) == list(answer), "the document's root keys are the JSON answer's keys"
        single = len(roots) == 1 and not next(iter(roots)).startswith("__") and \
            all(not n.name.value.startswith("__") for n in next(iter(roots.values())))
        if single:
            (key,) = roots
            compare(http, client, document, key, answer[key], tally)
            continue
        assert_refused(http, client, document)
        tally.refused += 1
        for key in roots:
            part = document.split(key)
            value = json_plane(http, part)
            assert orjson.dumps(value) == orjson.dumps({key: answer[key]}), f"split {key!r}: {part.query}"
            if any(node.name.value.startswith("__") for node in part.roots()[key]):
                assert_refused(http, client, part)  # `__typename` at the root has no Arrow form
                tally.refused += 1
            else:
                compare(http, client, part, key, value[key], tally)
    return tally


# --- tests ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_parity(http: httpx.Client, flight_client: flight.FlightClient, db: Db, case: Case) -> None:
    """Every request of one correctness case: same schema on all Arrow paths, same values as JSON."""
    TALLIES[case.id] = run_case(case, http, flight_client, db)


def test_types_of_a_representative_query(http: httpx.Client, flight_client: flight.FlightClient) -> None:
    """The documented PostgreSQL → Arrow types, spelled out, on both planes and GetSchema."""
    json_text = {b"quiver:type": b"json"}
    status = pa.dictionary(pa.int16(), pa.string())
    queries = {
        """{ orders(orderBy: [{id: ASC}], limit: 20) { id total status placedAt shippedOn meta
            customer { id name createdAt profile } orderItems(orderBy: [{id: ASC}]) { id quantity discount } } }""":
        pa.schema([
            pa.field("id", pa.int64(), nullable=False),
            pa.field("total", pa.decimal128(12, 2), nullable=False),
            pa.field("status", status, nullable=False),
            pa.field("placedAt", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("shippedOn", pa.date32(), nullable=True),
            pa.field("meta", pa.string(), nullable=False, metadata=json_text),
            pa.field("customer", pa.struct([
                pa.field("id", pa.int64(), nullable=False),
                pa.field("name", pa.string(), nullable=False),
                pa.field("createdAt", pa.timestamp("us", tz="UTC"), nullable=False),
                pa.field("profile", pa.string(), nullable=False, metadata=json_text),
            ]), nullable=False),
            pa.field("orderItems", pa.list_(pa.field("item", pa.struct([
                pa.field("id", pa.int64(), nullable=False),
                pa.field("quantity", pa.int32(), nullable=False),
                pa.field("discount", pa.string(), nullable=True),
            ]), nullable=False)), nullable=False),
        ]),
        """{ products(orderBy: [{id: ASC}]) { id price barcode tags thumbnail inStock description
            orderItems(orderBy: [{id: ASC}], limit: 2) { unitPrice order { status } } } }""":
        pa.schema([
            pa.field("id", pa.int64(), nullable=False),
            pa.field("price", pa.decimal128(12, 2), nullable=False),
            pa.field("barcode", pa.int64(), nullable=False),
            pa.field("tags", pa.list_(pa.string()), nullable=False),
            pa.field("thumbnail", pa.binary(), nullable=True),
            pa.field("inStock", pa.bool_(), nullable=False),
            pa.field("description", pa.string(), nullable=True),
            pa.field("orderItems", pa.list_(pa.field("item", pa.struct([
                pa.field("unitPrice", pa.decimal128(12, 2), nullable=False),
                pa.field("order", pa.struct([pa.field("status", status, nullable=False)]), nullable=False),
            ]), nullable=False)), nullable=False),
        ]),
        "{ customerOrderTotals(orderBy: [{customerId: ASC}]) { customerId orderCount totalSpent } }":
        pa.schema([
            # A view's columns are nullable; unconstrained numeric (sum) travels as PostgreSQL's text.
            pa.field("customerId", pa.int64()),
            pa.field("orderCount", pa.int32()),
            pa.field("totalSpent", pa.string()),
        ]),
        "{ ordersAggregate { count kind: __typename } }":
        pa.schema([pa.field("count", pa.int64(), nullable=False), pa.field("kind", pa.string(), nullable=False)]),
    }
    tally = Tally()
    for query, expected in queries.items():
        document = Document.parse(query, None)
        (root,) = document.roots()
        schema = flight_client.get_schema(flight.FlightDescriptor.for_command(ticket(document))).schema
        assert schema.equals(expected, check_metadata=True), f"got {schema}\nexpected {expected}"
        assert describe(schema) == describe(expected)
        compare(http, flight_client, document, root, json_plane(http, document)[root], tally)
    assert tally.flight == tally.http == tally.get_schema == len(queries)

    # Enums: dictionaries over the labels in declaration order, whatever labels a batch holds.
    document = Document.parse("{ orders(where: {status: {eq: shipped}}, limit: 3) { status } }", None)
    labels = ["pending", "paid", "shipped", "delivered", "cancelled"]
    tables = [flight_client.do_get(flight.Ticket(ticket(document))).read_all(),
              ipc.open_stream(http_arrow(http, document).content).read_all()]
    for table in tables:
        chunks = table.column("status").chunks
        assert chunks and all(c.dictionary.to_pylist() == labels for c in chunks)
        assert table.column("status").to_pylist() == ["shipped"] * 3


def test_every_query_was_compared(http: httpx.Client, flight_client: flight.FlightClient, db: Db) -> None:
    """Nothing skipped: every case ran (those deselected above run here), and at least 100 queries compared."""
    total = Tally()
    for case in CASES:
        if any(getattr(m, "name", "") in ("skip", "skipif", "xfail") for m in case.marks):
            raise AssertionError(f"{case.id} is marked {case.marks}: the parity suite skips nothing")
        if case.id not in TALLIES:
            TALLIES[case.id] = run_case(case, http, flight_client, db)
        total.add(TALLIES[case.id])
    assert total.json == total.flight == total.http == total.get_schema
    assert total.flight >= MIN_COMPARED, f"only {total.flight} queries compared"
    assert len(set(total.queries)) >= MIN_COMPARED // 2, "mostly distinct query texts"
    print(f"\nArrow parity: {len(CASES)} correctness cases; queries compared: JSON {total.json}, "
          f"Flight DoGet {total.flight}, HTTP Arrow {total.http}, GetSchema {total.get_schema}; "
          f"{total.refused} documents refused as multi-root / non-Arrow roots ({len(set(total.queries))} distinct)")
