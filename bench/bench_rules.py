"""Rule-set size: compile time and per-event cost from the shipped rules to a thousand rules.

The shipped rules plus generated `on` rules spread over the simulated event types, each with a
condition of the commonest shape, `data.<field> == "<value>"` (a topic, a queue, an agent), or
(`--other 0.1`: that share) a condition that must be evaluated one by one. Per-event cost is CPU
time of the embedded pipeline (memory store) over the same events, median of interleaved runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from valeur_monitor.engine.rules import load_rules, load_rules_text
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.memory import MemoryStore

FIELDS = {"request.opened": "topic", "contact.inbound": "topic", "request.agent_replied": "agent",
          "request.status_changed": "agent", "request.resolved": "agent",
          "callback.completed": "agent", "callback.promised": "agent"}


def generated(count: int, other: float) -> str:
    lines = ["version: 1", "rules:"]
    types = sorted(FIELDS)
    unindexed = int(count * other)
    for i in range(count):
        etype = types[i % len(types)]
        cond = (f"has(data.extra_{i})" if i < unindexed
                else f'data.{FIELDS[etype]} == "gen-{i}"')
        lines += [f"  - id: gen-{i:04d}", f"    on: {etype}", f"    if: {json.dumps(cond)}",
                  "    costs: {effort: 1}"]
    return "\n".join(lines) + "\n"


def ruleset(total: int, other: float) -> tuple[RuleSet, float]:
    """The shipped rules plus generated ones up to `total`, and the CPU seconds to compile."""
    shipped = [(str(p), p.read_text()) for p in sorted(Path("rules").glob("*.yml"))]
    base = len(load_rules(["rules"]).rule_ids())
    extra = [("generated.yml", generated(max(0, total - base), other))] if total > base else []
    began = time.process_time()  # CPU time: the machine is shared, wall time is noise
    rules = load_rules_text(shipped + extra)
    return rules, time.process_time() - began


def per_event(rules: RuleSet, lines: list[bytes]) -> float:
    began = time.process_time()
    runner = EmbeddedRunner(rules, MemoryStore())
    for i in range(0, len(lines), 2000):
        runner.feed(lines[i:i + 2000])
    runner.finish()
    return (time.process_time() - began) / len(lines) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="15,100,300,1000")
    parser.add_argument("--other", type=float, default=0.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--file", default="bench/results/rules-events.jsonl")
    args = parser.parse_args()
    path = Path(args.file)
    if not path.exists():
        write_jsonl(path, SimulationConfig(seed=5, customers=400, days=7))
    lines = path.read_bytes().splitlines()
    sizes = [int(s) for s in args.sizes.split(",")]
    sets = {n: ruleset(n, args.other) for n in sizes}
    costs: dict[int, list[float]] = {n: [] for n in sizes}
    compiles: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(args.runs):
        for n in sizes:
            compiles[n].append(ruleset(n, args.other)[1])
            costs[n].append(per_event(sets[n][0], lines))
    first = statistics.median(costs[sizes[0]])
    table = (f"| rules | compile (CPU s) | µs/event (CPU, median of {args.runs}) | vs "
             f"{len(sets[sizes[0]][0].rule_ids())} rules |\n|---:|---:|---:|---:|\n")
    for n in sizes:
        cost = statistics.median(costs[n])
        table += (f"| {len(sets[n][0].rule_ids()):,} | {statistics.median(compiles[n]):.2f} "
                  f"| {cost:.1f} | {cost / first:.2f} |\n")
    print(f"{len(lines):,} events, other={args.other}\n{table}")
    Path(f"bench/results/rules-{args.other:g}.md").write_text(table)


if __name__ == "__main__":
    main()
