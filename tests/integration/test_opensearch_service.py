"""The real OpenSearch 2.x from ``scripts/services`` (``QUIVER_OPENSEARCH_URL``).

The shared server is only read. Crash and restart are checked on a private server (same
distribution, its own data in a tmp dir, free ports), never on the shared one.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from quiver.embedded.process import process_alive
from tests.conftest import ROOT, free_port
from tests.support.servers.opensearch import SERVICE_USER, VERSION, EmbeddedOpenSearch


def search_url() -> str:
    url = os.environ.get("QUIVER_OPENSEARCH_URL")
    if not url:
        pytest.fail("QUIVER_OPENSEARCH_URL is not set: run the suite with `make test` (scripts/services env)")
    return url


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive"
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_shared_server_is_opensearch_2_without_security_on_loopback() -> None:
    with httpx.Client(base_url=search_url(), timeout=30) as client:
        info = client.get("/").json()
        assert info["version"]["distribution"] == "opensearch"
        assert info["version"]["number"] == VERSION and VERSION.startswith("2.")
        assert client.get("/_cluster/health").json()["status"] in {"green", "yellow"}
        assert client.get("/_cat/plugins", params={"format": "json"}).json() == []  # no security plugin: plain HTTP
        nodes = client.get("/_nodes/_local/http,settings").json()["nodes"]
        [node] = nodes.values()
        assert node["http"]["bound_address"] == [f"127.0.0.1:{httpx.URL(search_url()).port}"]
        assert node["settings"]["discovery"]["type"] == "single-node"
        assert node["settings"]["path"]["data"] in (str(ROOT / ".services" / "opensearch" / "data"),
                                                    [str(ROOT / ".services" / "opensearch" / "data")])


@pytest.fixture()
def private_server(tmp_path: Path) -> Iterator[EmbeddedOpenSearch]:
    # the distribution that scripts/services installed
    home = EmbeddedOpenSearch(ROOT / ".services" / "opensearch", 0, 0).home
    if not home.exists():
        pytest.fail(f"{home} is missing: run `scripts/services start` (it installs OpenSearch)")
    server = EmbeddedOpenSearch(tmp_path / "opensearch", free_port(), free_port(), home=home, heap=("256m", "512m"),
                                quick_start=True)
    yield server
    server.stop(timeout=10)


def test_sigkill_and_restart_keep_acknowledged_writes(private_server: EmbeddedOpenSearch) -> None:
    server = private_server
    assert server.pid() is None and not server.ready()
    began = time.monotonic()
    server.start()
    started_in = time.monotonic() - began
    pid = server.pid()
    assert pid is not None and server.ready()
    assert os.getsid(pid) == pid, "the server must run in its own session (it outlives scripts/services)"
    if os.geteuid() == 0:  # OpenSearch refuses root: it runs as the service user
        uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
        assert uid != 0 and uid == pwd.getpwnam(SERVICE_USER).pw_uid
    server.start()  # idempotent
    assert server.pid() == pid
    assert server.version() == VERSION

    count = 500
    lines = b"".join(orjson.dumps({"index": {"_index": "crash", "_id": str(i)}}) + b"\n"
                     + orjson.dumps({"n": i, "text": f"dokument {i} ✓"}) + b"\n" for i in range(count))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        created = client.put("/crash", json={"settings": {"number_of_replicas": 0}})
        assert created.status_code == 200, created.text
        answer = client.post("/_bulk", content=lines, headers={"Content-Type": "application/x-ndjson"}).json()
        assert answer["errors"] is False and len(answer["items"]) == count
        # No refresh and no flush: the documents are only in the (fsynced) translog when the server dies.

    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    assert server.pid() is None and not server.ready()
    began = time.monotonic()
    server.start()
    restarted_in = time.monotonic() - began
    restarted = server.pid()
    assert restarted is not None and restarted != pid
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.post("/crash/_refresh").status_code == 200
        assert client.get("/crash/_count").json()["count"] == count
        doc = client.get("/crash/_doc/123").json()
        assert doc["_source"] == {"n": 123, "text": "dokument 123 ✓"}
    rss_mb = int(Path(f"/proc/{restarted}/status").read_text().split("VmRSS:")[1].split()[0]) // 1024
    print(f"opensearch {VERSION}: first start {started_in:.1f}s, restart after SIGKILL {restarted_in:.1f}s,"
          f" RSS {rss_mb} MB")

    server.stop()
    wait_gone(restarted, timeout=0)
    assert server.pid() is None and not server.ready()
    assert not port_open(server.http_port) and not port_open(server.transport_port)
    assert not server.pid_file.exists()
    server.stop()  # idempotent
