"""Benchmark: Quiver's JSON plane against the FraiseQL v1 technique, 10k to 1M rows of 8 columns.

Both servers run as subprocesses on loopback against the same database (``quiver_bench``,
1,000,000 demo orders). Quiver answers ``{ orders(limit: N) { id uuid customerId status
total isPaid placedAt meta } }``; the baseline (``benchmarks/baselines/fraiseql_v1.py``)
reads ``data::text`` from a ``jsonb_build_object`` view holding the same fields in the same
value forms and returns the joined rows as one body. The client streams each response and
counts bytes (no parsing while timed), from request to last byte. Before timing, each size
is checked once: both bodies parse to the same rows.

Run with ``make bench`` (``scripts/services start`` first), or directly:
``python -m benchmarks.json_plane [--sizes 10000,100000,1000000] [--rounds R]`` (from the repo root).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import orjson
import psycopg

from benchmarks.common import DEFAULT_ADMIN_URL, DEFAULT_OUTPUT
from benchmarks.common.database import BENCH_ORDERS, DB_NAME, ensure_bench_database, pg_settings
from benchmarks.common.report import command_line, machine_parts, publish
from benchmarks.common.servers import Server, free_port, peak_rss_mb, start_baseline, start_server, stop_server
from quiver.config import Settings
from quiver.plan import nodes
from quiver.plan.build import prepare
from quiver.schema.graphql import build_schema
from quiver.schema.introspect import introspect
from quiver.sql.json import SESSION_SETTINGS, compile_root
from quiver.sql.params import SettingParams

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
SECTION_TITLE = "## JSON plane vs the FraiseQL v1 technique"
FIELDS = "id uuid customerId status total isPaid placedAt meta"
TARGET_ROWS = 1_000_000
TARGET_RATIO = 2.0
QUIVER = "quiver"
BASELINE = "fraiseql_v1"

#: The baseline's statement (as in ``baselines/fraiseql_v1.py``), for the PostgreSQL-only timing.
BASELINE_SQL = "SELECT data::text FROM v_orders LIMIT %s"


# --- statements PostgreSQL runs ------------------------------------------------------------------------------------


def quiver_sql(db_url: str, rows: int) -> str:
    """The SQL Quiver runs for the benchmark query (its one root field), compiled by Quiver itself."""
    settings = Settings(database_url=db_url)
    with psycopg.connect(db_url) as conn:
        schema = build_schema(introspect(conn, settings.schemas, settings.exclude_tables))
    prepared = prepare(schema, payload(rows)["query"], limits=settings.limits())
    [root] = prepared.operation.roots
    assert isinstance(root, nodes.ListRoot)
    params = SettingParams()
    statement = compile_root(root, params)
    assert not params.settings, "the benchmark query has no parameters"
    return statement.sql


def database_only_seconds(db_url: str, statements: dict[str, str]) -> dict[str, float]:
    """Seconds PostgreSQL alone takes to render each statement's JSON rows (summed in the server, nothing sent)."""
    out = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        for name, value in SESSION_SETTINGS:
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        for name, statement in statements.items():
            started = time.perf_counter()
            conn.execute(f"SELECT sum(octet_length(j)) FROM ({statement}) AS q(j)").fetchone()
            out[name] = time.perf_counter() - started
    return out


# --- servers --------------------------------------------------------------------------------------


def start_quiver(db_url: str) -> Server:
    """``python -m quiver.cli serve`` over ``db_url``."""
    port = free_port()
    # Its own Flight port (where the server has one), so it never collides with another Quiver on this machine.
    env = {**os.environ, "QUIVER_DATABASE_URL": db_url, "QUIVER_FLIGHT_PORT": str(free_port())}
    return start_server(QUIVER, [sys.executable, "-m", "quiver.cli", "serve", "--port", str(port)], env, port)


def start_fraiseql(db_url: str) -> Server:
    """The FraiseQL v1 baseline server over ``db_url``."""
    return start_baseline(BASELINE, "benchmarks.baselines.fraiseql_v1", db_url)


# --- client ---------------------------------------------------------------------------------------


def payload(rows: int) -> dict[str, str]:
    """The GraphQL request both servers answer."""
    return {"query": f"{{ orders(limit: {rows}) {{ {FIELDS} }} }}"}


def fetch_body(client: httpx.Client, server: Server, rows: int) -> bytes:
    """The whole response body (for the correctness check, not timed)."""
    response = client.post(server.url + "/graphql", json=payload(rows))
    response.raise_for_status()
    return response.content


def timed_request(client: httpx.Client, server: Server, rows: int) -> tuple[float, int]:
    """Seconds from sending the request to the last body byte, and the body size; the body is not parsed."""
    request = payload(rows)
    size = 0
    started = time.perf_counter()
    with client.stream("POST", server.url + "/graphql", json=request) as response:
        for chunk in response.iter_raw():
            size += len(chunk)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{server.name}: HTTP {response.status_code}")
    return elapsed, size


def check_bodies(quiver_body: bytes, baseline_body: bytes, rows: int) -> list[str]:
    """Both bodies hold ``rows`` equal rows; returns notes on differences that are allowed (key order, spacing)."""
    ours = orjson.loads(quiver_body)
    theirs = orjson.loads(baseline_body)
    if "errors" in ours or "errors" in theirs:
        raise AssertionError(f"error response: quiver={ours.get('errors')} baseline={theirs.get('errors')}")
    a, b = ours["data"]["orders"], theirs["data"]["orders"]
    if len(a) != rows or len(b) != rows:
        raise AssertionError(f"expected {rows} rows, quiver returned {len(a)}, baseline {len(b)}")
    if a[0] != b[0]:
        raise AssertionError(f"first rows differ: quiver={a[0]!r} baseline={b[0]!r}")
    mismatches = sum(1 for x, y in zip(a, b, strict=True) if x != y)
    if mismatches:
        raise AssertionError(f"{mismatches} of {rows} rows differ between quiver and baseline")
    notes = []
    if list(a[0]) != list(b[0]):
        notes.append(f"key order differs (jsonb sorts keys): baseline row keys {list(b[0])}")
    return notes


# --- measurement ----------------------------------------------------------------------------------


@dataclass
class VariantResult:
    """Timings of one server at one size."""

    name: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    body_bytes: int = 0
    database_seconds: float | None = None  # PostgreSQL alone rendering the same rows, once, after the rounds

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.median

    @property
    def mb_per_second(self) -> float:
        return self.body_bytes / 1e6 / self.median


@dataclass
class SizeResult:
    """Both variants at one result size, and the per-round ratios baseline time / Quiver time."""

    rows: int
    quiver: VariantResult
    baseline: VariantResult
    ratios: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios)


@dataclass
class BenchResult:
    """A whole run."""

    sizes: list[SizeResult]
    peak_rss_mb: dict[str, float | None]
    machine: str
    database: str
    date: str
    command: str
    load_average: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and at the end

    def as_json(self) -> dict[str, Any]:
        """Raw numbers plus the derived ones."""
        sizes = []
        for size in self.sizes:
            variants = {
                key: {**asdict(v), "median": v.median, "rows_per_second": v.rows_per_second,
                      "mb_per_second": v.mb_per_second}
                for key, v in (("quiver", size.quiver), ("baseline", size.baseline))
            }
            sizes.append({"rows": size.rows, **variants, "ratios": size.ratios, "median_ratio": size.median_ratio,
                          "notes": size.notes})
        return {"sizes": sizes, "peak_rss_mb": self.peak_rss_mb, "machine": self.machine, "database": self.database,
                "date": self.date, "command": self.command, "load_average": list(self.load_average)}


def default_rounds(rows: int) -> int:
    """5 rounds up to 100k rows, 3 above."""
    return 5 if rows <= 100_000 else 3


def measure_size(client: httpx.Client, quiver: Server, baseline: Server, rows: int, rounds: int,
                 database_url: str | None = None) -> SizeResult:
    """Check, warm up, then time ``rounds`` interleaved rounds (the first variant alternates per round).

    With ``database_url``, also time PostgreSQL alone rendering each variant's rows once.
    """
    quiver_body, baseline_body = fetch_body(client, quiver, rows), fetch_body(client, baseline, rows)
    notes = check_bodies(quiver_body, baseline_body, rows)
    del quiver_body, baseline_body
    gc.collect()
    result = SizeResult(rows, VariantResult(QUIVER, rows), VariantResult(BASELINE, rows), notes=notes)
    pairs = ((quiver, result.quiver), (baseline, result.baseline))
    for server, variant in pairs:  # warm-up
        _, variant.body_bytes = timed_request(client, server, rows)
    for round_index in range(rounds):
        seconds: dict[str, float] = {}
        for server, variant in pairs if round_index % 2 == 0 else pairs[::-1]:
            elapsed, size = timed_request(client, server, rows)
            if size != variant.body_bytes:
                raise AssertionError(f"{server.name}: body size changed from {variant.body_bytes} to {size}")
            variant.seconds.append(elapsed)
            seconds[server.name] = elapsed
        result.ratios.append(seconds[BASELINE] / seconds[QUIVER])
    if database_url is not None:
        statements = {QUIVER: quiver_sql(database_url, rows), BASELINE: BASELINE_SQL.replace("%s", str(int(rows)))}
        database_only = database_only_seconds(database_url, statements)
        result.quiver.database_seconds = database_only[QUIVER]
        result.baseline.database_seconds = database_only[BASELINE]
    return result


def run(db_url: str, sizes: list[int], rounds: int | None = None, *, machine: str = "", database: str = "",
        command: str = "", progress: bool = False) -> BenchResult:
    """Start both servers over ``db_url``, measure every size, stop the servers."""
    load_before = os.getloadavg()[0]
    quiver = start_quiver(db_url)
    try:
        baseline = start_fraiseql(db_url)
    except BaseException:
        stop_server(quiver)
        raise
    results: list[SizeResult] = []
    try:
        with httpx.Client(timeout=600) as client:
            for rows in sizes:
                size = measure_size(client, quiver, baseline, rows, rounds or default_rounds(rows), db_url)
                results.append(size)
                if progress:
                    print(_summary_line(size), file=sys.stderr, flush=True)
        rss = {QUIVER: peak_rss_mb(quiver.pid), BASELINE: peak_rss_mb(baseline.pid)}
    finally:
        stop_server(quiver)
        stop_server(baseline)
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return BenchResult(results, rss, machine, database, today, command, (load_before, os.getloadavg()[0]))


def _summary_line(size: SizeResult) -> str:
    q, b = size.quiver, size.baseline
    return (f"{size.rows:>9,} rows: quiver {q.median:.3f}s ({q.mb_per_second:.0f} MB/s), "
            f"fraiseql_v1 {b.median:.3f}s ({b.mb_per_second:.0f} MB/s), ratio {size.median_ratio:.2f}x")


# --- report ---------------------------------------------------------------------------------------


def describe_machine(db_url: str, note: str = "") -> str:
    """CPUs, memory, OS, PostgreSQL version (detected), plus a free-form note."""
    parts = [*machine_parts(), f"PostgreSQL {pg_settings(db_url, 'server_version')['server_version']}",
             f"Python {platform.python_version()}"]
    return ", ".join(parts) + (f"; {note}" if note else "")


def fmt_rows(rows: int) -> str:
    """10k, 1M, 1500."""
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1_000}k" if rows % 1_000 == 0 else str(rows)


def render_section(result: BenchResult) -> str:
    """The markdown section (``## ...`` to the end of this benchmark's text)."""
    lines = [
        SECTION_TITLE,
        "",
        "Server throughput of one GraphQL list query, "
        f"`{{ orders(limit: N) {{ {FIELDS} }} }}` (8 columns of the demo `orders` table), "
        "answered by Quiver's streamed JSON plane and by a minimal server using the FraiseQL v1 technique: "
        "a view whose rows PostgreSQL builds with `jsonb_build_object` (same camelCase keys and value forms: "
        "int8 and numeric as strings, timestamps as ISO 8601 in UTC), `SELECT data::text FROM v_orders LIMIT N` "
        "fetched with psycopg 3 (async pool, binary, rows kept as raw bytes, `fetchall`), joined into one body "
        "(`benchmarks/baselines/fraiseql_v1.py`, Starlette + uvicorn).",
        "",
        f"- **Date:** {result.date}",
        f"- **Machine:** {result.machine}. The client, both servers and PostgreSQL run on this one machine "
        "(loopback HTTP and TCP).",
        "- **Reproduce:** `make bench` (runs `scripts/services start`, then "
        "`python -m benchmarks.json_plane` with the services' environment). "
        f"This run: `{result.command}`.",
        f"- **Load:** 1-minute load average {result.load_average[0]:.2f} at the start and "
        f"{result.load_average[1]:.2f} at the end of the run (the benchmark's own processes included).",
        f"- **Method:** database {result.database}, `synchronize_seqscans = off` "
        "so every `LIMIT N` reads the same rows. Both servers run at once as uvicorn subprocesses on 127.0.0.1. "
        "Per size: one check that both bodies parse (orjson) to N identical rows, one warm-up call each, then R "
        "rounds with the variants interleaved (the first variant alternates). The client (httpx, streaming) "
        "times request → last byte and only counts bytes. Times are medians (min–max over the rounds); "
        "MB = 10⁶ bytes; the ratio is the median of per-round (FraiseQL v1 time / Quiver time), > 1 means "
        "Quiver is faster. *PostgreSQL only* is one timing, after the rounds, of the database alone producing "
        "the same JSON rows (`SELECT sum(octet_length(j)) FROM (<statement>) AS q(j)`: Quiver's compiled "
        "`row_to_json` statement, or the baseline's `SELECT data::text FROM v_orders LIMIT N`), "
        "with nothing sent to a client: the floor each technique's server time stands on.",
        "",
        "| rows | rounds | variant | median s | min–max s | rows/s | MB/s | body MB | ratio (v1 / Quiver) "
        "| PostgreSQL only s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in result.sizes:
        for variant in (size.quiver, size.baseline):
            label = "Quiver JSON plane" if variant is size.quiver else "FraiseQL v1 technique"
            ratio = f"**{size.median_ratio:.2f}×**" if variant is size.quiver else ""
            database = "" if variant.database_seconds is None else f"{variant.database_seconds:.3f}"
            lines.append(
                f"| {fmt_rows(size.rows)} | {len(variant.seconds)} | {label} | {variant.median:.3f} | "
                f"{min(variant.seconds):.3f}–{max(variant.seconds):.3f} | {variant.rows_per_second:,.0f} | "
                f"{variant.mb_per_second:.1f} | {variant.body_bytes / 1e6:.1f} | {ratio} | {database} |"
            )
    lines.append("")
    rss = result.peak_rss_mb
    if any(v is not None for v in rss.values()):
        shown = ", ".join(f"{'Quiver' if k == QUIVER else 'FraiseQL v1'} {v:.0f} MB"
                          for k, v in rss.items() if v is not None)
        lines += [f"Server peak RSS (VmHWM) after the whole run: {shown}.", ""]
    notes = sorted({note for size in result.sizes for note in size.notes})
    if notes:
        lines += ["Notes: " + "; ".join(notes) + ". The baseline bodies are larger because `jsonb::text` puts a "
                  "space after every `:` and `,`.", ""]
    largest = max(result.sizes, key=lambda s: s.rows)
    q, b = largest.quiver, largest.baseline
    if q.database_seconds and b.database_seconds:
        db_ratio = b.database_seconds / q.database_seconds
        lines += [
            f"Reading the numbers: at {fmt_rows(largest.rows)} rows PostgreSQL alone needs {q.database_seconds:.2f} s "
            f"for Quiver's `row_to_json` statement and {b.database_seconds:.2f} s for the `jsonb_build_object` view "
            f"({db_ratio:.2f}×). End to end, Quiver takes {q.median / q.database_seconds:.2f}× its PostgreSQL-only "
            "time (it streams while PostgreSQL produces rows, sharing the CPUs with PostgreSQL and the client), "
            f"the baseline {b.median / b.database_seconds:.2f}× (it fetches every row, then sends). Single runs on "
            "shared vCPUs vary a lot: read the per-round ratios and spreads, not only the medians.",
            "",
        ]
    if largest.rows == TARGET_ROWS:
        verdict = "met" if largest.median_ratio >= TARGET_RATIO else "not met"
        lines += [
            f"Target: Quiver JSON plane throughput ≥ {TARGET_RATIO:g}× the FraiseQL v1 technique on the 1M-row "
            f"× 8-column query. Measured: **{largest.median_ratio:.2f}×** (per-round ratios "
            f"{', '.join(f'{r:.2f}' for r in largest.ratios)}): target **{verdict}**.",
            "",
        ]
    else:
        lines += [f"Target (≥ {TARGET_RATIO:g}× at 1M rows): not measured in this run.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.json_plane",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("QUIVER_TEST_ADMIN_URL", DEFAULT_ADMIN_URL),
                        help="admin URL of the PostgreSQL server (the benchmark creates its own database)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="result sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per size (default 5; 3 above 100k rows)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT),
                        help="markdown file whose section is (re)written; '' to skip")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--machine-note", default="", help="free text added to the detected machine description")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if not sizes or any(not 0 < s <= BENCH_ORDERS for s in sizes):
        parser.error(f"--sizes must be between 1 and {BENCH_ORDERS}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")
    print(f"preparing {DB_NAME} ({BENCH_ORDERS:,} orders)...", file=sys.stderr, flush=True)
    db_url = ensure_bench_database(args.database_url)
    command = command_line("benchmarks.json_plane", argv)
    result = run(db_url, sizes, args.rounds, machine=describe_machine(db_url, args.machine_note),
                 database=f"`{DB_NAME}` with {BENCH_ORDERS:,} demo orders (seed 42)", command=command, progress=True)
    publish(render_section(result), SECTION_TITLE, args.output, result.as_json() if args.json else None)


if __name__ == "__main__":
    main()
