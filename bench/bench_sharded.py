"""`run --workers N` against one process on the same file: wall clock and CPU time, same runs.

On a shared machine the wall-clock ratio depends on what else runs; the CPU figures do not:
`one process CPU / busiest shard CPU` is the speed-up N free cores would give (the parent's
share is printed too). Runs are interleaved so that machine noise hits both alike.

`--timeline` prints, for every sharded run, when the parent and each shard reached each step
(seconds since the run began, from the shared monotonic clock): the serial parts of the run
(start-up, the wait for the last shard, the merge) are the gaps between the columns.
`--only-sharded` skips the bare loop and the one-process run. `--compiled` re-runs this in the
compiled build (.venv-compiled).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.bench_run import bare_loop, embedded_run
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.sharded import ShardedRunner

COMPILED_RUN = "VALEUR_BENCH_COMPILED"
ROOT = Path(__file__).resolve().parent.parent
RERUN = ("import runpy, sys; sys.path.append(sys.argv.pop(1)); "
         "runpy.run_module('bench.bench_sharded', run_name='__main__')")


def sharded(path: Path, workers: int) -> tuple[float, float, float, ShardedRunner]:
    """(wall s, parent CPU s, busiest shard's CPU s, the runner) of `run --workers N`."""
    rules = load_rules([str(ROOT / "rules")])
    began, cpu = time.perf_counter(), time.process_time()
    runner = ShardedRunner(rules, workers)
    runner.run([str(path)])
    return time.perf_counter() - began, time.process_time() - cpu, max(runner.shard_cpu), runner


def timeline(runner: ShardedRunner) -> str:
    """The run's steps in time order, seconds since it began."""
    marks = sorted(runner.timeline, key=lambda m: m[2])
    zero = marks[0][2]
    return "\n".join(f"  {t - zero:7.3f}  {who:8}  {what}" for who, what, t in marks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeline", action="store_true")
    parser.add_argument("--only-sharded", action="store_true")
    parser.add_argument("--compiled", action="store_true")
    args = parser.parse_args()
    if args.compiled and os.environ.get(COMPILED_RUN) != "1":
        sys.exit(subprocess.run([".venv-compiled/bin/python", "-P", "-c", RERUN, str(ROOT),
                                 *sys.argv[1:]], cwd=ROOT, env={**os.environ, COMPILED_RUN: "1"},
                                check=False).returncode)
    events = sum(1 for _ in args.file.open("rb"))
    bare, one_wall, one_cpu, wall, parent, shard = [], [], [], [], [], []
    for run in range(args.runs):
        if not args.only_sharded:
            bare.append(bare_loop(args.file))
            cpu = time.process_time()
            one_wall.append(embedded_run(args.file))
            one_cpu.append(time.process_time() - cpu)
        w, p, s, runner = sharded(args.file, args.workers)
        wall.append(w)
        parent.append(p)
        shard.append(s)
        if args.timeline:
            print(f"run {run + 1}: {w:.2f} s wall, shards' CPU "
                  f"{', '.join(f'{c:.2f}' for c in runner.shard_cpu)} s, load "
                  f"{os.getloadavg()[0]:.1f}\n{timeline(runner)}", flush=True)
    build = "compiled" if os.environ.get(COMPILED_RUN) == "1" else "pure"
    w, p, s = (statistics.median(x) for x in (wall, parent, shard))
    if args.only_sharded:
        print(f"{build}: `--workers {args.workers}` median of {args.runs}, {events:,} events: "
              f"{w:.2f} s wall, parent CPU {p:.2f} s, busiest shard CPU {s:.2f} s")
        return
    b, ow, oc = (statistics.median(x) for x in (bare, one_wall, one_cpu))
    print(f"| {build}, median of {args.runs} runs, {events:,} events | wall s | CPU s "
          "| ratio to bare loop |\n|---|---|---|---|\n"
          f"| bare loop | {b:.2f} | | 1.00 |\n"
          f"| one process | {ow:.2f} | {oc:.2f} | {b / ow:.3f} |\n"
          f"| `--workers {args.workers}` | {w:.2f} | parent {p:.2f}, busiest shard {s:.2f} "
          f"| {b / w:.3f} |\n\n"
          f"wall clock: --workers {args.workers} / one process = {ow / w:.2f}×; CPU: one process"
          f" / busiest shard = {oc / s:.2f}× (what {args.workers} free cores give)")


if __name__ == "__main__":
    main()
