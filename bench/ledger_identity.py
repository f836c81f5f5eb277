"""Checksum of everything a run produces, to prove an optimisation changed no result.

`python -m bench.ledger_identity FILE` prints one SHA-256 over the ledger (every entry, in
(customer, seq) order), the notices, the final scores and the dead-letter reasons of an embedded
run with the shipped rules. `--against REV` runs the same script on another revision of the
package (a temporary git worktree) and says whether both digests agree; `--workers N` runs the
sharded runner instead of one process.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson


def digest(path: str, rules: str = "rules", workers: int = 1) -> tuple[str, int]:
    """(hex digest, ledger entries) of an embedded run over `path`."""
    from valeur_monitor.engine.rules import load_rules
    from valeur_monitor.runner.embedded import EmbeddedRunner
    from valeur_monitor.runner.inputs import open_input, read_batches
    from valeur_monitor.service import BatchResult
    from valeur_monitor.store.memory import MemoryStore

    ruleset = load_rules([rules])
    entries: list[bytes] = []
    notices: list[bytes] = []
    dead: list[bytes] = []
    scores: list[bytes] = []
    if workers > 1:
        from valeur_monitor.runner.sharded import run_sharded  # type: ignore[import-not-found]

        result = run_sharded([path], [rules], workers)
        entries = [orjson.dumps(e.to_json()) for e in result.entries]
        notices = [orjson.dumps(n.to_json()) for n in result.notices]
        dead = [d.reason.encode() + b" " + d.raw for d in result.dead_letters]
        scores = [orjson.dumps(s) for s in result.scores]
    else:
        store = MemoryStore()

        def collect(result: BatchResult, _seconds: float) -> None:
            entries.extend(orjson.dumps(e.to_json()) for e in result.entries)
            notices.extend(orjson.dumps(n.to_json()) for n in result.notices)
            dead.extend(d.reason.encode() + b" " + d.raw for d in result.dead_letters)

        runner = EmbeddedRunner(ruleset, store, on_batch=[collect])
        with open_input(path) as stream:
            for batch in read_batches(stream, 2000):
                runner.feed(batch)
        runner.finish()
        for customer in store.customers():
            view = store.score(customer)
            if view is not None:
                scores.append(score_line(customer, view.total, view.at, view.dims, view.reasons))
    h = hashlib.sha256()
    parsed = sorted((orjson.loads(e) for e in entries), key=lambda e: (e["customer"], e["seq"]))
    for part in ([orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in parsed],
                 sorted(notices), sorted(dead), sorted(scores)):
        for item in part:
            h.update(item)
            h.update(b"\n")
        h.update(b"\x00")
    return h.hexdigest(), len(parsed)


def score_line(customer: str, total: float, at: int, dims: dict[str, float],
               reasons: dict[str, float]) -> bytes:
    """One customer's final score, exact (same operations in the same order, same floats)."""
    return orjson.dumps([customer, total, at, sorted(dims.items()), sorted(reasons.items())])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--rules", default="rules")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--against", help="git revision to compare with (same file and rules)")
    args = parser.parse_args()
    mine, count = digest(args.file, args.rules, args.workers)
    print(f"{mine}  {count} entries  (this tree, workers={args.workers})")
    if not args.against:
        return
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "rev"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree),
                        args.against], check=True, capture_output=True)
        try:
            env = {**os.environ, "PYTHONPATH": str(tree)}
            out = subprocess.run([sys.executable, __file__, os.path.abspath(args.file),
                                  "--rules", os.path.abspath(args.rules)],
                                 env=env, cwd=tree, check=True, capture_output=True, text=True)
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                           check=True, capture_output=True)
    theirs = out.stdout.split()[0]
    print(f"{theirs}  ({args.against})")
    print("identical" if theirs == mine else "DIFFERENT")
    sys.exit(0 if theirs == mine else 1)


if __name__ == "__main__":
    main()
