"""Backtest speed: one pass with two rule sets vs one `run` with one, on the same events.

The candidate changes two rules (the wall-clock wait of a late callback and the money cost of
a technician no-show); the other rules are identical and run once. Runs are interleaved and
the medians compared, so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from valeur_monitor.backtest.report import build
from valeur_monitor.backtest.run import Backtest
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.inputs import read_batches
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[1]


def candidate_rules(folder: Path) -> Path:
    """A copy of the shipped rules with two rules changed."""
    out = folder / "candidate"
    out.mkdir(exist_ok=True)
    for f in (ROOT / "rules").glob("*.yml"):
        shutil.copy(f, out / f.name)
    for name, old, new in (("contacts.yml", "scale: {per: 1h, clock: wall, max: 2h}",
                            "scale: {per: 30m, clock: wall, max: 1h}"),
                           ("visits.yml", "money: 3}", "money: 12}")):
        text = (out / name).read_text()
        assert old in text, f"{name} no longer has {old!r}: update the benchmark"
        (out / name).write_text(text.replace(old, new))
    return out


def one_run(path: Path) -> float:
    rules = load_rules([ROOT / "rules"])
    began = time.perf_counter()
    runner = EmbeddedRunner(rules, MemoryStore())
    with path.open("rb") as fh:
        for batch in read_batches(fh, 2000):
            runner.feed(batch)
    runner.finish()
    return time.perf_counter() - began


def one_backtest(path: Path, candidate: Path) -> float:
    baseline, cand = load_rules([ROOT / "rules"]), load_rules([candidate])
    began = time.perf_counter()
    runner = Backtest(baseline, cand)
    with path.open("rb") as fh:
        for batch in read_batches(fh, 2000):
            runner.feed(batch)
    build(runner.finish())
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
    with tempfile.TemporaryDirectory() as tmp:
        candidate = candidate_rules(Path(tmp))
        runs, passes = [], []
        for _ in range(args.runs):
            runs.append(one_run(path))
            passes.append(one_backtest(path, candidate))
    r, p = statistics.median(runs), statistics.median(passes)
    table = (
        f"| measure (median of {args.runs} runs, {events:,} events) | seconds | ratio to run |\n"
        "|---|---|---|\n"
        f"| `run`, shipped rules | {r:.2f} | 1.00 |\n"
        f"| `backtest`, shipped vs a candidate changing 2 rules (one pass, report built) "
        f"| {p:.2f} | {p / r:.2f} |\n")
    print(table)
    Path("bench/results/backtest.md").write_text(table)


if __name__ == "__main__":
    main()
