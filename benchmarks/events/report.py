"""This benchmark's section of ``docs/benchmarks.md``: the machine it ran on, every table and the verdicts on
the targets, rendered from a ``BenchResult`` (fresh, or read back from ``--json`` output with ``--from-json``,
so a section can be re-rendered without measuring again)."""

from __future__ import annotations

import math
import platform
from contextlib import suppress
from typing import Any

import httpx

from benchmarks.common.database import pg_settings
from benchmarks.common.report import machine_parts
from benchmarks.events.ceilings import CONSUMER_BATCH, Throughput
from benchmarks.events.conservation import OracleResult
from benchmarks.events.load import OPS
from benchmarks.events.pipeline import sink_name
from benchmarks.events.run import BenchResult
from benchmarks.events.step import StepResult
from benchmarks.events.visibility import SUSTAINED_DRAIN, SUSTAINED_P99, SUSTAINED_TREND, SinkStep
from quiver.events.consumer import ConsumerSettings
from quiver.events.relay import RelayConfig

SECTION_TITLE = "## Events: commit to visible in ClickHouse and OpenSearch"
TARGET_RATE = 10_000
TARGET_P99_RATE = 5_000
TARGET_P99 = 2.0


def describe_machine(database_url: str, nats_monitor: str | None, clickhouse: str | None, opensearch: str | None,
                     note: str = "") -> str:
    """CPUs, memory, OS and the services' versions and durability settings (detected)."""
    settings = pg_settings(database_url, "server_version", "fsync", "synchronous_commit")
    parts = [*machine_parts("vCPUs (shared)"),
             f"PostgreSQL {settings['server_version'].split()[0]} (fsync={settings['fsync']}, "
             f"synchronous_commit={settings['synchronous_commit']})"]
    if nats_monitor:
        with suppress(httpx.HTTPError, KeyError, ValueError):
            varz = httpx.get(f"{nats_monitor}/varz", timeout=5).json()
            config = varz.get("jetstream", {}).get("config", {})
            parts.append(f"NATS {varz['version']} (JetStream file storage, "
                         f"{'sync_interval always' if config.get('sync_always') else 'periodic fsync'})")
    if clickhouse:
        with suppress(httpx.HTTPError):
            version = httpx.post(clickhouse, content=b"SELECT version()", timeout=5).text.strip()
            parts.append(f"ClickHouse {version} (HTTP, Native format)")
    if opensearch:
        with suppress(httpx.HTTPError, KeyError, ValueError, StopIteration):
            server = httpx.get(opensearch, timeout=5).json()["version"]
            nodes = httpx.get(f"{opensearch}/_nodes/jvm", timeout=5).json()["nodes"]
            heap = sum(n["jvm"]["mem"]["heap_max_in_bytes"] for n in nodes.values()) / 2**30
            # A JVM limited to the C1 compiler starts sooner but indexes several times slower: say so.
            c1_only = any("-XX:TieredStopAtLevel=1" in n["jvm"].get("input_arguments", []) for n in nodes.values())
            name = "OpenSearch" if server.get("distribution") == "opensearch" else "Elasticsearch"
            parts.append(f"{name} {server['number']} ({len(nodes)} node(s), {heap:.1f} GB JVM heap"
                         f"{', C1 JIT only (-XX:TieredStopAtLevel=1)' if c1_only else ''}, translog fsync per "
                         "request)")
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts) + (f"; {note}" if note else "")


def _s(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def render_section(result: BenchResult) -> str:
    """The markdown section (``## ...`` to the end of this benchmark's text)."""
    relay, consumer = RelayConfig("", ""), ConsumerSettings()
    plans = "; ".join(f"{s.target:,}/s: K = {s.rows_per_statement} over {s.workers} connections"
                      for s in result.steps)
    names = " and ".join(sink_name(s) for s in result.sinks)
    consumers = ", ".join(f"`quiver events consume --sink {s}`" for s in result.sinks)
    polls = []
    if "clickhouse" in result.sinks:
        polls.append("ClickHouse with `SELECT seq, occurred_at_us FROM <db>.events WHERE seq > <watermark>`")
    if "search" in result.sinks:
        polls.append(
            "OpenSearch with a `_search` of the sink's alias (range `seq > <watermark>`, doc values only, sorted "
            "by `seq`, paged with `search_after`), never refreshed by the benchmark: a document is searchable after "
            "the index's next refresh (`refresh_interval` "
            + (f"{result.search_refresh}" if result.search_refresh else "not read in this run")
            + "), so its lag includes that wait, as any reader's would")
    lines = [
        SECTION_TITLE,
        "",
        "End-to-end capacity of the event pipeline with everything on one machine: PostgreSQL capture triggers → "
        f"outbox → `quiver events relay` → NATS JetStream → {consumers} → {names}, the relay and each consumer as "
        "separate processes (`benchmarks/events/`).",
        "",
        f"- **Date:** {result.date}",
        f"- **Machine:** {result.machine}. Load generator, relay, consumers and all the servers share these vCPUs.",
        f"- **Reproduce:** `scripts/services start`, then `eval \"$(scripts/services env)\"` and "
        f"`{result.command}`.",
        f"- **Load:** 1-minute load average {result.load_average[0]:.2f} at the start and "
        f"{result.load_average[1]:.2f} at the end (the benchmark's own processes included; other work on the "
        "machine too).",
        f"- **Pipeline settings:** as shipped (relay: {relay.batch:,} outbox rows per fetch, up to "
        f"{relay.events_per_message} events per message, {relay.publish_window} publishes in flight; each consumer: "
        f"fetches of up to {consumer.batch_max} messages or {consumer.batch_wait:g} s), Redis dedup in front of each "
        + (f"sink **on** (`QUIVER_REDIS_URL` = {result.dedup}"
           + (", this run's events found recorded afterwards: "
              + ", ".join(f"{sink_name(k)} {v:,}" for k, v in result.dedup_recorded.items())
              if result.dedup_recorded else "") + ")"
           if result.dedup else "sink **off**") + ".",
        "- **Method:** a fresh database cloned from a demo template (20,000 orders) with capture installed, its own "
        "JetStream namespace" + ("" if "clickhouse" not in result.sinks else ", ClickHouse database")
        + ("" if "search" not in result.sinks else ", OpenSearch index prefix") + ". Per target rate, a paced "
        f"open-loop generator commits {result.duration:g} s of small transactions: each one multi-row statement of "
        "K rows, cycling INSERT of K customers, UPDATE of K orders (two columns), DELETE of K customers inserted "
        f"earlier, so every statement makes K events (K = rate / statements per second, {plans}). "
        f"Every sink is polled every {result.poll_interval * 1000:.0f} ms for events past the last contiguous "
        f"`seq` it showed: {'; '.join(polls)}. An event's *lag* in a sink is the time of the poll that first saw "
        "it there minus its `occurred_at` (the trigger's `clock_timestamp()` in the committing transaction), so it "
        "includes up to one poll interval. "
        "*Delivered* counts events first seen during the load window. *Drain* is the time from the end of the "
        "load until every committed event was visible in that sink; *catch-up* is the sink's backlog at the end of "
        "the load over its drain time (when the drain took over 0.5 s): its rate with the writers gone. "
        "A sink **kept up** when "
        f"lag p99 ≤ {SUSTAINED_P99:g} s, drain ≤ {SUSTAINED_DRAIN:g} s, and the lag did not keep growing: its "
        f"*trend* (least-squares slope of lag against commit time over the window's second half) ≤ "
        f"{SUSTAINED_TREND:g} s per s, i.e. delivery kept within ~{SUSTAINED_TREND:.0%} of the commit rate; a rate "
        "is **sustained** when every sink kept up. "
        "*Relay* lag is commit → acknowledged by JetStream and marked in the outbox (`published_at`), from the "
        "outbox itself; the rest of a sink's lag is its consumer, the sink and the poll. The target rates run "
        f"in increasing order after a warm-up ({result.warmup_events:,} events); each step drains before the next.",
        "",
        "| target ev/s | K × stmts/s (conns) | committed ev/s | relay p50 / p99 s | outbox unpublished max/end "
        "| events per JetStream message | sustained |",
        "|---:|---|---:|---|---|---:|---|",
    ]
    for s in result.steps:
        verdict = "**yes**" if s.kept_up else "no"
        if not s.offered:
            verdict += " (load short of target)"
        lines.append(
            f"| {s.target:,} | {s.rows_per_statement} × {s.statements_per_second:.0f} ({s.workers}) | "
            f"{s.commit_rate:,.0f} | {_s(s.relay_p50)} / {_s(s.relay_p99)} | "
            f"{s.outbox_backlog_max:,} / {s.outbox_backlog_end:,} | {s.events_per_message:.1f} | {verdict} |")
    lines += [
        "",
        "Per sink at each rate (*JetStream pending*: messages its consumer had not acknowledged, sampled each "
        "second):",
        "",
        "| target ev/s | sink | delivered ev/s | lag p50 s | p99 s | max s | trend s/s | drain s "
        "| backlog at end (ev) | catch-up ev/s | JetStream pending msgs max/end | kept up |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in result.steps:
        for k in s.sinks.values():
            lines.append(
                f"| {s.target:,} | {sink_name(k.sink)} | {k.delivered_rate:,.0f} | {_s(k.lag_p50)} | "
                f"{_s(k.lag_p99)} | {_s(k.lag_max)} | {k.lag_trend:+.3f} | "
                f"{k.drain_seconds:.1f}{'' if k.drained else ' (not drained)'} | {k.backlog_end:,} | "
                f"{'–' if math.isnan(k.catch_up_rate) else f'{k.catch_up_rate:,.0f}'} | "
                f"{k.jetstream_pending_max:,} / {k.jetstream_pending_end:,} | {'**yes**' if k.kept_up else 'no'} |")
    groups = [("relay", "relay"), *((f"consumer-{k}", f"consumer {sink_name(k)}") for k in result.sinks),
              ("postgres", "PostgreSQL"), ("nats", "NATS"),
              *((server, name) for sink, server, name in (("clickhouse", "clickhouse", "ClickHouse"),
                                                          ("search", "opensearch", "OpenSearch"))
                if sink in result.sinks),
              ("benchmark", "benchmark process")]
    lines += [
        "",
        "Where the CPU went during each load window, in cores (1.00 = one vCPU fully busy; PostgreSQL = this "
        "database's backends, the generator's included, plus the server's background processes; the servers are "
        "found by their listening port); *machine busy* counts every process on the machine, *CPU pressure* is the "
        "share of the window during which some runnable task waited for a vCPU (Linux PSI `some`); and the median "
        "statement time per operation:",
        "",
        "| target ev/s | " + " | ".join(name for _, name in groups) + " | machine busy | CPU pressure "
        "| INSERT / UPDATE / DELETE ms |",
        "|---:|" + "---:|" * len(groups) + "---:|---:|---|",
    ]
    for s in result.steps:
        c = s.cpu_cores
        ms = " / ".join(f"{s.statement_ms[op]:.1f}" if op in s.statement_ms else "–" for op in OPS)
        lines.append(f"| {s.target:,} | " + " | ".join(f"{c.get(key, 0):.2f}" for key, _ in groups)
                     + f" | {s.machine_busy:.0%} | {'–' if s.cpu_pressure is None else f'{s.cpu_pressure:.0%}'} | "
                     f"{ms} |")
    events = result.inserts[0].events if result.inserts else (result.stages[0].events if result.stages else 0)
    described = []
    if "clickhouse" in result.sinks:
        described.append("ClickHouse: the events encoded once with the sink's Native encoder, then only the HTTP "
                         "POSTs timed, into a freshly created table of the sink's DDL each round")
    if "search" in result.sinks:
        described.append(
            f"OpenSearch: the events in consumer-sized batches ({CONSUMER_BATCH // 1000}k), each encoded once into "
            "the exact NDJSON `_bulk` bodies the search sink sends (its own `bulk_bodies`, cut at its "
            "`max_bulk_bytes`), then only the `_bulk` POSTs timed (with the sink's query parameters), into freshly "
            "created indices of the sink's template each round: the server's own rate for the sink's documents, "
            "the sink's limit; then the sink's `write()` itself on the same batches (its encoding and per-item "
            "result checks included), fresh indices again, for the rounds in its note")
    described.append("chDB: the sink's own write (`INSERT ... SELECT * FROM Python(table)`) in a separate process, "
                     "fresh table each round")
    lines += [
        "",
        f"**Each sink's ceiling and each stage alone**, over the newest {events:,} events of the run (median of "
        f"{len(result.inserts[0].seconds) if result.inserts else 0} rounds). " + ". ".join(described) + ". "
        "Stages: single-threaded CPU work the relay and consumers do per event.",
        "",
        "| operation | events | MB | median s | events/s | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for t in [*result.inserts, *result.stages]:
        lines.append(f"| {t.name} | {t.events:,} | {f'{t.megabytes:.1f}' if t.megabytes else '–'} | {t.median:.3f} | "
                     f"{t.events_per_second:,.0f} | {t.note} |")
    behind = next((s for s in result.steps if not s.kept_up), None)
    if behind is not None:
        waits = "; ".join(
            f"about {round(k.jetstream_pending_end * behind.events_per_message):,} "
            f"({k.jetstream_pending_end:,} messages) in JetStream for the {sink_name(k.sink)} consumer, whose median "
            f"lag was {_s(k.lag_p50)} s" + ("" if math.isnan(k.catch_up_rate) else
                                            f" and which caught up at {k.catch_up_rate:,.0f} events/s once the "
                                            "writers stopped")
            for k in behind.sinks.values() if not k.kept_up)
        lines += ["", (
            f"Where events waited: at the end of the {behind.target:,}/s load (the first rate not sustained), "
            f"{behind.outbox_backlog_end:,} events were still unpublished in the outbox (waiting for the relay); "
            f"{waits}. Of that lag, {_s(behind.relay_p50)} s (median) passed before JetStream had acknowledged the "
            "event to the relay.")]
    if result.probe_errors:
        lines += ["", "Measurements that failed: " + "; ".join(result.probe_errors) + "."]
    oracle = result.oracle
    reads = {"clickhouse": "ClickHouse `FINAL`", "search": "OpenSearch `visible_events()` after a refresh"}
    lines += [
        "",
        "**Conservation oracle** (`tests.support.oracle.compare`, the outbox vs each sink's documented read: "
        + ", ".join(reads.get(k, k) for k in oracle.visible) + ", by `seq` range) over "
        f"all {oracle.events:,} events the run produced (visible: "
        + ", ".join(f"{sink_name(k)} {v:,}" for k, v in oracle.visible.items()) + "): "
        + ("**clean** in every sink: none missing, none twice, none altered, every history in `seq` order."
           if oracle.clean else "**FAILED**: " + "; ".join(oracle.problems[:5])),
        "",
    ]
    best = result.sustained
    at_p99 = next((s for s in result.steps if s.target == TARGET_P99_RATE), None)
    verdict_rate = ("not measured" if not result.steps else
                    "met" if best and best.commit_rate >= TARGET_RATE and oracle.clean else "not met")
    lines.append(
        f"Targets: ≥ 10,000 events/s sustained end to end into {names} with zero loss — highest sustained rate "
        "measured: "
        + (f"**{best.commit_rate:,.0f} events/s** (the {best.target:,}/s step)" if best else "**none**")
        + f", loss {'zero' if oracle.clean else 'NOT zero'}: target **{verdict_rate}**. "
        + "p99 commit→visible lag < 2 s at 5,000 events/s in every sink: "
        + ("measured **" + ", ".join(f"{sink_name(k.sink)} {_s(k.lag_p99)} s" for k in at_p99.sinks.values())
           + f"**: target **{'met' if at_p99.worst_p99 < TARGET_P99 else 'not met'}**."
           if at_p99 else "not measured in this run.")
    )
    lines += ["", "One run on shared vCPUs: a window with high CPU pressure is slowed by every process on the machine "
              "(the benchmark's own, other work too), so rerun to see the spread before comparing two runs."]
    if result.profiled:
        lines += ["", "This run had the relay and consumers under cProfile: slower than normal, for finding hot "
                  "spots."]
    lines.append("")
    return "\n".join(lines)


def result_from_json(data: dict[str, Any]) -> BenchResult:
    """A ``BenchResult`` back from ``--json`` output (to render the section again without measuring).

    Output of the ClickHouse-only version (one sink, its fields on the step) reads as a ``clickhouse`` sink.
    """

    def build(cls: Any, values: dict[str, Any]) -> Any:
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    def step(values: dict[str, Any]) -> StepResult:
        built: StepResult = build(StepResult, {k: v for k, v in values.items() if k != "sinks"})
        sinks = values.get("sinks") or {"clickhouse": {**values, "sink": "clickhouse"}}
        built.sinks = {name: build(SinkStep, {**s, "window": values.get("window", 0.0)}) for name, s in sinks.items()}
        return built

    oracle = data["oracle"]
    visible = oracle["visible"] if isinstance(oracle["visible"], dict) else {"clickhouse": oracle["visible"]}
    return BenchResult(
        steps=[step(s) for s in data["steps"]], stages=[build(Throughput, t) for t in data["stages"]],
        inserts=[build(Throughput, t) for t in data["inserts"]],
        oracle=build(OracleResult, {**oracle, "visible": visible}),
        machine=data["machine"], date=data["date"], command=data["command"], duration=data["duration"],
        poll_interval=data["poll_interval"], load_average=tuple(data["load_average"]),
        warmup_events=data.get("warmup_events", 0), profiled=data.get("profiled", False), dedup=data.get("dedup"),
        probe_errors=data.get("probe_errors", []), sinks=tuple(data.get("sinks", ("clickhouse",))),
        dedup_recorded=data.get("dedup_recorded", {}), search_refresh=data.get("search_refresh"))

