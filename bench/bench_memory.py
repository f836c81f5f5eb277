"""Redis memory per customer after a simulated week and after 60 days, with the full ledger in
the sink (a ledger file, as `run --ledger` writes it) and a window of it in Redis.

`python -m bench.bench_memory --url redis://127.0.0.1:16379/9` (a test database: keys go under
a fresh prefix and are deleted at the end). For each scenario: MEMORY USAGE (SAMPLES 0) of each
customer's key (layout 2: one key per customer), idle (one event), median, p90; what the global
keys (ranking and due ZSETs, open-promise ZSETs) add per customer; the encoded state alone; the
same run without compression; and a check that the ledger file holds every entry ever booked
(sum of the customers' `seq`). Windows: the shipped rules' `ledger_cap` and `ledger_max_age`
unless `--caps` names others.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from bench.bench_redis_store import drop_prefix, memory_usage
from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.engine.state import encode_state
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.sinks.files import LedgerWriter
from valeur_monitor.store.redis import RedisStore


def global_bytes(store: RedisStore) -> int:
    """MEMORY USAGE of the keys shared by all customers (ranking, due, open-promise totals)."""
    client, keys = store.client, store.keys
    names = [keys.ranking, keys.due, keys.open_totals]
    return sum(int(client.memory_usage(k, samples=0) or 0) for k in names)


def idle(url: str, rules: RuleSet, compress: bool) -> tuple[int, int]:
    """One survey answer (one ledger entry, no promise): (bytes of its key, state bytes)."""
    store = RedisStore.from_url(url, prefix=f"bench-mem-idle-{time.time_ns()}:",
                                ledger_cap=rules.settings.ledger_cap,
                                ledger_max_age=rules.settings.ledger_max_age)
    store.compress = compress
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


def scenario(url: str, customers: int, days: int, cap: int, max_age: int | None,
             compress: bool = True) -> dict[str, float]:
    rules = load_rules(["rules"])
    store = RedisStore.from_url(url, prefix=f"bench-mem-{time.time_ns()}:", ledger_cap=cap,
                                ledger_max_age=max_age)
    store.compress = compress
    lines = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=9, customers=customers,
                                                                days=days))]
    with tempfile.TemporaryDirectory() as tmp:
        ledger_path = Path(tmp) / "ledger.jsonl"
        runner = EmbeddedRunner(rules, store, ledger=LedgerWriter(ledger_path))
        try:
            for i in range(0, len(lines), 2000):
                runner.feed(lines[i:i + 2000])
            runner.finish()
            names = sorted({orjson.loads(line)["customer"] for line in lines})
            states = store.load(names)
            active = [c for c in names if states[c].seq > 0]
            used = sorted(memory_usage(store, c) for c in active)
            compact = sorted(len(encode_state(states[c])) for c in active)
            in_redis = sum(len(store.ledger(c)) for c in active)
            booked = sum(states[c].seq for c in active)
            in_file = sum(1 for _ in ledger_path.open("rb"))
            shared = global_bytes(store) / len(names)
        finally:
            drop_prefix(store)
            store.close()
    return {"events": len(lines), "customers": len(active), "median": statistics.median(used),
            "p90": used[int(0.9 * len(used))], "state": statistics.median(compact),
            "booked": booked, "file": in_file, "redis": in_redis, "globals": shared}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("VALEUR_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:16379/9"))
    parser.add_argument("--week-customers", type=int, default=1000)
    parser.add_argument("--long-customers", type=int, default=150)
    parser.add_argument("--caps", default="", help="extra windows, e.g. 500,50 (count; no age)")
    args, _ = parser.parse_known_args()  # `make bench` passes every benchmark the same options
    rules = load_rules(["rules"])
    shipped = rules.settings
    age = (f"{shipped.ledger_max_age // 86_400_000} d" if shipped.ledger_max_age else "none")
    rows = []
    for compress in (True, False):
        used, state = idle(args.url, rules, compress)
        rows.append(f"| idle (one survey answer, no promise) | {shipped.ledger_cap} / {age} "
                    f"| {'zstd' if compress else 'none'} | – | {used:,} | – | – | {state:,} "
                    "| – | – |")
    windows = [(shipped.ledger_cap, shipped.ledger_max_age, True),
               (shipped.ledger_cap, shipped.ledger_max_age, False)]
    windows += [(int(c), None, True) for c in args.caps.split(",") if c]
    for cap, max_age, compress in windows:
        label_age = f"{max_age // 86_400_000} d" if max_age else "none"
        for label, customers, days in (("a week", args.week_customers, 7),
                                       ("60 days", args.long_customers, 60)):
            r = scenario(args.url, customers, days, cap, max_age, compress)
            assert r["file"] == r["booked"], "the ledger file must hold every booked entry"
            rows.append(f"| {label}, {int(r['customers']):,} active customers "
                        f"| {cap} / {label_age} | {'zstd' if compress else 'none'} "
                        f"| {int(r['events']):,} | {r['median']:,.0f} | {r['p90']:,.0f} "
                        f"| {r['globals']:,.0f} | {r['state']:,.0f} "
                        f"| {int(r['redis']):,} | {int(r['file']):,} |")
    load = os.getloadavg()
    table = ("| customers | window (count / age) | compression | events | median bytes "
             "| p90 bytes | global keys per customer | median state bytes (uncompressed) "
             "| entries in Redis | entries in the ledger file |\n"
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
             f"Load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}.\n")
    print(table)
    Path("bench/results/memory.md").write_text(table)


if __name__ == "__main__":
    main()
