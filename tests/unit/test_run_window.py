"""`run` on the memory store keeps each customer's recent ledger window, the file every entry."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from valeur_monitor.cli.run_cmd import run_files
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.runner.embedded import RunReport
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.base import Store
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.unit


def test_memory_run_keeps_the_rules_window_and_the_sink_every_entry(tmp_path: Path) -> None:
    events, ledger = tmp_path / "events.jsonl", tmp_path / "ledger.jsonl"
    write_jsonl(events, SimulationConfig(seed=4, customers=30, days=4))
    kept: dict[str, list[tuple[str, int]]] = {}
    cap: list[int] = []

    def after(store: Store, rules: RuleSet, report: RunReport) -> None:
        assert isinstance(store, MemoryStore)
        cap.append(rules.settings.ledger_cap)
        kept.update({c: [(e.customer, e.seq) for e in store.ledger(c)]
                     for c in store.customers()})

    report = run_files([str(events)], ledger=str(ledger), progress=False, then=after,
                       dead_letters=str(tmp_path / "dead.jsonl"))
    written: dict[str, list[tuple[str, int]]] = {}
    for line in ledger.read_bytes().splitlines():
        row = orjson.loads(line)
        written.setdefault(row["customer"], []).append((row["customer"], row["seq"]))
    assert sum(map(len, written.values())) == report.entries > 0
    assert max(map(len, written.values())) > cap[0] == 20   # some customers outgrow the window
    for customer, entries in written.items():
        assert kept[customer] == entries[-cap[0]:]          # the most recent ones, in order
