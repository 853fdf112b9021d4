"""The Flight events ticket: history from JetStream, then a live tail, in the event schema."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
import psycopg
import pyarrow.flight as flight
import pytest

from quiver.arrow.events import EVENT_SCHEMA
from quiver.events import bus
from tests.conftest import free_port, start_server, stop_server, wait_for
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


# -- bounded connects, start sequences, malformed messages (synthetic streams, no pipeline) ----------
PER_MESSAGE = 4


def event(seq: int) -> dict[str, object]:
    return {"seq": seq, "event_id": f"e{seq}", "entity": "orders", "op": "update", "data": f'{{"n": {seq}}}'}


def publish(namespace: str, bodies: list[bytes]) -> list[int]:
    """Publish raw message bodies on the orders subject of a fresh stream; their stream sequences."""

    async def run() -> list[int]:
        nc, js = await bus.connect(nats_url(), name="quiver-test")
        try:
            topology = bus.Topology(namespace)
            await bus.ensure_streams(js, topology)
            return [(await js.publish(topology.subject("orders"), body)).seq for body in bodies]
        finally:
            await nc.close()

    return asyncio.run(run())


def drop_streams(namespace: str) -> None:
    async def run() -> None:
        nc, js = await bus.connect(nats_url(), name="quiver-test")
        try:
            topology = bus.Topology(namespace)
            for name in (topology.stream, topology.dlq_stream):
                await js.delete_stream(name)
        finally:
            await nc.close()

    asyncio.run(run())


def start_sequences(namespace: str) -> list[int]:
    """opt_start_seq of every consumer on the stream that starts at a sequence."""

    async def read() -> list[int]:
        nc, js = await bus.connect(nats_url(), name="quiver-test")
        try:
            infos = await js.consumers_info(bus.Topology(namespace).stream)
            return [c.config.opt_start_seq for c in infos if c.config.opt_start_seq]
        finally:
            await nc.close()

    return asyncio.run(read())


def test_from_seq_starts_the_consumer_at_the_message_that_holds_it(demo_url: str) -> None:
    namespace = f"s{time.monotonic_ns() % 10**12}"
    messages = 50
    stream_seqs = publish(namespace, [orjson.dumps([event(m * PER_MESSAGE + i + 1) for i in range(PER_MESSAGE)])
                                      for m in range(messages)])
    server = start_server(demo_url, QUIVER_NATS_URL=nats_url(), QUIVER_EVENTS_NAMESPACE=namespace)
    try:
        client = flight.connect(server.flight_url)
        everything = client.do_get(ticket({"kind": "events", "entity": "orders"})).read_all()
        assert everything.column("seq").to_pylist() == list(range(1, messages * PER_MESSAGE + 1))
        assert start_sequences(namespace) == []  # from_seq 0: from the beginning
        middle = 102  # the second event of message 26 (events 101..104)
        got = client.do_get(ticket({"kind": "events", "entity": "orders", "from_seq": middle})).read_all()
        assert got.column("seq").to_pylist() == list(range(middle, messages * PER_MESSAGE + 1))
        assert start_sequences(namespace) == [stream_seqs[25]]
        past = client.do_get(ticket({"kind": "events", "from_seq": 10**9})).read_all()
        assert past.num_rows == 0
    finally:
        stop_server(server)
        drop_streams(namespace)


def test_malformed_messages_are_skipped(demo_url: str) -> None:
    namespace = f"m{time.monotonic_ns() % 10**12}"
    bodies = [orjson.dumps([event(1), event(2)]), b"not json", orjson.dumps({"seq": 3}), orjson.dumps([1, 2]),
              orjson.dumps([event(3)]), b"", orjson.dumps([event(4), event(5)])]
    publish(namespace, bodies)
    server = start_server(demo_url, QUIVER_NATS_URL=nats_url(), QUIVER_EVENTS_NAMESPACE=namespace)
    try:
        client = flight.connect(server.flight_url)
        for from_seq in (0, 3, 4):
            got = client.do_get(ticket({"kind": "events", "entity": "orders", "from_seq": from_seq})).read_all()
            assert got.column("seq").to_pylist() == [s for s in range(1, 6) if s >= from_seq]
    finally:
        stop_server(server)
        drop_streams(namespace)


def test_unreachable_nats_is_unavailable_and_the_server_still_stops(demo_url: str) -> None:
    server = start_server(demo_url, QUIVER_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    try:
        client = flight.connect(server.flight_url)
        options = flight.FlightCallOptions(timeout=30)  # a generous bound: the answer must come at all
        for follow in (False, True):
            with pytest.raises(flight.FlightUnavailableError) as caught:
                client.do_get(ticket({"kind": "events", "follow": follow}), options).read_all()
            assert "cannot reach NATS" in str(caught.value)
            assert "Traceback" not in str(caught.value)
        health = client.do_action(flight.Action("health", b""), options)
        assert list(health)
    finally:
        server.process.terminate()
        assert server.process.wait(timeout=30) is not None
        assert server.process.stderr is not None
        log = server.process.stderr.read().decode()
    assert "Traceback" not in log, log



def test_a_live_tail_does_not_hold_up_shutdown(demo_url: str) -> None:
    namespace = f"t{time.monotonic_ns() % 10**12}"
    publish(namespace, [orjson.dumps([event(1), event(2)])])
    server = start_server(demo_url, QUIVER_NATS_URL=nats_url(), QUIVER_EVENTS_NAMESPACE=namespace)
    try:
        client = flight.connect(server.flight_url)
        reader = client.do_get(ticket({"kind": "events", "entity": "orders", "follow": True}))
        first = reader.read_chunk()
        assert first.data.column("seq").to_pylist() == [1, 2]  # the tail is open, waiting for more
        server.process.terminate()
        assert server.process.wait(timeout=30) is not None, "SIGTERM did not stop a server with a live tail"
    finally:
        if server.process.poll() is None:
            server.process.kill()
        drop_streams(namespace)
