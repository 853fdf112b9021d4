"""Which embedded columnar engine should hold a live dataset: DuckDB, polars or plain pyarrow?

A live dataset is an in-memory copy of a PostgreSQL table, kept fresh by applying folded change events
("delete these keys, then insert these rows" plus a watermark) and served as Arrow. Data is random,
generated in-process (no PostgreSQL), shaped like ``orders``. Engines run round by round, interleaved;
memory is measured per engine in a fresh subprocess. Every number printed is measured in the run.

    python -m benchmarks.live_engines [--sizes 100000,1000000] [--rounds 5,3]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

STATUSES = np.array(["pending", "paid", "shipped", "cancelled", "refunded"])
CHANNELS = np.array(["web", "mobile", "store", "phone"])
BATCH_UPDATES, BATCH_INSERTS, BATCH_DELETES, APPLIES = 600, 200, 200, 20
DEC = pa.decimal128(12, 2)
Batch = tuple[pa.Array, pa.Table]  # (keys to delete, rows to insert)
TOP_SQL = "SELECT * FROM orders WHERE status = 'paid' AND total > 100 ORDER BY placed_at DESC, id LIMIT 1000"
COUNT_SQL = "SELECT count(*) FROM orders WHERE status = 'paid' AND total > 100"
DDL = ("CREATE TABLE orders (id BIGINT{pk}, uuid VARCHAR, customer_id BIGINT, status VARCHAR, "
       "total DECIMAL(12,2), is_paid BOOLEAN, placed_at TIMESTAMPTZ, meta VARCHAR)")


def make_rows(rng: np.random.Generator, ids: np.ndarray) -> pa.Table:
    """Random orders rows for ``ids``: uuid-shaped hex text, decimal cents, UTC timestamps, ~60-char JSON."""
    n = len(ids)
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    lut = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    hexed = np.stack([lut[raw >> 4], lut[raw & 15]], axis=2).reshape(n, 32)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dst, src, width in ((0, 0, 8), (9, 8, 4), (14, 12, 4), (19, 16, 4), (24, 20, 12)):  # 8-4-4-4-12
        text[:, dst:dst + width] = hexed[:, src:src + width]
    uuid = pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(0, 36 * n + 1, 36, dtype=np.int32)),
                                       pa.py_buffer(text.tobytes()))
    cents = np.zeros((n, 2), dtype=np.int64)  # decimal128 = 16-byte little-endian; high word 0 for positives
    cents[:, 0] = rng.integers(100, 50_000, n)  # 1.00 to 499.99
    total = pa.Array.from_buffers(DEC, n, [None, pa.py_buffer(cents)])
    now_us = 1_767_225_600_000_000  # 2026-01-01 UTC; placed_at is spread over the two years before
    placed = pa.array(now_us - rng.integers(0, 2 * 365 * 86_400_000_000, n), pa.timestamp("us", tz="UTC"))
    meta = pc.binary_join_element_wise(
        '{"channel":"', pa.array(CHANNELS[rng.integers(0, 4, n)]), '","items":',
        pc.cast(pa.array(rng.integers(1, 40, n)), pa.string()), ',"coupon":"', pc.utf8_slice_codeunits(uuid, 0, 8),
        '","score":', pc.cast(pa.array(rng.integers(0, 1000, n)), pa.string()), "}", "")
    return pa.table({"id": pa.array(ids, pa.int64()), "uuid": uuid,
                     "customer_id": pa.array(rng.integers(1, 200_000, n), pa.int64()),
                     "status": pa.array(STATUSES[rng.integers(0, 5, n)]), "total": total,
                     "is_paid": pa.array(rng.random(n) < 0.7), "placed_at": placed, "meta": meta})


def make_batches(rng: np.random.Generator, n: int, count: int) -> list[Batch]:
    """``count`` consecutive valid change batches: (keys to delete, rows to insert) per batch."""
    live, next_id, out = np.arange(1, n + 1, dtype=np.int64), n + 1, []
    for _ in range(count):
        picked = live[rng.choice(len(live), BATCH_UPDATES + BATCH_DELETES, replace=False)]
        updated, deleted = picked[:BATCH_UPDATES], picked[BATCH_UPDATES:]
        inserted = np.arange(next_id, next_id + BATCH_INSERTS, dtype=np.int64)
        next_id += BATCH_INSERTS
        keys = pa.array(np.concatenate([updated, inserted, deleted]), pa.int64())
        out.append((keys, make_rows(rng, np.concatenate([updated, inserted]))))
        live = np.concatenate([np.setdiff1d(live, deleted, assume_unique=True), inserted])
    return out


class DuckEngine:
    """In-memory DuckDB; apply = one transaction (DELETE ... IN, INSERT, watermark UPDATE)."""

    def __init__(self, pk: bool) -> None:
        self.pk = pk

    def load(self, table: pa.Table) -> None:
        if not hasattr(self, "con"):
            self.con = duckdb.connect(":memory:")
            self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("DROP TABLE IF EXISTS orders; DROP TABLE IF EXISTS watermark")
        self.con.execute(DDL.format(pk=" PRIMARY KEY" if self.pk else ""))
        self.con.execute("CREATE TABLE watermark (lsn BIGINT); INSERT INTO watermark VALUES (0)")
        self.con.register("src", table).execute("INSERT INTO orders SELECT * FROM src").unregister("src")

    def apply(self, keys: pa.Array, rows: pa.Table, lsn: int) -> None:
        c = self.con
        c.register("k", pa.table({"id": keys})).register("r", rows).execute("BEGIN")
        c.execute("DELETE FROM orders WHERE id IN (SELECT id FROM k)").execute("INSERT INTO orders SELECT * FROM r")
        c.execute("UPDATE watermark SET lsn = ?", [lsn]).execute("COMMIT").unregister("k").unregister("r")

    def read_all(self) -> pa.Table:
        return self.con.sql("SELECT * FROM orders").to_arrow_table()

    def read_top(self) -> pa.Table:
        return self.con.sql(TOP_SQL).to_arrow_table()

    def reader(self) -> Callable[[], pa.Table]:  # a cursor per reader thread: its own snapshot
        cur = self.con.cursor()
        return lambda: cur.sql(TOP_SQL).to_arrow_table()

    def count(self) -> int:
        return int(self.con.sql(COUNT_SQL).fetchall()[0][0])

    def accounting(self) -> int:
        return int(self.con.sql("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchall()[0][0])


class Swapped:
    """An immutable table and its watermark, swapped together under a lock; readers take a reference and go."""

    def __init__(self) -> None:
        self.lock, self.lsn = threading.Lock(), 0

    def load(self, table: pa.Table) -> None:
        self.data: Any = self.convert(table)

    def apply(self, keys: pa.Array, rows: pa.Table, lsn: int) -> None:
        new = self.fold(self.data, keys, self.convert(rows))  # built outside the lock; readers keep going
        with self.lock:
            self.data, self.lsn = new, lsn

    def reader(self) -> Callable[[], pa.Table]:
        return self.read_top

    def read_top(self) -> pa.Table:
        raise NotImplementedError

    def convert(self, table: pa.Table) -> Any:
        return table

    def fold(self, data: Any, keys: pa.Array, rows: Any) -> Any:
        raise NotImplementedError


class PolarsEngine(Swapped):
    """polars DataFrame; apply = filter(~is_in(keys)) + concat (no rechunk)."""

    def convert(self, table: pa.Table) -> pl.DataFrame:
        return pl.from_arrow(table)  # type: ignore[return-value]

    def fold(self, data: pl.DataFrame, keys: pa.Array, rows: pl.DataFrame) -> pl.DataFrame:
        kept = data.filter(~pl.col("id").is_in(pl.from_arrow(keys).implode()))  # type: ignore[union-attr]
        return pl.concat([kept, rows], how="vertical", rechunk=False)

    def _pred(self) -> pl.LazyFrame:
        df: pl.DataFrame = self.data
        return df.lazy().filter((pl.col("status") == "paid") & (pl.col("total") > 100))

    def read_all(self) -> pa.Table:
        return self.data.to_arrow()

    def read_top(self) -> pa.Table:
        return self._pred().sort(["placed_at", "id"], descending=[True, False]).head(1000).collect().to_arrow()

    def count(self) -> int:
        return int(self._pred().select(pl.len()).collect().item())

    def accounting(self) -> int:
        return int(self.data.estimated_size())


class ArrowEngine(Swapped):
    """pyarrow Table; apply = filter(~is_in(keys)) + concat_tables."""

    def fold(self, data: pa.Table, keys: pa.Array, rows: pa.Table) -> pa.Table:
        return pa.concat_tables([data.filter(pc.invert(pc.is_in(data["id"], value_set=keys))), rows])

    def _mask(self, t: pa.Table) -> pa.ChunkedArray:
        return pc.and_(pc.equal(t["status"], "paid"), pc.greater(t["total"], pa.scalar(Decimal(100), DEC)))

    def read_all(self) -> pa.Table:
        return self.data  # already Arrow: serving it is zero-copy

    def read_top(self) -> pa.Table:
        hits = (t := self.data).filter(self._mask(t))
        idx = pc.select_k_unstable(hits, k=1000, sort_keys=[("placed_at", "descending"), ("id", "ascending")])
        return hits.take(idx)

    def count(self) -> int:
        return int(pc.sum(self._mask(self.data).cast(pa.int64())).as_py() or 0)

    def accounting(self) -> int:
        return int(self.data.nbytes)


ENGINES: dict[str, Callable[[], Any]] = {"duckdb": lambda: DuckEngine(pk=False),
                                         "duckdb+pk": lambda: DuckEngine(pk=True), "polars": PolarsEngine,
                                         "pyarrow": ArrowEngine}
ACCOUNTING = {"duckdb": "duckdb_memory()", "duckdb+pk": "duckdb_memory()", "polars": "estimated_size()",
              "pyarrow": "Table.nbytes"}


def rss(field: str = "VmRSS") -> int:
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def release() -> None:
    gc.collect()
    pa.default_memory_pool().release_unused()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def memory_only(name: str, n: int) -> None:
    """In a fresh process: resident growth after load (source dropped) and after 20 applies."""
    batches = make_batches(np.random.default_rng(7), n, APPLIES)
    eng = ENGINES[name]()
    eng.load(make_rows(np.random.default_rng(1), np.arange(1, 2, dtype=np.int64)))  # fixed costs before the base
    release()
    base = rss()
    table = make_rows(np.random.default_rng(42), np.arange(1, n + 1, dtype=np.int64))
    release()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := RSS now (source table built, temporaries freed)
    eng.load(table)
    del table
    release()
    out = {"loaded": rss() - base, "acct_loaded": eng.accounting()}
    for i, (keys, rows) in enumerate(batches, 1):
        eng.apply(keys, rows, i)
    release()
    out |= {"applied": rss() - base, "acct_applied": eng.accounting(), "peak": rss("VmHWM") - base}
    time.sleep(5)  # allocators return freed pages lazily (jemalloc decay)
    release()
    out["idle"] = rss() - base
    print(json.dumps(out))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t0) * 1000, result


def one_round(name: str, table: pa.Table, batches: list[Batch]) -> tuple[dict[str, float], tuple[Any, ...]]:
    """Load, read fresh, apply 20 batches one after another, read again; ms per op and a result check."""
    eng, ms = ENGINES[name](), dict[str, float]()
    ms["load"] = timed(lambda: eng.load(table))[0]
    for tag in ("fresh", "after 20 applies"):
        ms[f"full read ({tag})"], full = timed(eng.read_all)
        ms[f"filtered sorted top-1000 ({tag})"], top = timed(eng.read_top)
        ms[f"count with filter ({tag})"], cnt = timed(eng.count)
        if tag == "fresh":
            applies = [timed(partial(eng.apply, k, r, i))[0] for i, (k, r) in enumerate(batches, 1)]
            ms |= {"apply batch 1 (fresh table)": applies[0], "apply batch 20": applies[-1],
                   "apply, median of batches 1-20": statistics.median(applies), "apply x20, total": sum(applies)}
    read, done, lat = eng.reader(), threading.Event(), list[float]()

    def write() -> None:  # re-applying the same 20 batches in order is idempotent: the final state is unchanged
        t0 = time.perf_counter()
        for i, (k, r) in enumerate(batches, 1):
            eng.apply(k, r, i)
        ms["apply x20, total, with a concurrent reader"] = (time.perf_counter() - t0) * 1000
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not lat or not done.is_set():
        lat.append(timed(read)[0])
    writer.join()
    if eng.count() != cnt:
        raise SystemExit(f"{name}: re-applying the batches changed the result")
    ms["top-1000 read, median while a writer thread applies x20"] = statistics.median(lat)
    check = (full.num_rows, pc.sum(full["id"]).as_py(), cnt, top["id"].to_pylist(),
             {f.name: str(f.type) for f in full.schema})
    return ms, check


def cell(values: list[float]) -> str:
    spec = ".3g" if max(values) < 100 else ".0f"
    return f"{statistics.median(values):{spec}} ({min(values):{spec}}–{max(values):{spec}})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--sizes", "100000,1000000"), ("--rounds", "5,3"), ("--engines", ",".join(ENGINES))):
        ap.add_argument(flag, default=default)
    ap.add_argument("--engine", help="with --rows and --memory-only: the per-engine memory subprocess")
    ap.add_argument("--rows", type=int)
    ap.add_argument("--memory-only", action="store_true")
    args = ap.parse_args()
    if args.memory_only:
        return memory_only(args.engine, args.rows)
    sizes, names = [int(s) for s in args.sizes.split(",")], args.engines.split(",")
    rounds = [int(r) for r in args.rounds.split(",")]
    rounds += [rounds[-1]] * (len(sizes) - len(rounds))
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    cmd = " ".join(["python -m benchmarks.live_engines", *sys.argv[1:]])
    print(f"# Live dataset engines\n\nCommand: `{cmd}`  \n"
          f"Machine: {os.cpu_count()} CPUs (nproc), {cpu} — 2 vCPUs, shared, noisy  \n"
          f"Versions: Python {platform.python_version()}, duckdb {duckdb.__version__}, polars {pl.__version__}, "
          f"pyarrow {pa.__version__}, numpy {np.__version__}  \n"
          f"Batch: {BATCH_UPDATES} updates + {BATCH_INSERTS} inserts + {BATCH_DELETES} deletes, applied as delete "
          f"{BATCH_UPDATES + BATCH_INSERTS + BATCH_DELETES} keys then insert {BATCH_UPDATES + BATCH_INSERTS} rows "
          "(+ watermark). Times in ms: median (min–max) over rounds; engines interleaved within each round.\n")
    warm_t = make_rows(np.random.default_rng(1), np.arange(1, 10_001, dtype=np.int64))
    warm_b = make_batches(np.random.default_rng(2), 10_000, 2)
    for name in names:  # untimed warm-up: imports, thread pools, first query plans
        one_round(name, warm_t, warm_b)
    for n, nrounds in zip(sizes, rounds, strict=True):
        t0 = time.perf_counter()
        table = make_rows(np.random.default_rng(42), np.arange(1, n + 1, dtype=np.int64))
        batches = make_batches(np.random.default_rng(7), n, APPLIES)
        gen_s = time.perf_counter() - t0
        samples: dict[str, dict[str, list[float]]] = {e: {} for e in names}
        checks: dict[str, tuple[Any, ...]] = {}
        for _ in range(nrounds):
            for name in names:
                ms, check = one_round(name, table, batches)
                for op, v in ms.items():
                    samples[name].setdefault(op, []).append(v)
                checks.setdefault(name, check)
                if checks[name][:4] != check[:4]:
                    raise SystemExit(f"{name}: results differ between rounds")
                gc.collect()
        ref = checks[names[0]]
        agree = all(c[:4] == ref[:4] for c in checks.values())
        meta_len = pc.mean(pc.utf8_length(table["meta"])).as_py()
        print(f"## {n:,} rows, {nrounds} rounds (input {table.nbytes / 2**20:.0f} MiB as Arrow, meta "
              f"{meta_len:.0f} chars on average, generated in {gen_s:.1f}s)\n\n"
              f"Results identical across engines (rows, sum(id), count, top-1000 ids after 20 "
              f"applies): {'yes' if agree else 'NO'} — {ref[0]:,} rows, count {ref[2]:,}.\n")
        print("| operation | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
        for op in samples[names[0]]:
            print(f"| {op} | " + " | ".join(cell(samples[e][op]) for e in names) + " |")
        mem: dict[str, dict[str, int]] = {}
        for name in names:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.live_engines", "--engine", name, "--rows",
                                   str(n), "--memory-only"], capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[1], check=True)
            mem[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print("\nMemory, one fresh subprocess per engine (MiB; RSS growth over the process before the data was "
              "built, source table dropped after load; per 1M rows in brackets):\n")
        print("| engine | RSS after load | RSS after 20 applies | same, 5 s later | peak RSS (VmHWM) | engine's own "
              "accounting, after load / after applies |\n|---|---|---|---|---|---|")
        for name, m in mem.items():
            mib = {k: v / 2**20 for k, v in m.items()}
            rss_cells = [f"{mib[k]:.0f} ({mib[k] * 1e6 / n:.0f})" for k in ("loaded", "applied", "idle")]
            print(f"| {name} | {' | '.join(rss_cells)} | {mib['peak']:.0f} | {ACCOUNTING[name]}: "
                  f"{mib['acct_loaded']:.0f} / {mib['acct_applied']:.0f} |")
        types = {e: {k: v for k, v in c[4].items() if v != str(table.schema.field(k).type)} for e, c in checks.items()}
        print("\nFull-read column types that differ from the input schema: "
              + ("; ".join(f"{e}: {d}" for e, d in types.items() if d) or "none") + "\n")


if __name__ == "__main__":
    main()
