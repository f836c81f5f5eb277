"""Where a long `run` spends: CPU per slice of events, garbage collections, peak memory.

`python -m bench.bench_slices FILE [--slice 100000] [--limit N] [--keep-ledger] [--gc off]
[--compiled]` runs `run`'s pipeline (bench.bench_run's store and runner, no output files) and
prints, for every slice of the input, the CPU time per event, ledger entries per event, open
promises held at its end, and the garbage collections in it (count per generation and their
CPU time, from `gc.callbacks`), then the run's totals and peak RSS. `--keep-ledger`: the memory
store keeps every ledger entry (as before the sixth wave); `--gc off`: the collector disabled
after the runner's own tuning. `--compiled` re-runs it in the compiled build (.venv-compiled).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.inputs import read_batches
from valeur_monitor.store.memory import MemoryStore

COMPILED_RUN = "VALEUR_BENCH_COMPILED"
ROOT = Path(__file__).resolve().parent.parent
RERUN = ("import runpy, sys; sys.path.append(sys.argv.pop(1)); "
         "runpy.run_module('bench.bench_slices', run_name='__main__')")


class Collections:
    """Garbage collections seen through `gc.callbacks`: count and CPU seconds per generation."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.cpu = [0.0, 0.0, 0.0]
        self._began = 0.0
        gc.callbacks.append(self._seen)

    def _seen(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.process_time()
        else:
            self.count[info["generation"]] += 1
            self.cpu[info["generation"]] += time.process_time() - self._began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--slice", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=0, help="stop after N events (0: all)")
    parser.add_argument("--keep-ledger", action="store_true")
    parser.add_argument("--gc", choices=("run", "off"), default="run")
    parser.add_argument("--compiled", action="store_true")
    args = parser.parse_args()
    if args.compiled and os.environ.get(COMPILED_RUN) != "1":
        sys.exit(subprocess.run([".venv-compiled/bin/python", "-P", "-c", RERUN, str(ROOT),
                                 *sys.argv[1:]], cwd=ROOT, env={**os.environ, COMPILED_RUN: "1"},
                                check=False).returncode)
    from bench.bench_run import run_store

    rules = load_rules([str(ROOT / "rules")])
    store = MemoryStore() if args.keep_ledger else run_store(rules)
    assert isinstance(store, MemoryStore)
    seen = Collections()
    began = time.process_time()
    runner = EmbeddedRunner(rules, store)
    if args.gc == "off":
        gc.disable()
    print("| events | CPU µs/event | entries/event | open promises | collections (gen 0/1/2) "
          "| their CPU ms |\n|---:|---:|---:|---:|---|---:|")
    n = mark = entries = 0
    cpu, counts, gc_cpu = time.process_time(), list(seen.count), sum(seen.cpu)
    with open(args.file, "rb") as fh:
        for batch in read_batches(fh, 2000):
            runner.feed(batch)
            n += len(batch)
            if n - mark >= args.slice:
                now = time.process_time()
                opened = sum(len(s.promises) for s in store._states.values())
                got = runner.report.entries
                print(f"| {n:,} | {(now - cpu) / (n - mark) * 1e6:.1f} "
                      f"| {(got - entries) / (n - mark):.3f} | {opened:,} "
                      f"| {'/'.join(str(a - b) for a, b in zip(seen.count, counts, strict=True))} "
                      f"| {(sum(seen.cpu) - gc_cpu) * 1e3:.0f} |", flush=True)
                mark, entries, counts, gc_cpu = n, got, list(seen.count), sum(seen.cpu)
                cpu = time.process_time()   # the open-promise count above is not the run's
            if args.limit and n >= args.limit:
                break
    runner.finish()
    total = time.process_time() - began
    build = "compiled" if os.environ.get(COMPILED_RUN) == "1" else "pure"
    print(f"\n{build}: {n:,} events, CPU {total:.2f} s ({total / n * 1e6:.1f} µs/event, the "
          f"slices' open-promise counts included); collections {seen.count}, their CPU "
          f"{sum(seen.cpu):.2f} s; peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
