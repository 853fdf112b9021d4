"""Real servers on loopback for development and tests: start, stop, status, env.

Each service keeps its data under the git-ignored ``.services/`` folder, listens on
127.0.0.1 on a non-default port, is waited for until ready, and is stopped by pid.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from quiver.embedded.postgres import EmbeddedPostgres  # noqa: E402

STATE = ROOT / ".services"
POSTGRES_PORT = int(os.environ.get("QUIVER_PG_PORT", "15433"))  # override to run two checkouts side by side
TEST_DATABASE = "quiver"


def postgres() -> EmbeddedPostgres:
    return EmbeddedPostgres(STATE / "postgres", POSTGRES_PORT)


def start() -> None:
    pg = postgres()
    began = time.monotonic()
    pg.start()
    deadline = time.monotonic() + 60
    while not pg.ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"postgres did not become ready; see {pg.log_file}")
        time.sleep(0.1)
    pg.create_database(TEST_DATABASE)
    print(f"postgres  ready on 127.0.0.1:{POSTGRES_PORT} (pid {pg.pid()}) in {time.monotonic() - began:.1f}s")


def stop() -> None:
    pg = postgres()
    pid = pg.pid()
    pg.stop()
    print(f"postgres  stopped (was pid {pid})" if pid else "postgres  not running")


def status() -> int:
    pg = postgres()
    pid = pg.pid()
    ready = pid is not None and pg.ready()
    print(f"postgres  {'ready' if ready else 'down'}  127.0.0.1:{POSTGRES_PORT}  pid={pid}  data={pg.data_dir}")
    return 0 if ready else 1


def env() -> None:
    pg = postgres()
    print(f"export QUIVER_DATABASE_URL={pg.url(TEST_DATABASE)}")
    print(f"export QUIVER_TEST_ADMIN_URL={pg.url('postgres')}")
    print(f"export QUIVER_TEST_DATABASE_URL={pg.url('postgres')}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/services", description=__doc__)
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    command = parser.parse_args().command
    if command == "start":
        start()
    elif command == "stop":
        stop()
    elif command == "status":
        return status()
    else:
        env()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
