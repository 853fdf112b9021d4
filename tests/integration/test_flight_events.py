"""The Flight events ticket: history from JetStream, then a live tail, in the event schema."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import psycopg
import pyarrow.flight as flight

from quiver.arrow.events import EVENT_SCHEMA
from quiver.events import bus
from tests.conftest import start_server, stop_server, wait_for
from tests.support.oracle import source_events
from tests.support.pipeline import Pipeline, nats_url


def ticket(body: dict[str, object]) -> flight.Ticket:
    return flight.Ticket(orjson.dumps(body))


def caught_up_consumers(namespace: str) -> dict[str, bool]:
    """The stream's consumers, each with whether it has delivered everything it matches."""

    async def read() -> dict[str, bool]:
        nc, js = await bus.connect(nats_url(), name="quiver-test")
        try:
            return {c.name: c.num_pending == 0 for c in await js.consumers_info(bus.Topology(namespace).stream)}
        finally:
            await nc.close()

    return asyncio.run(read())


def test_history_then_live_tail(scratch_url: str, tmp_path: Path) -> None:
    namespace = f"t{time.monotonic_ns() % 10**12}"
    pipeline = Pipeline(scratch_url, tmp_path, namespace, sinks=())
    pipeline.cli("install")
    pipeline.start("relay")
    server = start_server(scratch_url, QUIVER_NATS_URL=nats_url(), QUIVER_EVENTS_NAMESPACE=namespace)
    try:
        with psycopg.connect(scratch_url) as conn:
            conn.execute("UPDATE orders SET note = 'history' WHERE id <= 40")
            conn.execute("UPDATE customers SET name = name || '!' WHERE id <= 5")
            conn.commit()
        pipeline.wait_drained()
        source = [e for e in source_events(scratch_url) if e[2] == "orders"]
        client = flight.connect(server.flight_url)

        descriptor = flight.FlightDescriptor.for_command(orjson.dumps({"kind": "events", "entity": "orders"}))
        assert client.get_schema(descriptor).schema == EVENT_SCHEMA
        history = client.do_get(ticket({"kind": "events", "entity": "orders", "from_seq": 0})).read_all()
        assert history.schema == EVENT_SCHEMA
        assert history.column("event_id").to_pylist() == [e[0] for e in source]
        assert set(history.column("entity").to_pylist()) == {"orders"}

        later = client.do_get(ticket({"kind": "events", "entity": "orders", "from_seq": source[20][1]})).read_all()
        assert later.column("seq").to_pylist() == [e[1] for e in source[20:]]

        earlier = set(caught_up_consumers(namespace))  # the history reads' consumers, expiring on their own
        reader = client.do_get(ticket({"kind": "events", "entity": "orders", "from_seq": source[-1][1] + 1,
                                       "follow": True}))
        received: list[str] = []

        def tail() -> None:
            for chunk in reader:
                received.extend(chunk.data.column("data").to_pylist())
                if any("live one" in d for d in received):
                    return

        follower = threading.Thread(target=tail, daemon=True)
        follower.start()
        # The live change must come after the tail has caught up with the history, so that it is
        # carried live: wait for the tail's own (new) consumer to have nothing left to deliver.
        wait_for(lambda: any(done for name, done in caught_up_consumers(namespace).items() if name not in earlier),
                 30, lambda: f"the follow stream's consumer did not catch up: {caught_up_consumers(namespace)}")
        with psycopg.connect(scratch_url) as conn:
            conn.execute("UPDATE orders SET note = 'live one' WHERE id = 7")
            conn.commit()
        follower.join(timeout=30)
        assert not follower.is_alive(), "the live event did not arrive"
        assert len(received) == 1 and "live one" in received[0]
        reader.cancel()
    finally:
        stop_server(server)
        pipeline.cleanup()
