"""Redis memory per customer after a simulated week and after 60 days, with the full ledger in
the sink (a ledger file, as `run --ledger` writes it) and a window of it in Redis.

`python -m bench.bench_memory --url redis://127.0.0.1:16379/9` (a test database: keys go under
a fresh prefix and are deleted at the end). For each scenario: MEMORY USAGE (SAMPLES 0) summed
over each customer's four keys, idle (one event), median, p90; the encoded state alone; and a
check that the ledger file holds every entry ever booked (sum of the customers' `seq`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from bench.bench_redis_store import drop_prefix, idle_customer_bytes, memory_usage
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.state import encode_plain, encode_state
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.sinks.files import LedgerWriter
from valeur_monitor.store.redis import RedisStore


def scenario(url: str, customers: int, days: int, cap: int) -> dict[str, float]:
    rules = load_rules(["rules"])
    prefix = f"bench-mem-{time.time_ns()}:"
    store = RedisStore.from_url(url, prefix=prefix, ledger_cap=cap)
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
            plain = sorted(len(encode_plain(states[c])) for c in active)
            in_redis = sum(len(store.ledger(c)) for c in active)
            booked = sum(states[c].seq for c in active)
            in_file = sum(1 for _ in ledger_path.open("rb"))
        finally:
            drop_prefix(store)
            store.close()
    return {"events": len(lines), "customers": len(active), "median": statistics.median(used),
            "p90": used[int(0.9 * len(used))], "state": statistics.median(compact),
            "plain": statistics.median(plain), "booked": booked, "file": in_file,
            "redis": in_redis}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("VALEUR_BENCH_REDIS_URL",
                                                        "redis://127.0.0.1:16379/9"))
    parser.add_argument("--week-customers", type=int, default=1500)
    parser.add_argument("--long-customers", type=int, default=200)
    parser.add_argument("--caps", default="500,50,20")
    args, _ = parser.parse_known_args()  # `make bench` passes every benchmark the same options
    rules = load_rules(["rules"])
    idle, idle_state = idle_customer_bytes(args.url, rules, f"bench-mem-idle-{time.time_ns()}:")
    rows = [f"| idle (one survey answer, no promise) | – | – | {idle:,} | – | "
            f"{idle_state:,} | – | – |"]
    for cap in (int(c) for c in args.caps.split(",")):
        for label, customers, days in (("a week", args.week_customers, 7),
                                       ("60 days", args.long_customers, 60)):
            r = scenario(args.url, customers, days, cap)
            assert r["file"] == r["booked"], "the ledger file must hold every booked entry"
            rows.append(f"| {label}, {int(r['customers']):,} active customers | {cap} "
                        f"| {int(r['events']):,} | {r['median']:,.0f} | {r['p90']:,.0f} "
                        f"| {r['state']:,.0f} (plain {r['plain']:,.0f}) "
                        f"| {int(r['redis']):,} | {int(r['file']):,} |")
    load = os.getloadavg()
    table = ("| customers | ledger window (entries) | events | median bytes | p90 bytes "
             "| median state bytes | entries in Redis | entries in the ledger file |\n"
             "|---|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
             f"Load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}.\n")
    print(table)
    Path("bench/results/memory.md").write_text(table)


if __name__ == "__main__":
    main()
