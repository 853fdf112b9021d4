"""Every ``python`` block of docs/clients.md runs against ``quiver serve`` and reads what PostgreSQL holds.

The blocks use the default addresses (``grpc://127.0.0.1:8815``, ``http://127.0.0.1:8000``) and the
token ``my-token``; the test swaps in a served Quiver's (with that token) and runs each block in a
subprocess of its own. Each block leaves its results in variables; the ones a block defines are
compared with psycopg's answer to the same question, and every block must define at least one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from tests.conftest import ROOT, Server, start_server, stop_server

DOC = ROOT / "docs" / "clients.md"
TOKEN = "my-token"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
# What the blocks leave, written out by the runner as JSON-friendly values.
DUMP = '''
import json as _json, sys as _sys
_out = {}
for _name, _value in list(globals().items()):
    if _name.startswith("_"):
        continue
    if hasattr(_value, "to_pylist") and hasattr(_value, "column_names"):      # pyarrow.Table
        _out[_name] = {"rows": _value.num_rows, "id": _value.column("id").to_pylist()}
    elif type(_value).__module__.startswith("pandas") and hasattr(_value, "columns"):
        _out[_name] = {"rows": len(_value), "id": [int(v) for v in _value["id"]]}
    elif type(_value).__module__.startswith("polars") and hasattr(_value, "columns"):
        _out[_name] = {"rows": _value.height, "id": _value["id"].to_list()}
    elif isinstance(_value, list) and _value and isinstance(_value[0], tuple):
        _out[_name] = {"rows": len(_value), "tuples": [[str(x) for x in row] for row in _value]}
_sys.stdout.write("\\n@@RESULTS@@" + _json.dumps(_out))
'''


def blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text())


@pytest.fixture(scope="module")
def served(demo_url: str) -> Iterator[Server]:
    running = start_server(demo_url, QUIVER_TOKENS=f'["{TOKEN}"]')
    yield running
    stop_server(running)


def first_ids(pg: psycopg.Connection[Any], limit: int | None) -> list[int]:
    sql = "SELECT id FROM orders ORDER BY id" + (f" LIMIT {limit}" if limit else "")
    return [row[0] for row in pg.execute(sql)]


def by_status(pg: psycopg.Connection[Any]) -> list[list[str]]:
    rows = pg.execute("SELECT status::text, count(*), sum(total) FROM orders GROUP BY 1 ORDER BY 1").fetchall()
    return [[status, str(n), str(Decimal(total))] for status, n, total in rows]


def customer_orders(pg: psycopg.Connection[Any]) -> list[int]:
    return [row[0] for row in pg.execute("SELECT id FROM orders WHERE customer_id = 42 ORDER BY id")]


# Each variable a block may define, and how to check it against PostgreSQL.
CHECKS: dict[str, Callable[[psycopg.Connection[Any], dict[str, Any]], None]] = {}


def check(name: str) -> Callable[[Callable[[psycopg.Connection[Any], dict[str, Any]], None]],
                                  Callable[[psycopg.Connection[Any], dict[str, Any]], None]]:
    def register(function: Callable[[psycopg.Connection[Any], dict[str, Any]], None]) -> Any:
        CHECKS[name] = function
        return function
    return register


@check("table")
@check("df")
@check("frame")
def _first_thousand(pg: psycopg.Connection[Any], value: dict[str, Any]) -> None:
    assert value["id"] == first_ids(pg, 1000)


@check("orders")
def _every_order(pg: psycopg.Connection[Any], value: dict[str, Any]) -> None:
    assert sorted(value["id"]) == first_ids(pg, None)


@check("by_status")
def _by_status(pg: psycopg.Connection[Any], value: dict[str, Any]) -> None:
    assert value["tuples"] == by_status(pg)


@check("customer_orders")
def _customer(pg: psycopg.Connection[Any], value: dict[str, Any]) -> None:
    assert value["id"] == customer_orders(pg)


def test_the_page_has_blocks_to_run() -> None:
    assert len(blocks()) >= 5


@pytest.mark.parametrize("index", range(len(blocks())))
def test_each_python_block_runs_and_reads_what_postgres_holds(index: int, served: Server, demo_url: str,
                                                              tmp_path: Path) -> None:
    code = blocks()[index]
    flight_address = served.flight_url.removeprefix("grpc://")
    runnable = (code.replace("grpc://127.0.0.1:8815", f"grpc://{flight_address}")
                .replace("http://127.0.0.1:8000", served.url))
    script = tmp_path / "block.py"
    script.write_text(runnable + DUMP)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, f"block {index} failed:\n{code}\n{done.stderr}"
    results: dict[str, Any] = orjson.loads(done.stdout.rsplit("@@RESULTS@@", 1)[1])
    checked = [name for name in results if name in CHECKS]
    assert checked, f"block {index} left no result this test knows how to check: {sorted(results)}"
    with psycopg.connect(demo_url) as pg:
        for name in checked:
            CHECKS[name](pg, results[name])
