"""Helpers of the sink tests: the servers' URLs, valid events and what a sink's documented read returns."""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

import pytest

from quiver.events.sinks.base import VisibleEvent, by_seq


def server_url(variable: str) -> str:
    url = os.environ.get(variable)
    if not url:
        pytest.fail(f"{variable} is not set: run the suite with `make test` (scripts/services env)")
    return url


def event(i: int, **changes: Any) -> dict[str, Any]:
    """A valid event ``i`` (seq i, May 2024), as a decoded JetStream message carries it."""
    return {
        "event_id": str(uuid.UUID(int=random.Random(i).getrandbits(128), version=4)), "seq": i, "entity": "orders",
        "entity_id": str(i), "op": "insert", "occurred_at": 1_714_557_600_000_000 + i, "data": f'{{"id": {i}}}',
        "changed": None, "actor": None, "tenant_id": None, **changes,
    }


def expected(events: list[dict[str, Any]]) -> list[VisibleEvent]:
    """What a sink's documented read returns for ``events``: by seq, ``changed`` [] where there is none."""
    return by_seq((e["event_id"], e["seq"], e["entity"], e["entity_id"], e["op"], e["occurred_at"], e["data"],
                   e["changed"] or [], e["actor"], e["tenant_id"]) for e in events)
