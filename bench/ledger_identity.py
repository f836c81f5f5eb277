"""Checksum of everything a run produces, to prove an optimisation changed no result.

`python -m bench.ledger_identity FILE` runs `run` with the shipped rules and prints two SHA-256:
one over the ledger (every entry, in (customer, seq) order), the scores, the dead letters and,
in one process, the notices (warnings and alerts; sorted lines), and one over the output files
byte for byte. `--against REV` runs the same
script on another revision of the package (a temporary git worktree) and says whether both
canonical digests agree, and whether the output files agree byte for byte (`--strict`: they
must); `--workers N` runs the sharded runner instead of one process.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson


def digest(path: str, rules: str = "rules", workers: int = 1) -> tuple[str, str, int]:
    """(canonical digest, digest of the output files' bytes, ledger entries) of a run."""
    from valeur_monitor.cli.run_cmd import run_files
    from valeur_monitor.sinks.notices import NoticeWriter

    with tempfile.TemporaryDirectory() as tmp:
        out = {name: str(Path(tmp) / name) for name in ("ledger.jsonl", "scores.jsonl",
                                                         "dead.jsonl", "notices.jsonl")}
        # `run --workers N` takes no hooks (no --notices): notices are compared in one process
        notices = NoticeWriter(out["notices.jsonl"]) if workers == 1 else None
        extra: dict[str, Any] = {"workers": workers} if workers > 1 else {"hooks": [notices]}
        try:
            run_files([path], rules=[rules], ledger=out["ledger.jsonl"],
                      scores=out["scores.jsonl"], dead_letters=out["dead.jsonl"],
                      progress=False, **extra)
        finally:
            if notices is not None:
                notices.close()
        files = hashlib.sha256()
        canonical = hashlib.sha256()
        for name, where in out.items():
            data = Path(where).read_bytes() if Path(where).exists() else b""  # none written
            files.update(name.encode() + b"\0" + data)
            lines = data.splitlines()
            if name == "ledger.jsonl":
                rows = [_unversioned(orjson.loads(line)) for line in lines]
                count = len(rows)
                rows.sort(key=lambda e: (e["customer"], e["seq"]))
                lines = [orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in rows]
            elif name == "scores.jsonl":
                lines = sorted(orjson.dumps(_unversioned(orjson.loads(line)),
                                            option=orjson.OPT_SORT_KEYS) for line in lines)
            else:
                lines.sort()
            for line in lines:
                canonical.update(line + b"\n")
            canonical.update(b"\0")
    return canonical.hexdigest(), files.hexdigest(), count


def _unversioned(row: dict[str, object]) -> dict[str, object]:
    """A row without `rules_version` (a hash of the rule files, stamped since issue 11), so
    revisions before and after it compare on what the rules did."""
    row.pop("rules_version", None)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--rules", default="rules")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--against", help="git revision to compare with (same file and rules)")
    parser.add_argument("--strict", action="store_true",
                        help="with --against: the output files must also agree byte for byte")
    args = parser.parse_args()
    mine, files, count = digest(args.file, args.rules, args.workers)
    print(f"{mine}  {count} entries, canonical order  (this tree, workers={args.workers})")
    print(f"{files}  output files byte for byte")
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
                                  "--rules", os.path.abspath(args.rules),
                                  "--workers", str(args.workers)],
                                 env=env, cwd=tree, check=True, capture_output=True, text=True)
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                           check=True, capture_output=True)
    lines = out.stdout.splitlines()
    theirs, their_files = lines[0].split()[0], lines[1].split()[0]
    print(f"{theirs}  ({args.against})")
    print(f"{their_files}  output files byte for byte ({args.against})")
    same_bytes = their_files == files
    print(("identical" if theirs == mine else "DIFFERENT") + ", output files " + (
        "identical byte for byte" if same_bytes else "differ in bytes"))
    sys.exit(0 if theirs == mine and (same_bytes or not args.strict) else 1)


if __name__ == "__main__":
    main()
