"""bench.ledger_identity compares like with like: `--workers N --against REV` runs REV with the
same number of workers (or leaves notices out of both digests), so a revision compared with
itself is always `identical`.

Since notices joined the canonical digest in one process only (`run --workers N` takes no
notices hook), a sharded run of this tree was compared with a one-process run of REV, and
`--workers 2 --against HEAD` said DIFFERENT for the very same code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from valeur_monitor.simulate import SimulationConfig, write_jsonl

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_a_revision_compared_with_itself_in_shards_is_identical(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=4, customers=40, days=2, bad_rate=0.01))
    done = subprocess.run([sys.executable, "-m", "bench.ledger_identity", str(events),
                           "--workers", "2", "--against", "HEAD"],
                          cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0 and done.stdout.splitlines()[-1].startswith("identical"), (
        done.stdout + done.stderr[-2000:])
