"""Benchmark: events from a PostgreSQL commit to visible in every sink (ClickHouse and OpenSearch), at rising rates.

The real pipeline runs as processes (``quiver events relay`` and one ``quiver events consume --sink NAME``
per sink, ``clickhouse`` and ``search`` by default, started by ``tests.support.pipeline.Pipeline``) over a
fresh database cloned from a demo template, with a private JetStream namespace, ClickHouse database and
OpenSearch index prefix (all removed at the end), and Redis dedup in front of each sink when
``QUIVER_REDIS_URL`` is set. A paced load generator commits small transactions (each one multi-row
INSERT, UPDATE or DELETE of K rows, so events/s = K x statements/s) from several connections for a
fixed time per rate, while every sink is polled every ~150 ms for newly visible events: an event's
commit→visible lag, per sink, is the poll that first saw it minus its ``occurred_at`` (set by the
capture trigger in the committing transaction). OpenSearch is polled with a plain ``_search`` and never
refreshed by the benchmark, so its lag includes the wait for the index's next refresh (the template
sets ``refresh_interval`` to 1 s; the run reports the value in force). The outbox
backlog, each consumer's JetStream pending count and each process's CPU are sampled too. A rate is
sustained when every sink kept up. Then, on the same events, each sink's ceiling: ClickHouse's own
insert rate for one pre-encoded Native request, OpenSearch's own ``_bulk`` rate for the exact NDJSON
bodies the search sink sends (and the sink's ``write()`` itself, its encoding included), chDB's
``INSERT ... SELECT * FROM Python(table)``, and each pipeline stage's single-thread cost. Last, the
conservation oracle of every sink over every event the run produced.

The modules, in the order a run uses them: ``pipeline`` (the processes under test), ``load`` (the offered
load), ``visibility`` (commit→visible lag per sink), ``monitor`` (backlog and CPU samples), ``step`` (one
rate), ``conservation`` (the oracle), ``ceilings`` (each sink's own limit, each stage's cost), ``run`` (the
whole run), ``report`` (the doc section), ``__main__`` (the command line).

Run from the repo root (services up: ``scripts/services start``)::

    eval "$(scripts/services env)" && python -m benchmarks.events [--rates 2000,5000,10000] [--duration 20] \\
        [--sinks clickhouse,search]
"""

from benchmarks.events.ceilings import Throughput
from benchmarks.events.conservation import OracleResult
from benchmarks.events.load import OPS, LoadPlan, plan_load
from benchmarks.events.pipeline import SINK_NAMES, SINKS
from benchmarks.events.report import SECTION_TITLE, describe_machine, render_section, result_from_json
from benchmarks.events.run import BenchResult, run
from benchmarks.events.step import StepResult
from benchmarks.events.visibility import SinkStep

__all__ = [
    "OPS",
    "SECTION_TITLE",
    "SINKS",
    "SINK_NAMES",
    "BenchResult",
    "LoadPlan",
    "OracleResult",
    "SinkStep",
    "StepResult",
    "Throughput",
    "describe_machine",
    "plan_load",
    "render_section",
    "result_from_json",
    "run",
]
