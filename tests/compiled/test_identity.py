"""The compiled engine books exactly what the pure-Python engine books, byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.ledger_identity import digest
from valeur_monitor.simulate import SimulationConfig, write_jsonl

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

# Run in a child interpreter with the repository first on sys.path: the pure sources there
# shadow the compiled package installed in this venv.
PURE = """
import json, sys
import valeur_monitor.engine.core as core
assert core.__file__.endswith(".py"), core.__file__
from bench.ledger_identity import digest
print(json.dumps(digest(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
"""


def pure_digest(events: Path, rules: Path, workers: int = 1) -> list[object]:
    done = subprocess.run([sys.executable, "-c", PURE, str(events), str(rules), str(workers)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=events.parent,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return list(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("workers", [1, 2])
def test_compiled_ledger_scores_and_dead_letters_equal_the_pure_ones(tmp_path: Path,
                                                                     workers: int) -> None:
    events = tmp_path / "events.jsonl"
    # A week of 400 customers with malformed and late lines: every rule kind, dead letters,
    # the reorder buffer and timers all run.
    written = write_jsonl(events, SimulationConfig(seed=12, customers=400, days=7,
                                                   bad_rate=0.01, disorder=0.02))
    assert written > 20_000
    compiled = list(digest(str(events), str(ROOT / "rules"), workers))
    assert compiled[2] > 10_000, "the run booked ledger entries"
    # Canonical digest, digest of the output files' bytes, entry count: all equal.
    assert compiled == pure_digest(events, ROOT / "rules", workers)
