"""The service function: batches, dead letters, draining, and hot reload of rules."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from valeur_monitor.engine.event import parse_time
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.service import Processor
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.unit

RULE = "version: 1\nrules:\n  - id: no-show\n    on: visit.no_show\n    costs: {{time: {n}}}\n"


def _line(i: int, minute: int = 0) -> bytes:
    return orjson.dumps({"id": f"e{i}", "type": "visit.no_show", "customer": "c1",
                         "time": f"2026-11-02T09:{minute:02d}:00Z"})


def test_a_failed_reload_keeps_the_running_rules(tmp_path: Path) -> None:
    rules = tmp_path / "r.yml"
    rules.write_text(RULE.format(n=1))
    processor = Processor(load_rules([str(rules)]), MemoryStore())
    processor.process([_line(1)])
    rules.write_text(RULE.format(n=1) + "    colour: red\n")
    issues = processor.reload([str(rules)])
    assert [i.line for i in issues] == [6] and "unknown key 'colour'" in issues[0].message
    processor.process([_line(2, 10)])
    rules.write_text(RULE.format(n=5))
    assert processor.reload([str(rules)]) == []
    processor.process([_line(3, 20)])
    processor.advance_to(parse_time("2026-11-02T10:00:00Z"))
    values = [e.value for e in processor.store.ledger("c1")]
    # e1 was released (stream time passed it) under the first rules; e2 waited in the reorder
    # buffer until after the reload; nothing already written is rewritten
    assert values == [-1, -5, -5]


def test_dead_letters_keep_the_original_bytes_and_the_batch_goes_on(tmp_path: Path) -> None:
    processor = Processor(load_rules(["rules"]), MemoryStore())
    bad = b'{"id": "x", "type": "visit.no_show", "customer": "c1", "time": "soon"}'
    result = processor.process([bad, _line(1)])
    assert [(d.reason, d.raw) for d in result.dead_letters] == [("bad_time", bad)]
    assert result.received == 2
    drained = processor.advance_to(parse_time("2026-11-02T10:00:00Z"))
    assert [e.rule for e in drained.entries] == ["technician-no-show"] * 3
