"""Redis store: throughput through the Processor vs a bare pipelined write, and memory/customer.

    python -m bench.bench_redis_store [--url redis://127.0.0.1:16379/0] [--customers 600]

Needs a running Redis (`scripts/services start redis`). Keys go under a private prefix
(`vmbench-<pid>-…:`) and are deleted afterwards; nothing else in the DB is touched.
Writes the table to bench/results/redis_store.md.

Measures, for each batch size, medians of `--runs` interleaved runs over the same events:
* Processor + MemoryStore (the engine alone, no server): the ceiling;
* Processor + RedisStore: the real path, plus the time spent inside store calls;
* bare pipeline: per event one SET (a state-sized value), one ZADD and one RPUSH (a ledger
  entry-sized value), one pipeline per batch, no engine: the cost of Redis writes alone.
Then MEMORY USAGE summed over a customer's keys, idle (one event) and after a week.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.engine.state import encode_state
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.store.base import Commit, Store
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.store.redis import RedisStore, encode_entry

RESULTS = Path(__file__).parent / "results" / "redis_store.md"


class TimedRedisStore(RedisStore):
    """Adds up the wall time spent in store calls (round trips, encoding, decoding)."""

    spent = 0.0

    def _timed(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.spent += time.perf_counter() - began

    def load(self, customers: Any) -> Any:
        return self._timed(super().load, customers)

    def commit(self, commit: Commit) -> None:
        self._timed(super().commit, commit)

    def due(self, until: int, limit: int = 10_000) -> list[str]:
        result: list[str] = self._timed(super().due, until, limit)
        return result

    def watermark(self) -> int:
        result: int = self._timed(super().watermark)
        return result


def drop_prefix(store: RedisStore) -> None:
    client = store.client
    batch: list[bytes] = []
    for key in client.scan_iter(match=store.keys.pattern(), count=2000):
        batch.append(key)
        if len(batch) >= 2000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def through_processor(store: Store, rules: RuleSet, lines: list[bytes], batch: int) -> float:
    processor = Processor(rules, store)
    began = time.perf_counter()
    for start in range(0, len(lines), batch):
        processor.process(lines[start:start + batch])
    processor.advance_to(processor.max_event_time)
    return time.perf_counter() - began


def bare_pipeline(store: RedisStore, customers: list[str], batch: int, state_size: int,
                  entry_size: int) -> float:
    """Per event SET + ZADD + APPEND on the same key names, one pipeline per batch."""
    client, keys = store.client, store.keys
    state_blob, entry_blob = b"s" * state_size, b"e" * entry_size
    began = time.perf_counter()
    for start in range(0, len(customers), batch):
        pipe = client.pipeline(transaction=False)
        for customer in customers[start:start + batch]:
            pipe.set(keys.value(customer), state_blob)
            pipe.zadd(keys.ranking, {customer: 1.5})
            pipe.append(keys.value(customer), entry_blob)
        pipe.execute()
    return time.perf_counter() - began


def memory_usage(store: RedisStore, customer: str) -> int:
    """MEMORY USAGE of the customer's one key (layout 2)."""
    return int(store.client.memory_usage(store.customer_key(customer), samples=0) or 0)


def idle_customer_bytes(url: str, rules: RuleSet, prefix: str) -> tuple[int, int]:
    """One survey answer (one ledger entry, no promise): (bytes of keys, state bytes)."""
    store = RedisStore.from_url(url, prefix=prefix)
    try:
        event = {"id": "idle-1", "type": "survey.answered", "time": "2026-11-02T10:00:00Z",
                 "customer": "idle-customer", "ref": "req-1", "channel": "email",
                 "team": "billing", "data": {"score": 5}}
        processor = Processor(rules, store)
        processor.process([orjson.dumps(event)])
        processor.advance_to(processor.max_event_time + 3_600_000)
        state = store.load(["idle-customer"])["idle-customer"]
        assert not state.promises
        return memory_usage(store, "idle-customer"), len(encode_state(state))
    finally:
        drop_prefix(store)
        store.close()


def ledger_encodings(entries: list[LedgerEntry]) -> list[tuple[str, float, float, float]]:
    """(format, mean bytes, encode µs, decode µs) for the candidate ledger encodings."""
    from valeur_monitor.engine.event import parse_time

    def to_json(e: LedgerEntry) -> bytes:
        return orjson.dumps(e.to_json())

    def from_json(b: bytes) -> LedgerEntry:
        d = orjson.loads(b)
        d["time"] = parse_time(d["time"])
        d["events"] = tuple(d["events"])
        return LedgerEntry(**d)

    from valeur_monitor.store.redis import decode_entry
    candidates: list[tuple[str, Callable[[LedgerEntry], bytes], Callable[[bytes], Any]]] = [
        ("msgpack (chosen)", encode_entry, decode_entry),
        ("JSON of to_json() (RFC 3339 time)", to_json, from_json),
        ("msgspec JSON (epoch ms)", msgspec.json.encode,
         msgspec.json.Decoder(LedgerEntry).decode),
    ]
    out = []
    for name, enc, dec in candidates:
        t0 = time.perf_counter()
        blobs = [enc(e) for e in entries]
        t1 = time.perf_counter()
        back = [dec(b) for b in blobs]
        t2 = time.perf_counter()
        assert back == entries, name
        n = len(entries)
        out.append((name, sum(map(len, blobs)) / n, (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("VALEUR_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:16379/0"))
    parser.add_argument("--customers", type=int, default=600)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", default="100,500,2000")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    rules = load_rules(["rules"])
    config = SimulationConfig(seed=3, customers=args.customers, days=args.days)
    events = list(simulate(config))
    lines = [orjson.dumps(e) for e in events]
    by_event = [str(e["customer"]) for e in events]
    n = len(lines)
    base = f"vmbench-{os.getpid()}"

    # Sizes for the bare pipeline: what the store really writes.
    ref = MemoryStore(ledger_cap=500)
    through_processor(ref, rules, lines, 500)
    all_states = ref.load(ref.customers())
    state_size = int(statistics.mean(len(encode_state(s)) for s in all_states.values()))
    entries = [e for c in ref.customers() for e in ref.ledger(c)]
    entry_size = int(statistics.mean(len(encode_entry(e)) for e in entries))

    rows = []
    for batch in batches:
        mem_t, red_t, red_store_t, bare_t = [], [], [], []
        for run in range(args.runs):   # interleaved so machine noise hits all alike
            mem_t.append(through_processor(MemoryStore(ledger_cap=500), rules, lines, batch))
            store = TimedRedisStore.from_url(args.url, prefix=f"{base}-{batch}-{run}:")
            try:
                red_t.append(through_processor(store, rules, lines, batch))
                red_store_t.append(store.spent)
            finally:
                drop_prefix(store)
            try:
                bare_t.append(bare_pipeline(store, by_event, batch, state_size, entry_size))
            finally:
                drop_prefix(store)
                store.close()
        mem, red, red_store, bare = (statistics.median(x)
                                     for x in (mem_t, red_t, red_store_t, bare_t))
        rows.append((batch, n / mem, n / red, red_store / n * 1e6, n / bare,
                     red / mem))
        print(f"batch {batch}: memory {n / mem:,.0f}/s, redis {n / red:,.0f}/s "
              f"(store {red_store / n * 1e6:.1f} µs/event), bare {n / bare:,.0f}/s", flush=True)

    # Memory per customer after a week (batch 500), and for an idle customer.
    store = RedisStore.from_url(args.url, prefix=f"{base}-mem:")
    try:
        through_processor(store, rules, lines, 500)
        customers = store.customers()
        per_customer = sorted(memory_usage(store, c) for c in customers)
        globals_bytes = sum(int(store.client.memory_usage(k, samples=0) or 0)
                            for k in store.keys.globals())
        states = store.load(customers)
        state_bytes = sorted(len(encode_state(s)) for s in states.values())
        ledger_lens = sorted(len(store.ledger(c)) for c in customers)
    finally:
        drop_prefix(store)
        store.close()
    idle_bytes, idle_state = idle_customer_bytes(args.url, rules, f"{base}-idle:")

    def pct(values: list[int], q: float) -> int:
        return values[min(len(values) - 1, int(q * len(values)))]

    encodings = ledger_encodings(entries)
    load = os.getloadavg()
    out = [
        "# Redis store benchmark\n",
        f"{n:,} simulated events ({args.customers} customers, {args.days} days, seed 3), "
        f"shipped rules; Redis at loopback; medians of {args.runs} interleaved runs. "
        f"Load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"({os.cpu_count()} CPUs).\n",
        "## Throughput\n",
        "| batch | Processor + memory (events/s) | Processor + Redis (events/s) "
        "| Redis store time (µs/event) | Redis / memory | bare pipeline SET+ZADD+RPUSH "
        "(events/s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for batch, mem_rate, red_rate, store_us, bare_rate, _ratio in rows:
        out.append(f"| {batch:,} | {mem_rate:,.0f} | {red_rate:,.0f} | {store_us:.1f} "
                   f"| {red_rate / mem_rate:.2f} | {bare_rate:,.0f} |")
    out += [
        "",
        f"Bare pipeline values: SET of {state_size:,} bytes (mean encoded state), RPUSH of "
        f"{entry_size} bytes (mean ledger entry).\n",
        "## Memory per customer (MEMORY USAGE, SAMPLES 0, summed over the customer's keys)\n",
        "| customer | bytes | encoded state (bytes) | ledger entries |",
        "|---|---:|---:|---:|",
        f"| idle: one event, no open promise | {idle_bytes:,} | {idle_state:,} | 1 |",
        f"| a week of traffic, median | {pct(per_customer, 0.5):,} "
        f"| {pct(state_bytes, 0.5):,} | {pct(ledger_lens, 0.5)} |",
        f"| a week of traffic, p90 | {pct(per_customer, 0.9):,} "
        f"| {pct(state_bytes, 0.9):,} | {pct(ledger_lens, 0.9)} |",
        f"| a week of traffic, max | {per_customer[-1]:,} | {state_bytes[-1]:,} "
        f"| {ledger_lens[-1]} |",
        "",
        f"Global keys (ranking, due, watermark) for {len(customers)} customers: "
        f"{globals_bytes:,} bytes ({globals_bytes / max(1, len(customers)):.0f} per customer).\n",
        "## Ledger entry encoding\n",
        "| format | mean bytes | encode (µs) | decode (µs) |",
        "|---|---:|---:|---:|",
    ]
    for name, size, enc_us, dec_us in encodings:
        out.append(f"| {name} | {size:.0f} | {enc_us:.2f} | {dec_us:.2f} |")
    text = "\n".join(out) + "\n"
    print()
    print(text)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
