"""The supervisor's pure logic: the restart backoff schedule, exit descriptions, the stages of `events run`."""

from __future__ import annotations

import signal
import sys

import pytest

from quiver.events.supervisor import Backoff, RestartPolicy, describe_exit, pipeline_stages


def test_the_delay_doubles_up_to_the_cap() -> None:
    policy = RestartPolicy(initial=1.0, factor=2.0, maximum=30.0)
    assert [policy.delay(n) for n in range(8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert policy.delay(10_000) == 30.0  # a long crash loop stays at the cap (no overflow)


def test_quick_failures_back_off_and_a_healthy_run_starts_over() -> None:
    backoff = Backoff(RestartPolicy(initial=0.5, factor=3.0, maximum=10.0, healthy_after=60.0))
    assert [backoff.after_exit(0.1) for _ in range(5)] == [0.5, 1.5, 4.5, 10.0, 10.0]
    assert backoff.after_exit(60.0) == 0.5  # ran healthily for a while: back to the first delay
    assert backoff.after_exit(59.9) == 1.5  # then a quick failure counts again
    assert backoff.after_exit(3600.0) == 0.5


def test_a_failing_stage_never_restarts_without_a_delay() -> None:
    policy = RestartPolicy()
    backoff = Backoff(policy)
    delays = [backoff.after_exit(0.0) for _ in range(100)]
    assert min(delays) == policy.initial > 0
    assert max(delays) == policy.maximum


@pytest.mark.parametrize("policy", [
    {"initial": 0.0}, {"factor": 0.5}, {"initial": 5.0, "maximum": 1.0}, {"healthy_after": -1.0},
])
def test_an_invalid_policy_is_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid restart policy"):
        RestartPolicy(**policy)


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(0) == "code 0"
    assert describe_exit(3) == "code 3"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(-signal.SIGTERM) == "signal SIGTERM"


def test_events_run_has_a_relay_and_one_consumer_per_sink() -> None:
    environ = {"QUIVER_SINKS": '["chdb"]', "QUIVER_EVENTS_METRICS_PORT": "9000", "PATH": "/bin"}
    stages = pipeline_stages(["chdb", "clickhouse", "chdb"], database_url="postgresql://x/db", metrics_port=9100,
                             environ=environ)
    assert [s.name for s in stages] == ["relay", "consume[chdb]", "consume[clickhouse]"]
    assert [s.argv for s in stages] == [
        (sys.executable, "-m", "quiver.cli", "events", "relay"),
        (sys.executable, "-m", "quiver.cli", "events", "consume", "--sink", "chdb"),
        (sys.executable, "-m", "quiver.cli", "events", "consume", "--sink", "clickhouse"),
    ]
    for offset, stage in enumerate(stages):
        assert stage.env is not None
        assert stage.env["QUIVER_EVENTS_METRICS_PORT"] == str(9100 + offset)  # one port per process
        assert stage.env["QUIVER_DATABASE_URL"] == "postgresql://x/db"
        assert stage.env["PATH"] == "/bin"


def test_without_a_metrics_port_no_stage_serves_metrics() -> None:
    stages = pipeline_stages(["search"], environ={"QUIVER_EVENTS_METRICS_PORT": "9000"})
    assert all(s.env is not None and "QUIVER_EVENTS_METRICS_PORT" not in s.env for s in stages)
    assert all(s.env is not None and "QUIVER_DATABASE_URL" not in s.env for s in stages)
