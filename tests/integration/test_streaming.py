"""The JSON plane streams: a 1M-row result never materialises in the server."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest

from tests.conftest import BIG_ORDERS, start_server, stop_server

QUERY = "{ orders { id uuid customerId status total isPaid placedAt meta } }"


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.mark.slow
def test_million_rows_stream_with_flat_server_memory(big_url: str) -> None:
    server = start_server(big_url)
    try:
        with server.client() as client:
            # Warm up: imports, pools, schema and one small streamed query.
            assert client.post("/graphql", json={"query": "{ orders(limit: 1000) { id } }"}).status_code == 200
            idle_kb = _status_kb(server.pid, "VmRSS")
            samples: list[int] = []
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.005):
                    samples.append(_status_kb(server.pid, "VmRSS"))

            sampler = threading.Thread(target=sample)
            sampler.start()
            chunks: list[bytes] = []
            try:
                with client.stream("POST", "/graphql", json={"query": QUERY}) as response:
                    assert response.status_code == 200
                    chunks.extend(response.iter_bytes())
            finally:
                done.set()
                sampler.join()
            peak_kb = max([*samples, _status_kb(server.pid, "VmHWM")])
    finally:
        stop_server(server)

    body = b"".join(chunks)
    orders = orjson.loads(body)["data"]["orders"]
    assert len(orders) == BIG_ORDERS
    assert len({o["id"] for o in orders}) == BIG_ORDERS
    assert list(orders[0]) == ["id", "uuid", "customerId", "status", "total", "isPaid", "placedAt", "meta"]
    growth_mb = (peak_kb - idle_kb) / 1024
    print(f"\nbody {len(body) / 1e6:.0f} MB, server idle RSS {idle_kb / 1024:.0f} MB, peak {peak_kb / 1024:.0f} MB "
          f"(+{growth_mb:.1f} MB), {len(samples)} samples")
    assert len(body) > 100_000_000  # the result really was large
    assert growth_mb < 100, f"server memory grew by {growth_mb:.0f} MB while streaming"
