"""Workers publish the full ledger to an append-only topic; Redis keeps only a recent window."""

from __future__ import annotations

import orjson

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.kafka.admin import load_topology
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.streaming.outputs import OutputTopics, build_messages


def test_every_entry_of_a_batch_goes_to_the_ledger_topic_in_order() -> None:
    processor = Processor(load_rules(["rules"]), MemoryStore())
    lines = [orjson.dumps(r) for r in simulate(SimulationConfig(seed=2, customers=30, days=3))]
    result = processor.process(lines)
    result.absorb(processor.advance_to(processor.max_event_time + 86_400_000))
    assert result.entries
    messages = build_messages(result, OutputTopics("s", "a", "d", "led"))
    ledger = [m for m in messages if m.topic == "led"]
    assert [orjson.loads(m.value) for m in ledger] == [e.to_json() for e in result.entries]
    assert [m.key for m in ledger] == [e.customer.encode() for e in result.entries]
    # Without a ledger topic (older callers), nothing else changes.
    assert [m for m in build_messages(result, OutputTopics("s", "a", "d"))] == [
        m for m in messages if m.topic != "led"]


def test_the_topology_declares_an_append_only_ledger_topic() -> None:
    spec = load_topology("streams/topics.yaml").topics["ledger"]
    assert spec.name == "valeur.ledger"
    assert spec.configs["cleanup.policy"] == "delete"
    assert spec.configs["retention.ms"] == "-1"
