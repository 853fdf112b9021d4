"""The run registry: cancel before, during and after a run; its memory stays bounded."""

from __future__ import annotations

import pytest

from quiver.flight.sql.runs import CANCELLED, NOT_CANCELLABLE, Cancelled, Runs


def test_a_cancel_during_a_run_calls_its_cancel_function() -> None:
    runs, calls = Runs(), []
    runs.start("a", lambda: calls.append("a"))
    assert runs.cancel("a") == CANCELLED
    assert calls == ["a"] and runs.cancelled("a")
    runs.finish("a")
    assert runs.cancel("a") == CANCELLED  # cancelled stays cancelled; the function is not called again
    assert calls == ["a"]


def test_a_cancel_before_the_run_refuses_its_start() -> None:
    runs = Runs()
    assert runs.cancel("b") == CANCELLED
    with pytest.raises(Cancelled, match="before it started"):
        runs.start("b", lambda: None)


def test_a_finished_run_is_not_cancellable() -> None:
    runs = Runs()
    runs.start("c", lambda: None)
    runs.finish("c")
    assert runs.cancel("c") == NOT_CANCELLABLE
    assert not runs.cancelled("c")


def test_history_is_bounded() -> None:
    runs = Runs(remembered=3)
    for n in range(10):
        runs.cancel(f"x{n}")
        runs.start(f"y{n}", lambda: None)
        runs.finish(f"y{n}")
    assert [runs.cancelled(f"x{n}") for n in range(10)] == [False] * 7 + [True] * 3
    assert runs.cancel("y0") == CANCELLED  # forgotten: treated as not yet started
    assert runs.cancel("y9") == NOT_CANCELLABLE
