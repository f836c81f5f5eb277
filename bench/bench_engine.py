"""`run` of this tree against another revision, interleaved with the bare loop, same file.

`python -m bench.bench_engine FILE --against REV --runs 3` times the embedded `run` pipeline
(the memory store as `run` opens it, no output files: bench.bench_run's `embedded_run`) of this
tree and of REV (a temporary git worktree), each run in a fresh process, one after the other
with a bare parse-and-count loop before each pair, so machine noise hits all three alike. It
prints the medians: seconds, µs/event (wall and CPU) and the ratios to the bare loop of the same
runs (wall, and CPU time: steadier when other processes share the cores).
`--builds BEFORE AFTER` compares two interpreters instead (e.g. the compiled builds of two
trees, each `scripts/build-compiled`'s venv: `.../.venv-compiled/bin/python`), run outside any
checkout so that each imports its own installed package; `--against` is then only a label.
Both use this tree's rules. On a shared machine only the ratios mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in a child whose PYTHONPATH is the revision measured (its own valeur_monitor and bench).
_CHILD = """
import json, sys, time
from collections import Counter
from pathlib import Path

import orjson

path, rules, what = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if what == "bare":   # bench.bench_run.bare_loop (repeated: a build runs outside the checkout)
    cpu, wall = time.process_time(), time.perf_counter()
    counts = Counter()
    with path.open("rb") as fh:
        for line in fh:
            counts[orjson.loads(line)["customer"]] += 1
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
    raise SystemExit
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.inputs import read_batches
from valeur_monitor.store.memory import MemoryStore
ruleset = load_rules([rules])
wall, cpu = time.perf_counter(), time.process_time()
try:   # the store as `run` opens it (the rules' ledger window), where the revision has it
    from valeur_monitor.store.factory import open_store
    store = open_store("memory", ledger_cap=ruleset.settings.ledger_cap,
                       ledger_max_age=ruleset.settings.ledger_max_age, cache=True)
except (ImportError, TypeError, AttributeError):
    store = MemoryStore()
runner = EmbeddedRunner(ruleset, store)
import contextlib, valeur_monitor.runner.embedded as embedded  # a revision's own `run` setting
paused = getattr(embedded, "collector_paused", contextlib.nullcontext)
with paused(), path.open("rb") as fh:
    for batch in read_batches(fh, 2000):
        runner.feed(batch)
    runner.finish()
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "compiled": not embedded.__file__.endswith(".py")}))
"""


def measure(tree: Path, path: Path, rules: str, what: str) -> dict[str, float]:
    """Wall and CPU seconds of one run in a fresh process on the code of `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), rules, what], env=env,
                         cwd=tree, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure_build(python: str, path: Path, rules: str, what: str) -> dict[str, float]:
    """The same with an interpreter's own installed package (from a directory that is no
    checkout: the cwd on sys.path would import the sources there instead)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory() as empty:
        out = subprocess.run([python, "-c", _CHILD, str(path), rules, what], env=env,
                             cwd=empty, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def table(path: Path, runs: dict[str, list[dict[str, float]]]) -> str:
    events = sum(1 for _ in path.open("rb"))
    bare = statistics.median(r["wall"] for r in runs["bare loop"])
    bare_cpu = statistics.median(r["cpu"] for r in runs["bare loop"])
    lines = [f"| median of {len(runs['bare loop'])} runs, {events:,} events | seconds "
             "| µs/event | CPU µs/event | ratio to bare loop | CPU ratio |",
             "|---|---|---|---|---|---|"]
    for name, results in runs.items():
        wall = statistics.median(r["wall"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results)
        lines.append(f"| {name} | {wall:.2f} | {wall / events * 1e6:.1f} "
                     f"| {cpu / events * 1e6:.1f} | {bare / wall:.3f} | {bare_cpu / cpu:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--against", required=True, help="git revision to compare with")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rules", default="rules")
    parser.add_argument("--builds", nargs=2, metavar=("BEFORE", "AFTER"),
                        help="two interpreters with their own installed package to compare")
    args = parser.parse_args()
    path, rules = Path(args.file).resolve(), os.path.abspath(args.rules)
    mine, theirs = "`run`, this tree", f"`run`, {args.against}"
    runs: dict[str, list[dict[str, float]]] = {"bare loop": [], theirs: [], mine: []}
    if args.builds:
        before, after = (os.path.abspath(p) for p in args.builds)
        for _ in range(args.runs):
            runs["bare loop"].append(measure_build(after, path, rules, "bare"))
            runs[theirs].append(measure_build(before, path, rules, "run"))
            runs[mine].append(measure_build(after, path, rules, "run"))
            print(" ".join(f"{r[-1]['wall']:.2f}/{r[-1]['cpu']:.2f}" for r in runs.values()),
                  file=sys.stderr)
        print(table(path, runs))
        return
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "rev"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                        args.against], check=True, capture_output=True)
        try:
            for _ in range(args.runs):
                runs["bare loop"].append(measure(ROOT, path, rules, "bare"))
                runs[theirs].append(measure(tree, path, rules, "run"))
                runs[mine].append(measure(ROOT, path, rules, "run"))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                           check=True, capture_output=True)
    print(table(path, runs))


if __name__ == "__main__":
    main()
