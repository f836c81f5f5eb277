"""`run --workers N` against one process on the same file: wall clock and CPU time, same runs.

On a shared machine the wall-clock ratio depends on what else runs; the CPU figures do not:
`one process CPU / busiest shard CPU` is the speed-up N free cores would give (the parent's
share is printed too). Runs are interleaved so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench.bench_run import bare_loop, embedded_run
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.sharded import ShardedRunner


def sharded(path: Path, workers: int) -> tuple[float, float, float]:
    """(wall seconds, parent CPU seconds, busiest shard's CPU seconds) of `run --workers N`."""
    rules = load_rules(["rules"])
    began, cpu = time.perf_counter(), time.process_time()
    runner = ShardedRunner(rules, workers)
    runner.run([str(path)])
    return time.perf_counter() - began, time.process_time() - cpu, max(runner.shard_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    events = sum(1 for _ in args.file.open("rb"))
    bare, one_wall, one_cpu, wall, parent, shard = [], [], [], [], [], []
    for _ in range(args.runs):
        bare.append(bare_loop(args.file))
        cpu = time.process_time()
        one_wall.append(embedded_run(args.file))
        one_cpu.append(time.process_time() - cpu)
        w, p, s = sharded(args.file, args.workers)
        wall.append(w)
        parent.append(p)
        shard.append(s)
    b, ow, oc, w, p, s = (statistics.median(x) for x in (bare, one_wall, one_cpu, wall,
                                                          parent, shard))
    print(f"| median of {args.runs} runs, {events:,} events | wall s | CPU s | ratio to bare "
          "loop |\n|---|---|---|---|\n"
          f"| bare loop | {b:.2f} | | 1.00 |\n"
          f"| one process | {ow:.2f} | {oc:.2f} | {b / ow:.3f} |\n"
          f"| `--workers {args.workers}` | {w:.2f} | parent {p:.2f}, busiest shard {s:.2f} "
          f"| {b / w:.3f} |\n\n"
          f"wall clock: --workers {args.workers} / one process = {ow / w:.2f}×; CPU: one process"
          f" / busiest shard = {oc / s:.2f}× (what {args.workers} free cores give)")


if __name__ == "__main__":
    main()
