"""The rule-set version: a content hash (+label), stamped on ledger entries and score updates."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from valeur_monitor.engine.rules import load_rules, load_rules_text
from valeur_monitor.errors import RuleLoadError
from valeur_monitor.service import Processor
from valeur_monitor.sinks.files import LedgerWriter, ScoresWriter
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.streaming.outputs import OutputTopics, build_messages

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]
RULE = "version: 1\nrules:\n  - id: a\n    on: visit.no_show\n    costs: {time: %d}\n"


def test_same_content_same_version_anywhere_and_any_edit_changes_it(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "rules", copy, ignore=shutil.ignore_patterns("tests"))
    shipped = load_rules([ROOT / "rules"]).version
    assert len(shipped) == 12 and shipped.isalnum()
    assert load_rules([copy]).version == shipped
    (copy / "visits.yml").write_text((copy / "visits.yml").read_text() + "\n# note\n")
    assert load_rules([copy]).version != shipped


def test_label_from_settings_or_argument() -> None:
    plain = load_rules_text([("r.yml", RULE % 1)]).version
    labelled = load_rules_text([("r.yml", "settings: {label: candidate-2}\n" + RULE % 1)])
    assert labelled.version.endswith("+candidate-2")
    assert load_rules_text([("r.yml", RULE % 1)], label="hotfix.3").version == plain + "+hotfix.3"
    with pytest.raises(RuleLoadError) as info:
        load_rules_text([("r.yml", RULE % 1)], label="no spaces")
    assert "bad rule-set label" in str(info.value.issues[0])
    with pytest.raises(RuleLoadError) as info:
        load_rules_text([("r.yml", "settings: {label: 'a b'}\n" + RULE % 1)])
    assert info.value.issues[0].line == 1


def test_entries_score_rows_and_score_updates_carry_the_version(tmp_path: Path) -> None:
    ruleset = load_rules_text([("r.yml", RULE % 2)], label="v1")
    store = MemoryStore()
    line = (b'{"id":"e1","type":"visit.no_show","time":"2026-11-02T10:00:00Z",'
            b'"customer":"c1","ref":"v1"}')
    processor = Processor(ruleset, store)
    result = processor.process([line])
    result.absorb(processor.advance_to(processor.max_event_time))
    assert [e.rules_version for e in result.entries] == [ruleset.version]
    assert result.rules_version == ruleset.version
    ledger = tmp_path / "ledger.jsonl"
    writer = LedgerWriter(ledger)
    writer.write(result.entries)
    writer.close()
    assert orjson.loads(ledger.read_text())["rules_version"] == ruleset.version
    scores = tmp_path / "scores.csv"
    sw = ScoresWriter(scores, ruleset.version)
    sw.write([v for c in store.customers() if (v := store.score(c)) is not None])
    sw.close()
    assert scores.read_text().splitlines()[1].endswith("," + ruleset.version)
    messages = build_messages(result, OutputTopics("s", "a", "d"))
    assert orjson.loads(messages[0].value)["rules_version"] == ruleset.version
    assert isinstance(store.score("c1"), ScoreView)
