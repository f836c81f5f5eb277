"""`on` rules found by field value give the same rules, in the same order, as testing each."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.engine.event import Event
from valeur_monitor.engine.ruleindex import OnIndex
from valeur_monitor.engine.rules import load_rules_text

TOPICS = ["a", "b", "c", "d", "é", ""]


def _rules() -> Any:
    lines = ["version: 1", "rules:"]
    for i in range(40):
        cond = [f'data.topic == "{TOPICS[i % len(TOPICS)]}"', f'data.queue == "{TOPICS[i % 3]}"',
                'has(data.topic)', 'data.topic != "a"', f"data.topic == '{TOPICS[i % 4]}'",
                None][i % 6]
        lines.append(f"  - id: r{i}\n    on: contact.inbound\n    costs: {{time: 1}}")
        if cond is not None:
            lines.append(f"    if: {json.dumps(cond)}")
    return load_rules_text([("gen.yml", "\n".join(lines) + "\n")])


RULES = _rules()
values = st.one_of(st.sampled_from(TOPICS), st.integers(), st.booleans(), st.none(),
                   st.floats(allow_nan=False), st.lists(st.sampled_from(TOPICS), max_size=2),
                   st.dictionaries(st.sampled_from(TOPICS), st.sampled_from(TOPICS), max_size=1))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["topic", "queue", "other"]), values))
def test_index_agrees_with_testing_each_rule(data: dict[str, Any]) -> None:
    rules = RULES.by_type["contact.inbound"][0]
    index = OnIndex(rules)
    assert index.fields  # the equality rules are indexed
    event = Event(id="e", type="contact.inbound", time=0, customer="c", data=data)
    assert index.matching(event) == [r for r in rules if r.matcher.matches(event)]
