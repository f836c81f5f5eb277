"""Embedded `run` throughput on simulated events vs a bare parse-and-count loop, same file."""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

import orjson

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.inputs import read_batches
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.memory import MemoryStore


def bare_loop(path: Path) -> float:
    """Baseline: read each line, parse it with the same JSON library, add to a dict."""
    began = time.perf_counter()
    counts: Counter[str] = Counter()
    with path.open("rb") as fh:
        for line in fh:
            counts[orjson.loads(line)["customer"]] += 1
    return time.perf_counter() - began


def embedded_run(path: Path) -> float:
    """The real pipeline of `valeur-monitor run` (decode, engine, memory store), no output."""
    rules = load_rules(["rules"])
    began = time.perf_counter()
    runner = EmbeddedRunner(rules, MemoryStore())
    with path.open("rb") as fh:
        for batch in read_batches(fh, 2000):
            runner.feed(batch)
    runner.finish()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=15_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--file", default="bench/results/run-events.jsonl")
    args = parser.parse_args()
    path = Path(args.file)
    if not path.exists():
        write_jsonl(path, SimulationConfig(seed=7, customers=args.customers, days=args.days))
    events = sum(1 for _ in path.open("rb"))
    bare, run = [], []
    for _ in range(args.runs):  # interleaved so machine noise hits both alike
        bare.append(bare_loop(path))
        run.append(embedded_run(path))
    b, r = statistics.median(bare), statistics.median(run)
    table = (
        f"| measure (median of {args.runs} runs, {events:,} events) | seconds | events/s "
        "| ratio to bare loop |\n|---|---|---|---|\n"
        f"| bare loop: orjson.loads + dict add | {b:.2f} | {events / b:,.0f} | 1.00 |\n"
        f"| `valeur-monitor run` pipeline (memory store) | {r:.2f} | {events / r:,.0f} "
        f"| {b / r:.3f} |\n"
    )
    print(table)
    Path("bench/results/run.md").write_text(table)


if __name__ == "__main__":
    main()
