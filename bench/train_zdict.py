"""Train the zstandard dictionaries of the Redis value (store/record.py) on simulated customers.

`python -m bench.train_zdict --version 1` writes valeur_monitor/store/dicts/{head,entry}-1.zdict
(version 2: `--version 2 --kinds head`, heads holding a version-3 compact state)
from a simulated week (seed 1, not the seeds the benchmarks measure on) run with the shipped
rules: heads (score row + compact state) sampled at several moments of each customer's week,
and ledger entries. A dictionary is part of the storage format: a new one gets a new version
(codec byte) and the old files stay, so values written with them remain readable.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import orjson
import zstandard

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.store.record import encode_frame, encode_head

OUT = Path("valeur_monitor/store/dicts")


def samples(customers: int, days: int) -> tuple[list[bytes], list[bytes]]:
    rules = load_rules(["rules"])
    store = MemoryStore(ledger_cap=None)
    processor = Processor(rules, store, clock=None)
    lines = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=1, customers=customers,
                                                                days=days))]
    pick = random.Random(1)
    heads: list[bytes] = []
    for i in range(0, len(lines), 2000):
        result = processor.process(lines[i:i + 2000])
        for state in result.changed.values():
            if pick.random() < 0.05:
                heads.append(encode_head(state, compress=False)[1:])
    processor.advance_to(processor.max_event_time)
    for customer in store.customers():
        state = store.state(customer)
        assert state is not None
        heads.append(encode_head(state, compress=False)[1:])
    entries = [encode_frame(e, compress=False)[11:] for c in store.customers()
               for e in store.ledger(c)]
    return heads, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--size", type=int, default=16384, help="dictionary bytes")
    parser.add_argument("--kinds", nargs="+", default=["head", "entry"],
                        choices=["head", "entry"], help="the record kinds to train for")
    args = parser.parse_args()
    heads, entries = samples(args.customers, args.days)
    for kind, data in (("head", heads), ("entry", entries)):
        if kind not in args.kinds:
            continue
        pick = random.Random(2)
        chosen = pick.sample(data, min(len(data), 50_000))
        trained = zstandard.train_dictionary(args.size, chosen, level=3, threads=1)
        path = OUT / f"{kind}-{args.version}.zdict"
        path.write_bytes(trained.as_bytes())
        print(f"{path}: {len(trained.as_bytes()):,} bytes from {len(chosen):,} samples")


if __name__ == "__main__":
    main()
