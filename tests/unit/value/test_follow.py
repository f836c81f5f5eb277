"""`run --follow`: appended lines are scored as they come; a reload switches between batches."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import orjson
import pytest

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.reload import Reloader
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.follow import follow_file
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


def _no_show(i: int, hour: int) -> bytes:
    return orjson.dumps({"id": f"e{i}", "type": "visit.no_show", "customer": f"c{i}",
                         "ref": f"v{i}", "time": f"2026-11-02T{hour:02d}:00:00Z"}) + b"\n"


def _wait(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_follow_scores_appended_lines_and_reloads_between_batches(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    ruleset = load_rules([rules])
    store = MemoryStore()
    runner = EmbeddedRunner(ruleset, store)
    reloader = Reloader([str(rules)])
    events = tmp_path / "events.jsonl"
    events.write_bytes(_no_show(1, 8) + _no_show(2, 9))
    stop = threading.Event()
    thread = threading.Thread(target=follow_file, args=(events, runner, reloader, stop),
                              kwargs={"poll": 0.05})
    thread.start()
    try:
        _wait(lambda: runner.processor.max_event_time > 0)
        with events.open("ab") as fh:           # half a line, then the rest
            line = _no_show(3, 10)
            fh.write(line[:20])
            fh.flush()
            time.sleep(0.2)
            fh.write(line[20:])
        _wait(lambda: runner.report.received == 3)
        visits = rules / "visits.yml"
        visits.write_text(visits.read_text().replace("money: 3}", "money: 9}"))
        reloader.request()
        _wait(lambda: bool(reloader.switches))
        with events.open("ab") as fh:
            fh.write(_no_show(4, 12) + _no_show(5, 13))
        _wait(lambda: runner.report.received == 5)
    finally:
        stop.set()
        thread.join(10)
    runner.finish()
    switch = reloader.switches[0]
    assert switch.positions == {0: 3} and switch.old == ruleset.version
    money = {c: next(e for e in store.ledger(c) if e.dimension == "money")
             for c in ("c1", "c2", "c3", "c4", "c5")}
    # c1 and c2 were released (stream time passed them) before the switch: old rules
    assert {c: (e.value, e.rules_version == switch.old) for c, e in money.items()} == {
        "c1": (-3.0, True), "c2": (-3.0, True), "c3": (-9.0, False), "c4": (-9.0, False),
        "c5": (-9.0, False)}


def test_run_follow_command_reloads_on_rules_reload_and_ends_on_sigint(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    cli = str(Path(sys.executable).with_name("valeur-monitor"))
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    events, ledger, pid = tmp_path / "events.jsonl", tmp_path / "ledger.jsonl", tmp_path / "p"
    events.write_bytes(_no_show(1, 8))
    env = {**os.environ, "VALEUR_RULES": str(rules)}
    env.pop("VALEUR_REDIS_URL", None)
    proc = subprocess.Popen([cli, "run", str(events), "--follow", "--pid-file", str(pid),
                             "--ledger", str(ledger), "--no-progress", "--store", "memory",
                             "--dead-letters", str(tmp_path / "dead.jsonl")],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        _wait(pid.exists)
        time.sleep(1.0)
        (rules / "zz.yml").write_text("version: 1\nrules: [{id: x, on: nope}]\n")
        done = subprocess.run([cli, "rules", "reload", "--pid-file", str(pid)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "reload requested from 1" in done.stdout
        time.sleep(1.0)
        (rules / "zz.yml").unlink()
        visits = rules / "visits.yml"
        visits.write_text(visits.read_text().replace("money: 3}", "money: 9}"))
        subprocess.run([cli, "rules", "reload", "--pid-file", str(pid)], env=env, check=True,
                       capture_output=True, timeout=60)
        time.sleep(1.0)
        with events.open("ab") as fh:
            fh.write(_no_show(2, 12))
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    text = err.decode()
    assert "reload(s) refused" in text and "rules reloaded" in text
    rows = [orjson.loads(line) for line in ledger.read_bytes().splitlines()]
    money = {r["customer"]: r["value"] for r in rows if r["dimension"] == "money"}
    assert money == {"c1": -9.0, "c2": -9.0} or money == {"c1": -3.0, "c2": -9.0}
    assert len({r["rules_version"] for r in rows if r["customer"] == "c2"}) == 1
