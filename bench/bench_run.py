"""Embedded `run` throughput on simulated events vs a bare parse-and-count loop, same file.

`--compiled` measures the same with the mypyc-compiled build, as shipped (the default wheel that
`make compiled` installs in .venv-compiled): this script re-runs itself in that interpreter,
checks it imports the compiled modules, and writes bench/results/run-compiled.md instead of
run.md. Compare runs of both builds by their ratios to the bare loop (each measured with it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.runner.embedded import EmbeddedRunner, collector_paused
from valeur_monitor.runner.inputs import read_batches
from valeur_monitor.runner.sharded import ShardedRunner
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.base import Store
from valeur_monitor.store.factory import open_store


def bare_loop(path: Path) -> float:
    """Baseline: read each line, parse it with the same JSON library, add to a dict."""
    began = time.perf_counter()
    counts: Counter[str] = Counter()
    with path.open("rb") as fh:
        for line in fh:
            counts[orjson.loads(line)["customer"]] += 1
    return time.perf_counter() - began


def run_store(rules: RuleSet) -> Store:
    """The memory store as `run` opens it (cli/run_cmd.py): the rules' ledger window."""
    return open_store("memory", ledger_cap=rules.settings.ledger_cap,
                      ledger_max_age=rules.settings.ledger_max_age, cache=True)


def embedded_run(path: Path) -> float:
    """The real pipeline of `valeur-monitor run` (decode, engine, memory store), no output."""
    rules = load_rules(["rules"])
    began = time.perf_counter()
    runner = EmbeddedRunner(rules, run_store(rules))
    with collector_paused(), path.open("rb") as fh:   # as `run` over files
        for batch in read_batches(fh, 2000):
            runner.feed(batch)
        runner.finish()
    return time.perf_counter() - began


def sharded_run(path: Path, workers: int) -> float:
    """`run --workers N`: the same pipeline with customers shared out across N processes."""
    rules = load_rules(["rules"])
    began = time.perf_counter()
    ShardedRunner(rules, workers).run([str(path)])
    return time.perf_counter() - began


def redis_run(path: Path, url: str) -> float:
    """`run --store redis://`: the same pipeline committing to Redis (a fresh key prefix)."""
    from valeur_monitor.store.cached import CachedStore
    from valeur_monitor.store.redis import RedisStore

    rules = load_rules(["rules"])
    prefix = f"bench-run-{time.time_ns()}:"
    # as `run` opens it (cli/run_cmd.py via open_store): the shipped window, states cached
    redis_store = RedisStore.from_url(url, prefix=prefix, ledger_cap=rules.settings.ledger_cap,
                                      ledger_max_age=rules.settings.ledger_max_age)
    store = CachedStore(redis_store, pipelined=True)
    began = time.perf_counter()
    runner = EmbeddedRunner(rules, store)
    with collector_paused(), path.open("rb") as fh:   # as `run` over files
        for batch in read_batches(fh, 2000):
            runner.feed(batch)
        runner.finish()
    seconds = time.perf_counter() - began
    client, doomed = redis_store.client, []
    for key in client.scan_iter(match=f"{prefix}*", count=10_000):
        doomed.append(key)
        if len(doomed) >= 5000:
            client.unlink(*doomed)
            doomed = []
    if doomed:
        client.unlink(*doomed)
    store.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=15_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--file", default="bench/results/run-events.jsonl")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis", default=os.environ.get("VALEUR_BENCH_REDIS_URL"),
                        help="also run with this Redis store URL (a test database)")
    parser.add_argument("--redis-lines", type=int, default=200_000,
                        help="events of the file used for the Redis comparison")
    parser.add_argument("--compiled", action="store_true",
                        help="measure the mypyc-compiled build (after `make compiled`)")
    parser.add_argument("--compiled-python", default=".venv-compiled/bin/python")
    args = parser.parse_args()
    if args.compiled and os.environ.get(COMPILED_RUN) != "1":
        sys.exit(in_compiled_build(args.compiled_python))
    compiled = os.environ.get(COMPILED_RUN) == "1"
    if compiled:  # the build asked for, not the sources of this checkout
        import valeur_monitor.engine.core as core
        import valeur_monitor.service as service

        assert not str(core.__file__).endswith(".py"), core.__file__
        assert not str(service.__file__).endswith(".py"), service.__file__
    path = Path(args.file)
    if not path.exists():
        write_jsonl(path, SimulationConfig(seed=7, customers=args.customers, days=args.days))
    events = sum(1 for _ in path.open("rb"))
    bare, run, sharded = [], [], []
    for _ in range(args.runs):  # interleaved so machine noise hits both alike
        bare.append(bare_loop(path))
        run.append(embedded_run(path))
        sharded.append(sharded_run(path, args.workers))
    b, r, w = (statistics.median(x) for x in (bare, run, sharded))
    build = " (mypyc-compiled build)" if compiled else ""
    table = (
        f"| measure{build} (median of {args.runs} runs, {events:,} events) | seconds | events/s "
        "| ratio to bare loop |\n|---|---|---|---|\n"
        f"| bare loop: orjson.loads + dict add | {b:.2f} | {events / b:,.0f} | 1.00 |\n"
        f"| `valeur-monitor run` pipeline (memory store) | {r:.2f} | {events / r:,.0f} "
        f"| {b / r:.3f} |\n"
        f"| `run --workers {args.workers}` (memory store) | {w:.2f} | {events / w:,.0f} "
        f"| {b / w:.3f} |\n"
        f"\n`--workers {args.workers}` / one process: {r / w:.2f}× (same runs)\n"
    )
    if args.redis:
        part = path.with_name(f"{path.stem}-{args.redis_lines}.jsonl")
        with path.open("rb") as src, part.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= args.redis_lines:
                    break
                dst.write(line)
        memory, redis_s = [], []
        for _ in range(args.runs):
            memory.append(embedded_run(part))
            redis_s.append(redis_run(part, args.redis))
        m, rs = statistics.median(memory), statistics.median(redis_s)
        n = min(events, args.redis_lines)
        table += (
            f"\n| same pipeline, first {n:,} events (median of {args.runs}) | seconds "
            "| events/s | ratio to memory store |\n|---|---|---|---|\n"
            f"| memory store | {m:.2f} | {n / m:,.0f} | 1.00 |\n"
            f"| Redis store (`run --store redis://`) | {rs:.2f} | {n / rs:,.0f} "
            f"| {m / rs:.3f} |\n")
    print(table)
    Path("bench/results/run-compiled.md" if compiled else "bench/results/run.md").write_text(table)


COMPILED_RUN = "VALEUR_BENCH_COMPILED"
ROOT = Path(__file__).resolve().parent.parent
# -P: no cwd on sys.path; the repository appended, so `bench` is found but `valeur_monitor`
# comes from the interpreter's own installation (the compiled wheel), not these sources.
RERUN = ("import runpy, sys; sys.path.append(sys.argv.pop(1)); "
         "runpy.run_module('bench.bench_run', run_name='__main__')")


def in_compiled_build(python: str) -> int:
    """This benchmark, same arguments, run by `python` (the compiled build's interpreter)."""
    return subprocess.run([python, "-P", "-c", RERUN, str(ROOT), *sys.argv[1:]], cwd=ROOT,
                          env={**os.environ, COMPILED_RUN: "1"}, check=False).returncode


if __name__ == "__main__":
    main()
