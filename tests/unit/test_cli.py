"""The CLI end to end on files: run, explain, rules check/test exit codes."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from valeur_monitor.cli.main import app

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

EVENTS = [
    {"id": "e1", "type": "callback.promised", "time": "2026-11-02T10:00:00+01:00",
     "customer": "c1", "ref": "cb1", "data": {"promised_at": "2026-11-02T11:00:00+01:00"}},
    {"id": "e2", "type": "visit.no_show", "time": "2026-11-02T12:00:00+01:00", "customer": "c2",
     "ref": "v1"},
    {"id": "e3", "type": "survey.answered", "time": "2026-11-02T13:00:00+01:00",
     "customer": "c3", "data": {"score": 5}},
]


def _write(path: Path, lines: list[bytes]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_run_writes_ledger_scores_and_dead_letters(tmp_path: Path, name: str) -> None:
    src = tmp_path / name
    _write(src, [orjson.dumps(e) for e in EVENTS] + [b"not json", orjson.dumps(EVENTS[1])])
    ledger, scores, dead = tmp_path / "l.jsonl", tmp_path / "s.csv", tmp_path / "d.jsonl"
    result = runner.invoke(app, ["run", str(src), "--rules", str(ROOT / "rules"), "--ledger",
                                 str(ledger), "--scores", str(scores), "--dead-letters",
                                 str(dead), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "5 records" in result.output and "1 dead" in result.output
    assert "1 duplicates" in result.output
    rows = [orjson.loads(line) for line in ledger.read_bytes().splitlines()]
    assert {(r["customer"], r["rule"], r["outcome"]) for r in rows} == {
        ("c1", "missed-callback", "broken"), ("c2", "technician-no-show", "matched"),
        ("c3", "happy-survey", "matched")}
    with scores.open() as fh:
        by_customer = {r["customer"]: float(r["score"]) for r in csv.DictReader(fh)}
    # decayed (30-day half-life) to the run's stream time, a few hours after the entries
    assert by_customer == pytest.approx({"c1": -5.0, "c2": -11.0, "c3": 2.0}, abs=0.05)
    assert by_customer["c2"] < 0 and by_customer["c2"] != -11.0
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert letters == [{"reason": "malformed_json", "detail": letters[0]["detail"],
                        "record": "not json"}]
    assert "c2" in result.output  # among the customers who lost most

    explained = runner.invoke(app, ["explain", "c2", "--ledger", str(ledger)])
    assert explained.exit_code == 0
    assert "technician-no-show" in explained.output and "-11" in explained.output


def test_run_reads_stdin(tmp_path: Path) -> None:
    data = b"\n".join(orjson.dumps(e) for e in EVENTS) + b"\n"
    result = runner.invoke(app, ["run", "-", "--rules", str(ROOT / "rules"), "--no-progress",
                                 "--dead-letters", str(tmp_path / "d.jsonl")], input=data)
    assert result.exit_code == 0, result.output
    assert "3 records" in result.output


def test_rules_check_exit_codes() -> None:
    assert runner.invoke(app, ["rules", "check", str(ROOT / "rules")]).exit_code == 0
    bad = runner.invoke(app, ["rules", "check", str(ROOT / "tests/data/bad-rules.yml")])
    assert bad.exit_code == 1
    located = [line for line in bad.output.splitlines()
               if line.startswith(str(ROOT / "tests/data/bad-rules.yml") + ":")]
    assert len(located) == 7


def test_rules_test_passes_on_shipped_tests_and_fails_on_a_wrong_expectation(
        tmp_path: Path) -> None:
    ok = runner.invoke(app, ["rules", "test", str(ROOT / "rules/tests")])
    assert ok.exit_code == 0, ok.output
    wrong = tmp_path / "wrong.yml"
    wrong.write_text(f"rules: [{str(ROOT / 'rules')!r}]\ntests:\n  - name: wrong\n"
                     "    events:\n      - {id: e1, type: visit.no_show, time: "
                     "'2026-11-02T09:00:00Z', customer: c1}\n    expect:\n      scores: {c1: 0}\n")
    failed = runner.invoke(app, ["rules", "test", str(wrong)])
    assert failed.exit_code == 1
    assert "score of c1: expected 0, got -11" in failed.output


def test_run_reads_a_real_pipe_on_stdin(tmp_path: Path) -> None:
    """stdin as a pipe (not seekable): no progress position, the run still completes."""
    import subprocess
    import sys

    data = b"\n".join(orjson.dumps(e) for e in EVENTS) + b"\n"
    done = subprocess.run(
        [sys.executable, "-m", "valeur_monitor.cli.main", "run", "-", "--rules",
         str(ROOT / "rules"), "--dead-letters", str(tmp_path / "d.jsonl")],
        input=data, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert b"3 records" in done.stdout


def test_lines_from_a_quiet_pipe_are_not_held_back() -> None:
    """A live producer that pauses: what it already sent is processed before it resumes."""
    import os
    import threading
    import time

    from valeur_monitor.runner.inputs import read_batches

    read_fd, write_fd = os.pipe()
    got: list[tuple[float, int]] = []
    began = time.monotonic()

    def consume() -> None:
        with os.fdopen(read_fd, "rb") as stream:
            for batch in read_batches(stream, 1000):
                got.append((time.monotonic() - began, len(batch)))

    reader = threading.Thread(target=consume)
    reader.start()
    os.write(write_fd, b'{"a": 1}\n{"a": 2}\n{"a": 3')
    time.sleep(1.0)
    assert [n for _, n in got] == [2]  # flushed during the pause, the partial line kept
    os.write(write_fd, b'}\n')
    os.close(write_fd)
    reader.join(timeout=5)
    assert [n for _, n in got] == [2, 1]
    assert got[0][0] < 0.9
