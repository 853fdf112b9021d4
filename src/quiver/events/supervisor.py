"""``quiver events run``: the relay and one consumer per sink, each a child process, restarted when it dies.

Each stage is an existing command (``quiver events relay``, ``quiver events consume --sink NAME``)
in a process of its own, so a crash, an out-of-memory kill or a SIGKILL ends one stage, never the
others. The supervisor restarts a stage that exits for any reason, after a capped exponential
backoff (``RestartPolicy``) that starts over once the stage has run healthily for a while; a stage
that fails at once is therefore retried forever, but never in a busy loop. SIGTERM or SIGINT stops
the supervisor: it forwards the signal to every stage, waits ``stop_timeout`` seconds, kills what is
left and returns (the command exits 0). A second signal kills the stages at once.

The children run in their own process group (a Ctrl-C in a terminal reaches only the supervisor,
which then stops them in order) and stop by themselves if the supervisor disappears
(``QUIVER_SUPERVISOR_PID``, watched by ``watch_supervisor``), so a SIGKILLed supervisor leaves no
stage behind. One clear log line per event, e.g.
``stage consume[clickhouse] exited with signal SIGKILL after 12.3 s; restarting in 1.0 s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

log = logging.getLogger("quiver.events.supervisor")

SUPERVISOR_PID = "QUIVER_SUPERVISOR_PID"  # set in every stage's environment: the pid of its supervisor
STOP_TIMEOUT = 20.0  # seconds a stage gets to stop after the forwarded signal before it is killed
PARENT_POLL = 1.0  # seconds between a stage's checks that its supervisor is still there


@dataclass(frozen=True)
class RestartPolicy:
    """Capped exponential backoff between restarts of one stage.

    The n-th consecutive quick failure (n = 0, 1, ...) waits ``initial * factor**n`` seconds, at most
    ``maximum``. A stage that ran at least ``healthy_after`` seconds before exiting starts over at
    ``initial``: one crash a day always restarts after ``initial``, a crash loop backs off to ``maximum``.
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0
    healthy_after: float = 60.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.factor < 1 or self.maximum < self.initial or self.healthy_after < 0:
            raise ValueError(f"invalid restart policy {self}")

    def delay(self, failures: int) -> float:
        """Seconds to wait before the restart that follows ``failures`` earlier consecutive quick failures."""
        # Computed by steps so a long crash loop never overflows a float.
        delay = self.initial
        for _ in range(failures):
            delay *= self.factor
            if delay >= self.maximum:
                return self.maximum
        return min(delay, self.maximum)


class Backoff:
    """One stage's restart schedule: feed it each exit's uptime, get the delay before the next start."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.failures = 0  # consecutive exits that came sooner than ``policy.healthy_after``

    def after_exit(self, uptime: float) -> float:
        """The delay before restarting a stage that exited after running ``uptime`` seconds."""
        if uptime >= self.policy.healthy_after:
            self.failures = 0
        delay = self.policy.delay(self.failures)
        self.failures += 1
        return delay


def describe_exit(returncode: int) -> str:
    """``code 1`` or ``signal SIGKILL``: how a child ended (a negative return code is a signal)."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


@dataclass(frozen=True)
class Stage:
    """One supervised process: its name in the log (``relay``, ``consume[chdb]``) and its command line."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None  # None: the supervisor's own environment


def cli_argv(*args: str) -> tuple[str, ...]:
    """``python -m quiver.cli events <args>`` with this interpreter."""
    return (sys.executable, "-m", "quiver.cli", "events", *args)


def pipeline_stages(sinks: Iterable[str], *, database_url: str | None = None, metrics_port: int | None = None,
                    environ: Mapping[str, str] | None = None) -> list[Stage]:
    """The relay and one consumer per sink (each name once), as the existing commands.

    ``database_url`` reaches every stage as ``QUIVER_DATABASE_URL``. Each stage serves its own metrics:
    with ``metrics_port`` P the relay gets P and the n-th consumer (n = 1, 2, ...) gets P + n.
    """
    base = dict(os.environ if environ is None else environ)
    if database_url is not None:
        base["QUIVER_DATABASE_URL"] = database_url
    base.pop("QUIVER_EVENTS_METRICS_PORT", None)
    commands: list[tuple[str, tuple[str, ...]]] = [("relay", ("relay",))]
    commands += [(f"consume[{name}]", ("consume", "--sink", name)) for name in dict.fromkeys(sinks)]
    stages = []
    for offset, (name, args) in enumerate(commands):
        env = dict(base)
        if metrics_port is not None:
            env["QUIVER_EVENTS_METRICS_PORT"] = str(metrics_port + offset)
        stages.append(Stage(name, cli_argv(*args), env))
    return stages


@dataclass
class _Running:
    process: asyncio.subprocess.Process
    started: float  # time.monotonic() at start


class Supervisor:
    """Keeps every stage running until ``stop()``; ``run()`` returns once every stage is gone."""

    def __init__(self, stages: Sequence[Stage], policy: RestartPolicy | None = None,
                 stop_timeout: float = STOP_TIMEOUT) -> None:
        names = [stage.name for stage in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique: {names}")
        self.stages = list(stages)
        self.policy = policy or RestartPolicy()
        self.stop_timeout = stop_timeout
        self.pids: dict[str, list[int]] = {name: [] for name in names}  # every pid each stage had, in order
        self._running: dict[str, _Running] = {}
        self._stopping: asyncio.Event | None = None  # made in the event loop (stop() or run(), whichever first)
        self._signal: int = signal.SIGTERM

    @property
    def stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    def running(self) -> dict[str, int]:
        """The pid of each stage that has a process now."""
        return {name: running.process.pid for name, running in self._running.items()}

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop every stage: forward ``signum``; called again while stopping, kill them at once.

        Call it in the supervisor's event loop (a signal handler added with ``loop.add_signal_handler``).
        """
        if self._stopping is None:
            self._stopping = asyncio.Event()
        if self._stopping.is_set():
            log.warning("stop requested again: killing %s", ", ".join(self._running) or "nothing (all stopped)")
            for running in self._running.values():
                _signal(running.process, signal.SIGKILL)
            return
        self._signal = signum
        self._stopping.set()
        log.info("%s: stopping %s", signal.Signals(signum).name, ", ".join(self._running) or "nothing (none running)")
        for running in self._running.values():
            _signal(running.process, signum)

    async def run(self) -> None:
        """Start every stage and keep it running until ``stop()``; then wait for all (killing stragglers)."""
        if self._stopping is None:
            self._stopping = asyncio.Event()
        stopping = self._stopping
        tasks = [asyncio.create_task(self._keep(stage, stopping), name=stage.name) for stage in self.stages]
        stop_wait = asyncio.create_task(stopping.wait())
        try:
            # A task ends before stop() only if supervising its stage failed (a bug): stop all, then raise.
            await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            failed = next((task for task in tasks if task.done()), None)
            if failed is not None and not stopping.is_set():
                log.error("supervising stage %s failed; stopping every stage", failed.get_name())
                self.stop(signal.SIGTERM)
            _, pending = await asyncio.wait(tasks, timeout=self.stop_timeout)
            if pending:
                for name, running in self._running.items():
                    log.warning("stage %s (pid %d) did not stop within %.1f s; killing it", name,
                                running.process.pid, self.stop_timeout)
                    _signal(running.process, signal.SIGKILL)
                await asyncio.wait(pending)
            error = failed.exception() if failed is not None else None
            if error is not None:
                raise error
        finally:
            for running in self._running.values():  # left only when run() itself is cancelled or failed
                _signal(running.process, signal.SIGKILL)
            stop_wait.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(stop_wait, *tasks, return_exceptions=True)
        log.info("every stage stopped")

    async def _keep(self, stage: Stage, stopping: asyncio.Event) -> None:
        """Run ``stage`` again and again until ``stopping`` is set."""
        backoff = Backoff(self.policy)
        env = dict(os.environ if stage.env is None else stage.env)
        env[SUPERVISOR_PID] = str(os.getpid())
        while not stopping.is_set():
            started = time.monotonic()
            try:
                # Its own process group: a terminal's Ctrl-C reaches the supervisor only, which stops the stages.
                process = await asyncio.create_subprocess_exec(*stage.argv, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                               process_group=0)
            except OSError as error:
                outcome = f"could not start ({error})"
            else:
                self._running[stage.name] = _Running(process, started)
                self.pids[stage.name].append(process.pid)
                if stopping.is_set():  # stop() came while the process was being created
                    _signal(process, self._signal)
                else:
                    log.info("stage %s started (pid %d)", stage.name, process.pid)
                try:
                    returncode = await process.wait()
                finally:
                    del self._running[stage.name]
                if stopping.is_set():
                    log.info("stage %s stopped (%s) after %.1f s", stage.name, describe_exit(returncode),
                             time.monotonic() - started)
                    return
                outcome = f"exited with {describe_exit(returncode)} after {time.monotonic() - started:.1f} s"
            delay = backoff.after_exit(time.monotonic() - started)
            log.warning("stage %s %s; restarting in %.1f s", stage.name, outcome, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)


def _signal(process: asyncio.subprocess.Process, signum: int) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):  # it has just exited
            process.send_signal(signum)


def supervise(stages: Sequence[Stage], policy: RestartPolicy | None = None, stop_timeout: float = STOP_TIMEOUT) -> None:
    """Run ``stages`` under a ``Supervisor`` until SIGTERM or SIGINT (the command ``quiver events run``)."""

    async def main() -> None:
        supervisor = Supervisor(stages, policy, stop_timeout)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, supervisor.stop, signum)
        log.info("supervising %s (pid %d)", ", ".join(stage.name for stage in stages), os.getpid())
        await supervisor.run()

    asyncio.run(main())


async def watch_supervisor(stop: asyncio.Event, environ: Mapping[str, str] | None = None,
                           interval: float = PARENT_POLL) -> None:
    """In a stage: set ``stop`` when the supervisor that started it is gone (its parent changed).

    Does nothing in a process that was not started by a supervisor (no ``QUIVER_SUPERVISOR_PID``).
    """
    value = (os.environ if environ is None else environ).get(SUPERVISOR_PID)
    if not value:
        return
    supervisor = int(value)
    while not stop.is_set():
        if os.getppid() != supervisor:
            log.warning("supervisor (pid %d) is gone; stopping", supervisor)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
