"""The command line, ``python -m benchmarks.events`` from the repo root: measure and write the section, or
re-render it from saved ``--json`` output (``--from-json``); ``--chdb-probe`` is the chDB ceiling's child."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import benchmarks.events
from benchmarks.common import DEFAULT_ADMIN_URL, DEFAULT_OUTPUT
from benchmarks.common.report import command_line, publish
from benchmarks.events.ceilings import PROBE_EVENTS, chdb_probe
from benchmarks.events.load import STATEMENTS_PER_SECOND
from benchmarks.events.pipeline import SINKS
from benchmarks.events.report import SECTION_TITLE, describe_machine, render_section, result_from_json
from benchmarks.events.run import run
from benchmarks.events.visibility import POLL_INTERVAL
from tests.support.pipeline import clickhouse_url, opensearch_url

DEFAULT_RATES = (2_000, 5_000, 10_000, 15_000, 20_000, 30_000)


def print_profiles(directory: Path, top: int = 25) -> None:
    """The hottest functions of each profiled process (by own time), to stderr."""
    import pstats

    for profile in sorted(directory.glob("*.prof")):
        print(f"\n=== {profile.name} ===", file=sys.stderr)
        pstats.Stats(str(profile), stream=sys.stderr).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.events",
                                     description=(benchmarks.events.__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("QUIVER_TEST_ADMIN_URL", DEFAULT_ADMIN_URL),
                        help="admin URL of the PostgreSQL server (the benchmark creates and drops its own database)")
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)), help="target events/s, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per rate")
    parser.add_argument("--sinks", default=",".join(SINKS),
                        help=f"sinks to run a consumer for and measure, comma-separated (of {', '.join(SINKS)})")
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL, help="seconds between polls of a sink")
    parser.add_argument("--statements-per-second", type=float, default=STATEMENTS_PER_SECOND,
                        help="statements per second over all connections (K = rate / this)")
    parser.add_argument("--workers", type=int, default=None, help="load connections (default: 1 per 2k events/s, 2-12)")
    parser.add_argument("--probe-events", type=int, default=PROBE_EVENTS, help="events for the insert ceilings")
    parser.add_argument("--no-chdb", action="store_true", help="skip the chDB insert measurement")
    parser.add_argument("--no-redis-dedup", action="store_true",
                        help="run the consumers without Redis dedup even if QUIVER_REDIS_URL is set")
    parser.add_argument("--profile", default="", help="run relay and consumers under cProfile, .prof files here")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="markdown file whose section is rewritten; ''")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--machine-note", default="", help="free text added to the detected machine description")
    parser.add_argument("--from-json", default="", help="render the section from a saved --json output, no run")
    parser.add_argument("--chdb-probe", default="", help=argparse.SUPPRESS)
    parser.add_argument("--chdb-path", default="", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the insert ceilings and stage timings")
    args = parser.parse_args(argv)
    if args.chdb_probe:
        chdb_probe(Path(args.chdb_probe), Path(args.chdb_path), args.rounds)
        return
    if args.from_json:
        publish(render_section(result_from_json(json.loads(Path(args.from_json).read_text()))), SECTION_TITLE,
                args.output)
        return
    rates = [int(r.replace("_", "")) for r in args.rates.split(",") if r.strip()]
    if not rates or any(r <= 0 for r in rates) or args.duration <= 0:
        parser.error("--rates must be positive numbers and --duration > 0")
    sinks = tuple(dict.fromkeys(name.strip() for name in args.sinks.split(",") if name.strip()))
    if not sinks or set(sinks) - set(SINKS):
        parser.error(f"--sinks must be some of {', '.join(SINKS)}")
    profile_dir = Path(args.profile).resolve() if args.profile else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    command = command_line("benchmarks.events", argv)
    machine = describe_machine(args.database_url, os.environ.get("QUIVER_NATS_MONITOR_URL"),
                               clickhouse_url() if "clickhouse" in sinks else None,
                               opensearch_url() if "search" in sinks else None, args.machine_note)
    result = run(args.database_url, rates, args.duration, machine=machine, command=command, sinks=sinks,
                 poll_interval=args.poll_interval, statements_per_second=args.statements_per_second,
                 workers=args.workers, probe_events=args.probe_events, probe_rounds=args.rounds,
                 chdb=not args.no_chdb, profile_dir=profile_dir, redis_dedup=not args.no_redis_dedup, progress=True)
    if profile_dir:
        print_profiles(profile_dir)
    publish(render_section(result), SECTION_TITLE, args.output, result.as_json() if args.json else None)


if __name__ == "__main__":
    main()
