"""What people see: tables readable at 80 columns and in a pipe, --json summaries, one error
line without a traceback, the license as an SPDX expression in the installed metadata."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from valeur_monitor.simulate import SimulationConfig, write_jsonl

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("valeur-monitor"))


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """The real command with stdout a pipe (as in `... | cat`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env["COLUMNS"] = str(columns)
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          check=False, env=env)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("out") / "events.jsonl"
    write_jsonl(path, SimulationConfig(seed=3, customers=120, days=3, bad_rate=0.002))
    return path


def word_per_line_cells(text: str) -> int:
    """Table records spread over 4 lines or more: the 'one word per line' breakage."""
    broken = run = 0
    for line in text.splitlines():
        if not line.startswith("│"):
            run = 0
            continue
        first = line.strip("│").split("│")[0].strip()
        run = run + 1 if not first else 0
        if run == 3:
            broken += 1
    return broken


def test_run_and_explain_read_well_at_80_columns_in_a_pipe(events: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    done = cli("run", str(events), "--ledger", str(ledger), "--dead-letters",
               str(tmp_path / "dead.jsonl"), "--no-progress")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    tables = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert len(tables) > 20 and max(len(line) for line in tables) <= 80
    assert word_per_line_cells(done.stdout) == 0
    # Paths are not hard-wrapped (they stay copyable).
    assert any(str(tmp_path / "dead.jsonl") in line for line in lines)

    customer = orjson.loads(ledger.read_bytes().splitlines()[0])["customer"]
    shown = cli("explain", customer, "--ledger", str(ledger))
    assert shown.returncode == 0, shown.stderr
    assert word_per_line_cells(shown.stdout) == 0
    assert "events:" in shown.stdout
    entries = [line for line in shown.stdout.splitlines() if line.startswith("#")]
    rows = [orjson.loads(r) for r in ledger.read_bytes().splitlines()]
    assert len(entries) == sum(1 for r in rows if r["customer"] == customer)


def test_run_and_explain_json(events: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    done = cli("run", str(events), "--ledger", str(ledger), "--dead-letters",
               str(tmp_path / "dead.jsonl"), "--json")
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    rows = [orjson.loads(r) for r in ledger.read_bytes().splitlines()]
    assert summary["ledger_entries"] == len(rows)
    assert summary["records"] == summary["events_applied"] + sum(
        summary["dead_letters"].values()) + summary["duplicates"] + summary["late"]
    assert round(summary["value"]["net"], 6) == round(sum(r["value"] for r in rows), 6)
    assert summary["worst"] and all(w["score"] < 0 for w in summary["worst"])

    customer = summary["worst"][0]["customer"]
    shown = cli("explain", customer, "--ledger", str(ledger), "--json")
    assert shown.returncode == 0, shown.stderr
    data = orjson.loads(shown.stdout)
    mine = [r for r in rows if r["customer"] == customer]
    assert len(data["entries"]) == len(mine)
    assert data["points"] == pytest.approx(sum(r["value"] for r in mine))


def test_errors_are_one_line_with_secrets_masked(tmp_path: Path) -> None:
    for store in ("rediss://u:hunter2-x/y#z?w@127.0.0.1:1/0?nosuch=1",
                  "redis://127.0.0.1:1/0?password=hunter2-x/y#z"):
        done = cli("run", "-", "--store", store, "--dead-letters", str(tmp_path / "d.jsonl"))
        assert done.returncode == 2
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert "hunter2" not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr


def test_license_is_an_spdx_expression() -> None:
    meta = importlib.metadata.metadata("valeur-monitor")
    assert meta["License-Expression"] == "Apache-2.0"
