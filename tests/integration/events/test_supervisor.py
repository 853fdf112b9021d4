"""``quiver events run`` supervises its stages: a killed stage comes back, a signal stops them all.

The first tests run the real command against the real services: the relay and one consumer per
sink are child processes (found with psutil); each is SIGKILLed mid-stream in turn and must come
back with a new pid while the others keep theirs, and the conservation oracle must hold on every
sink for changes committed before, during and after the kills. SIGTERM to the supervisor stops
every child and exits 0; a SIGKILLed supervisor leaves no child behind. The last tests drive the
``Supervisor`` with stand-in stages: one failing at once is retried on the capped backoff schedule,
never in a busy loop; one ignoring SIGTERM is killed after the stop timeout.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from quiver.events import bus
from quiver.events.supervisor import RestartPolicy, Stage, Supervisor
from tests.conftest import Changes, wait_for
from tests.support.changes import mixed_changes
from tests.support.pipeline import ROOT, Pipeline

SINKS = ("chdb", "clickhouse")
STAGES = {"relay", *(f"consume[{sink}]" for sink in SINKS)}


@pytest.fixture()
def pipeline(scratch_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(scratch_url, tmp_path, f"t{time.monotonic_ns() % 10**12}", SINKS)
    running.cli("install")
    yield running
    running.cleanup()


def start_run(pipeline: Pipeline) -> subprocess.Popen[bytes]:
    """``quiver events run`` (supervising relay and consumers) as ``pipeline.processes["run"]``, logging to run.log."""
    log = open(pipeline.workdir / "run.log", "ab")  # noqa: SIM115 - kept open by the child
    process = subprocess.Popen([sys.executable, "-m", "quiver.cli", "events", "run"], env=pipeline.env(), cwd=ROOT,
                               stdout=log, stderr=log)
    pipeline.processes["run"] = process
    return process


def stages(supervisor_pid: int) -> dict[str, psutil.Process]:
    """The supervisor's live stage processes by stage name (``relay``, ``consume[chdb]``), from their command lines."""
    found = {}
    try:
        children = psutil.Process(supervisor_pid).children()
    except psutil.NoSuchProcess:
        return {}
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped
                continue
            command = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if command[1:4] != ["-m", "quiver.cli", "events"]:  # forked, not yet the stage's command
            continue
        if command[4:] == ["relay"]:
            found["relay"] = child
        elif command[4:6] == ["consume", "--sink"]:
            found[f"consume[{command[6]}]"] = child
    return found


def wait_for_stages(pipeline: Pipeline, supervisor: subprocess.Popen[bytes]) -> dict[str, psutil.Process]:
    def up() -> bool:
        assert supervisor.poll() is None, f"the supervisor exited: {pipeline.log('run')[-3000:]}"
        return set(stages(supervisor.pid)) == STAGES

    wait_for(up, 60, lambda: f"stages running: {sorted(stages(supervisor.pid))}; log: {pipeline.log('run')[-3000:]}")
    return stages(supervisor.pid)


def acked(pipeline: Pipeline, sink: str) -> int:
    """The stream sequence up to which ``sink``'s consumer has acknowledged (-1: no consumer yet)."""

    async def read() -> int:
        nc, js = await bus.connect(pipeline.nats, name="quiver-test")
        try:
            info = await js.consumer_info(bus.Topology(pipeline.namespace).stream, f"quiver-sink-{sink}")
            return info.ack_floor.stream_seq if info.ack_floor is not None else 0
        except Exception:  # noqa: BLE001 - the stream or the consumer is not created yet
            return -1
        finally:
            await nc.close()

    return asyncio.run(read())


def published(pipeline: Pipeline) -> int:
    with psycopg.connect(pipeline.database_url) as conn:
        row = conn.execute("SELECT count(*) FROM quiver.outbox WHERE published_at IS NOT NULL").fetchone()
    return int(row[0]) if row else 0


def progress_of(pipeline: Pipeline, stage: str) -> Callable[[], int]:
    """A measure that grows while ``stage`` works: rows the relay published, or a sink's acknowledged position."""
    if stage == "relay":
        return lambda: published(pipeline)
    sink = stage.removeprefix("consume[").removesuffix("]")
    return lambda: acked(pipeline, sink)


def kill_and_wait_for_restart(pipeline: Pipeline, supervisor: subprocess.Popen[bytes], stage: str) -> psutil.Process:
    """SIGKILL ``stage`` mid-stream; returns its new process once the supervisor restarted it (only it)."""
    measure = progress_of(pipeline, stage)
    start = measure()
    wait_for(lambda: measure() > start, 60, f"{stage} made no progress beyond {start}")  # it is mid-stream
    before = stages(supervisor.pid)
    before[stage].kill()  # SIGKILL

    def restarted() -> bool:
        now = stages(supervisor.pid)
        return stage in now and now[stage].pid != before[stage].pid

    wait_for(restarted, 60, lambda: f"{stage} was not restarted: {stages(supervisor.pid)}; "
                                    f"log: {pipeline.log('run')[-3000:]}")
    now = stages(supervisor.pid)
    assert {s: p.pid for s, p in now.items() if s != stage} == \
        {s: p.pid for s, p in before.items() if s != stage}, "only the killed stage was restarted"
    assert f"stage {stage} exited with signal SIGKILL after" in pipeline.log("run")
    return now[stage]


def test_a_killed_stage_is_restarted_and_events_keep_arriving(pipeline: Pipeline) -> None:
    supervisor = start_run(pipeline)
    first = wait_for_stages(pipeline, supervisor)
    seen = list(first.values())  # every stage process ever seen: all must be gone at the end
    with Changes(pipeline.database_url, seed=41, per_round=200, pace=0.4) as load:
        for stage in ("consume[clickhouse]", "relay", "consume[chdb]"):
            seen.append(kill_and_wait_for_restart(pipeline, supervisor, stage))
        load.stop(at_least=load.rounds + 1)  # changes committed after the last restart too
    pipeline.wait_drained()  # also fails if the supervisor exited
    log = pipeline.log("run")
    assert "restarting in 1.0 s" in log, log[-3000:]  # each stage's first failure waits the initial delay

    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0, pipeline.log("run")[-3000:]
    del pipeline.processes["run"]
    assert not [p.pid for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        "a stage outlived its supervisor"
    assert "every stage stopped" in pipeline.log("run")
    pipeline.check()  # the oracle on both sinks (chDB is free to read now that its consumer is gone)


def test_sigterm_stops_every_stage_and_exits_0(pipeline: Pipeline) -> None:
    supervisor = start_run(pipeline)
    children = list(wait_for_stages(pipeline, supervisor).values())
    # Every stage at work (past its start, where a signal would simply end it): an event went through each.
    mixed_changes(pipeline.database_url, 1, seed=43, per_round=20)
    wait_for(lambda: published(pipeline) > 0 and all(acked(pipeline, sink) > 0 for sink in SINKS), 90,
             lambda: f"not every stage is at work: log {pipeline.log('run')[-3000:]}")
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=60) == 0, pipeline.log("run")[-3000:]
    del pipeline.processes["run"]
    assert not [p.pid for p in children if p.is_running()], "a stage outlived its supervisor"
    log = pipeline.log("run")
    for stage in STAGES:
        assert f"stage {stage} stopped (code 0)" in log, log[-3000:]  # each stopped cleanly, none was killed
    assert "did not stop within" not in log


def test_a_killed_supervisor_leaves_no_stage_behind(pipeline: Pipeline) -> None:
    supervisor = start_run(pipeline)
    children = list(wait_for_stages(pipeline, supervisor).values())
    try:
        supervisor.kill()
        supervisor.wait(timeout=30)
        del pipeline.processes["run"]
        wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children), 60,
                 lambda: f"stages still running without their supervisor: "
                         f"{[p.pid for p in children if p.is_running()]}")
    finally:
        for child in children:
            if child.is_running():
                child.kill()


# -- the supervisor with stand-in stages --------------------------------------------------------------------------

def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def supervise_until(supervisor: Supervisor, condition: Callable[[], bool], timeout: float,
                    signum: int = signal.SIGTERM) -> None:
    """Run ``supervisor`` until ``condition`` holds (or fail after ``timeout`` s), then stop it with ``signum``."""

    async def main() -> None:
        running = asyncio.create_task(supervisor.run())
        deadline = time.monotonic() + timeout
        while not condition():
            assert not running.done(), "the supervisor returned before it was stopped"
            assert time.monotonic() < deadline, f"not reached in {timeout}s: {supervisor.pids}"
            await asyncio.sleep(0.05)
        supervisor.stop(signum)
        await asyncio.wait_for(running, timeout=60)

    asyncio.run(main())


def test_a_stage_failing_at_once_is_retried_on_the_capped_backoff(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "quiver.events.supervisor")
    policy = RestartPolicy(initial=0.1, factor=2.0, maximum=0.8, healthy_after=60.0)
    supervisor = Supervisor([Stage("broken", python("import sys; sys.exit(3)"))], policy, stop_timeout=10)
    supervise_until(supervisor, lambda: len(supervisor.pids["broken"]) >= 7, 120)

    restarts = [r for r in caplog.records if "restarting in" in r.getMessage()]
    assert restarts[0].getMessage().startswith("stage broken exited with code 3 after ")
    delays = [float(r.getMessage().rsplit("restarting in ", 1)[1].removesuffix(" s")) for r in restarts]
    assert delays[:6] == [0.1, 0.2, 0.4, 0.8, 0.8, 0.8]  # doubling, then capped: never a busy loop
    # Every restart waited at least its delay (a lower bound: a slow machine only makes the gaps longer).
    starts = [r.created for r in caplog.records if r.getMessage().startswith("stage broken started")]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert all(gap >= delay - 0.01 for gap, delay in zip(gaps, delays, strict=False)), (gaps, delays)


def test_stop_forwards_the_signal_then_kills_a_stage_that_ignores_it(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "quiver.events.supervisor")
    ready = tmp_path / "stubborn.ready"
    stubborn = python(f"import signal, time, pathlib; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                      f"pathlib.Path({str(ready)!r}).touch(); time.sleep(600)")
    polite = python("import time; time.sleep(600)")  # SIGINT ends it (Python dies by the signal)
    supervisor = Supervisor([Stage("stubborn", stubborn), Stage("polite", polite)], stop_timeout=1.0)
    supervise_until(supervisor, lambda: ready.exists() and len(supervisor.pids["polite"]) == 1, 60,
                    signum=signal.SIGINT)

    assert supervisor.running() == {}
    for name in ("stubborn", "polite"):
        [pid] = supervisor.pids[name]  # started once, never restarted while stopping
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("stage stubborn (pid ") and "did not stop within 1.0 s; killing it" in m
               for m in messages), messages
    assert "stage stubborn stopped (signal SIGKILL)" in " ".join(messages)
    assert "stage polite stopped (signal SIGINT)" in " ".join(messages)  # the signal itself was forwarded
    assert not any("restarting in" in m for m in messages)
