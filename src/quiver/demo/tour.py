"""A short tour of example queries against a running Quiver server, printed for a newcomer."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.syntax import Syntax

STEPS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "Customers with their three latest orders (one SQL statement, no N+1)",
        """query Latest($n: Int!) {
  customers(orderBy: [{id: ASC}], limit: 2) {
    name email
    orders(orderBy: [{placedAt: DESC}], limit: $n) { id status total placedAt }
  }
}""",
        {"n": 3},
    ),
    (
        "Filters, ordering and a relation filter: big paid or shipped orders of active customers",
        """{
  orders(where: {status: {in: [paid, shipped]}, total: {gt: "500"}, customer: {isActive: {eq: true}}},
         orderBy: [{total: DESC}], limit: 3) {
    id status total customer { name } orderItems { quantity unitPrice product { sku barcode } }
  }
}""",
        {},
    ),
    ("An aggregate", "{ ordersAggregate(where: {isPaid: {eq: true}}) { count } }", {}),
    (
        "Keyset pagination: the page after a cursor",
        """{ orders(orderBy: [{placedAt: DESC}], limit: 2) { id placedAt _cursor } }""",
        {},
    ),
]

MUTATION = """mutation New($order: OrderInsert!) {
  insertOrder(object: $order) { id status total customer { name } }
}"""


def _post(client: httpx.Client, query: str, variables: dict[str, Any]) -> Any:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    body = orjson.loads(response.content)
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"tour query failed ({response.status_code}): {body}")
    return body["data"]


def run_tour(base_url: str, console: Console | None = None, flight_url: str | None = None) -> None:
    """Run every step; raises if any answer is an error (the tests rely on that)."""
    console = console or Console()
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for title, query, variables in STEPS:
            console.rule(title)
            console.print(Syntax(query, "graphql", theme="ansi_dark"))
            data = _post(client, query, variables)
            console.print_json(orjson.dumps(data).decode())
        first = _post(client, STEPS[3][1], {})["orders"][-1]["_cursor"]
        console.rule("...and the next page, with `after`")
        following = f'{{ orders(orderBy: [{{placedAt: DESC}}], limit: 2, after: "{first}") {{ id placedAt }} }}'
        console.print_json(orjson.dumps(_post(client, following, {})).decode())

        console.rule("A mutation, in one transaction, returning its selection")
        order = {"uuid": "00000000-0000-4000-8000-000000000001", "customerId": "1", "total": "42.00",
                 "placedAt": "2025-12-24T18:00:00+00:00", "meta": {"channel": "demo"}}
        _post(client, "mutation($u: UUID!) { deleteOrders(where: {uuid: {eq: $u}}) { id } }", {"u": order["uuid"]})
        console.print_json(orjson.dumps(_post(client, MUTATION, {"order": order})).decode())

        console.rule("Streaming: every order as one JSON response")
        started = time.perf_counter()
        size = 0
        with client.stream("POST", "/graphql", json={"query": "{ orders { id uuid status total placedAt } }"}) as r:
            for chunk in r.iter_bytes():
                size += len(chunk)
        seconds = time.perf_counter() - started
        console.print(f"{size / 1e6:.1f} MB of JSON in {seconds:.2f} s ({size / 1e6 / seconds:.0f} MB/s), "
                      "streamed from a server-side COPY: server memory stays flat.")
    if flight_url:
        _flight_step(flight_url, console)


def _flight_step(flight_url: str, console: Console) -> None:
    import pyarrow.flight as flight

    console.rule("The same orders as Arrow Flight: typed columns, no JSON")
    query = "{ orders { id uuid status total placedAt customer { name } } }"
    started = time.perf_counter()
    table = flight.connect(flight_url).do_get(flight.Ticket(orjson.dumps({"kind": "graphql", "query": query})))
    result = table.read_all()
    seconds = time.perf_counter() - started
    console.print(str(result.schema), markup=False)
    console.print(f"{result.num_rows:,} rows as a pyarrow.Table in {seconds:.2f} s over {flight_url}; "
                  "try quiver.client.Client(url).to_pandas(query)")
