"""mypyc-compiled vs pure-Python `run` on the same file, interleaved, both vs the bare loop.

`python -m bench.bench_compiled` (after `make compiled`): each measure runs in a fresh
interpreter, the pure one from `.venv` (the editable sources), the compiled one from
`.venv-compiled` (the default, compiled wheel), each checked to be the build it claims. The
pipeline is `bench.bench_run.embedded_run` (decode, engine, memory store, no output); the
baseline its `bare_loop`. Wall and CPU time (`process_time` of the run itself: imports and
the rules load excluded), medians of `--runs`. On a shared machine CPU time is the fairer
figure (wall time includes waiting for a core).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run with -P (no cwd on sys.path) and the repository appended: `bench` is importable and
# `valeur_monitor` comes from the venv (editable sources or the compiled wheel).
CHILD = """
import json, sys, time
sys.path.append(sys.argv[1])
import valeur_monitor.codec, valeur_monitor.engine.core, valeur_monitor.service
builds = {m.__name__: not str(m.__file__).endswith(".py")
          for m in (valeur_monitor.codec, valeur_monitor.engine.core, valeur_monitor.service)}
assert set(builds.values()) == {sys.argv[3] == "compiled"}, (sys.argv[3], builds)
from pathlib import Path
from bench.bench_run import bare_loop, embedded_run
from valeur_monitor.engine.rules import load_rules
# CPU of the run alone: imports and the first rules load happen before the measure, and the
# rules load embedded_run repeats (the same for both builds) is measured apart and taken off.
load_rules(["rules"])
began = time.process_time()
load_rules(["rules"])
loading = time.process_time() - began if sys.argv[3] != "bare" else 0.0
began = time.process_time()
wall = (bare_loop if sys.argv[3] == "bare" else embedded_run)(Path(sys.argv[2]))
print(json.dumps({"wall": wall, "cpu": time.process_time() - began - loading}))
"""


def measure(python: Path, mode: str, events: Path) -> dict[str, float]:
    done = subprocess.run([str(python), "-P", "-c", CHILD, str(ROOT), str(events.resolve()),
                           mode], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.splitlines()[-1]))


def head(path: Path, lines: int) -> Path:
    """The first `lines` events of `path`, written once beside it."""
    part = path.with_name(f"{path.stem}-head{lines}.jsonl")
    if not part.exists():
        with path.open("rb") as src, part.open("wb") as dst:
            for i, line in enumerate(src):
                if i >= lines:
                    break
                dst.write(line)
    return part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", default="bench/results/run-events.jsonl",
                        help="simulated events (written as bench.bench_run does when missing)")
    parser.add_argument("--events", type=int, default=100_000, help="first N events of --file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pure", default=".venv/bin/python")
    parser.add_argument("--compiled", default=".venv-compiled/bin/python")
    args = parser.parse_args()
    source = ROOT / args.file
    if not source.exists():  # the file bench.bench_run writes with its defaults
        from valeur_monitor.simulate import SimulationConfig, write_jsonl

        write_jsonl(source, SimulationConfig(seed=7, customers=15_000, days=7))
    events = head(source, args.events)
    count = sum(1 for _ in events.open("rb"))
    runs: dict[str, list[dict[str, float]]] = {"bare": [], "pure": [], "compiled": []}
    for _ in range(args.runs):  # interleaved so machine noise hits all three alike
        runs["bare"].append(measure(ROOT / args.pure, "bare", events))
        runs["pure"].append(measure(ROOT / args.pure, "pure", events))
        runs["compiled"].append(measure(ROOT / args.compiled, "compiled", events))
    med = {k: {t: statistics.median(r[t] for r in v) for t in ("wall", "cpu")}
           for k, v in runs.items()}
    bare, pure, comp = med["bare"], med["pure"], med["compiled"]
    table = (
        f"| measure (median of {args.runs} interleaved runs, {count:,} events) | wall s "
        "| CPU s | µs/event (CPU) | ratio to bare loop (wall) |\n|---|---|---|---|---|\n"
        f"| bare loop: orjson.loads + dict add | {bare['wall']:.2f} | {bare['cpu']:.2f} "
        f"| {bare['cpu'] / count * 1e6:.1f} | 1.000 |\n")
    for name, m in (("`run`, pure Python", pure), ("`run`, mypyc-compiled engine", comp)):
        table += (f"| {name} | {m['wall']:.2f} | {m['cpu']:.2f} | {m['cpu'] / count * 1e6:.1f} "
                  f"| {bare['wall'] / m['wall']:.3f} |\n")
    # Each compiled run against the pure run just before it (same minute of machine noise).
    paired = [p["cpu"] / c["cpu"] for p, c in zip(runs["pure"], runs["compiled"], strict=True)]
    load = os.getloadavg()
    fastest = min(r["cpu"] for r in runs["pure"]) / min(r["cpu"] for r in runs["compiled"])
    table += (f"\ncompiled / pure speed-up: **{pure['wall'] / comp['wall']:.2f}×** wall, "
              f"**{pure['cpu'] / comp['cpu']:.2f}×** CPU (medians); CPU per pair of runs: "
              + " / ".join(f"{r:.2f}" for r in paired)
              + f" (median {statistics.median(paired):.2f}); fastest runs: "
              f"{fastest:.2f}× CPU; every run (wall s): "
              + ", ".join(f"{k} " + "/".join(f"{r['wall']:.2f}" for r in v)
                          for k, v in runs.items())
              + f"; load average at the end {load[0]:.1f} / {load[1]:.1f} (1 / 5 min)\n")
    print(table)
    (ROOT / "bench/results/compiled.md").write_text(table, encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
