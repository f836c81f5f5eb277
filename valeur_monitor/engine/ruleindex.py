"""`on` rules of one event type, indexed by the data field value their condition requires.

Rules such as `on: contact.inbound, if: 'data.topic == "billing"'` are looked up by the
event's `data.topic` instead of being tested one by one, so a rule set with a thousand of them
costs an event about what fifteen did. A condition of exactly that shape is true only when the
field holds that very string (any other type compares false in CEL: property-tested), so the
lookup gives the same rules, returned in rule-file order like the one-by-one test.
"""

from __future__ import annotations

import re

from valeur_monitor.engine.event import Event
from valeur_monitor.engine.rules.model import OnRule

_EQUALS = re.compile(r'^\s*data\.([A-Za-z_][A-Za-z0-9_]*)\s*==\s*"([^"\\]*)"\s*$')
MIN_INDEXED = 4   # fewer rules on one field are tested one by one (cheaper than a lookup)


def equality(rule: OnRule) -> tuple[str, str] | None:
    """(field, literal) when the rule's condition is exactly `data.<field> == "<literal>"`."""
    condition = rule.matcher.condition
    if condition is None:
        return None
    match = _EQUALS.match(condition.source)
    return (match.group(1), match.group(2)) if match else None


class OnIndex:
    """The `on` rules of one event type: some tested one by one, some found by field value."""

    def __init__(self, rules: tuple[OnRule, ...]) -> None:
        by_field: dict[str, dict[str, list[tuple[int, OnRule]]]] = {}
        for position, rule in enumerate(rules):
            found = equality(rule)
            if found is not None:
                by_field.setdefault(found[0], {}).setdefault(found[1], []).append(
                    (position, rule))
        indexed = {f: v for f, v in by_field.items() if sum(map(len, v.values())) >= MIN_INDEXED}
        skip = {id(r) for values in indexed.values() for hits in values.values() for _, r in hits}
        self.tested = tuple((p, r) for p, r in enumerate(rules) if id(r) not in skip)
        self.fields = tuple((f, {k: tuple(v) for k, v in values.items()})
                            for f, values in sorted(indexed.items()))
        self.simple = not self.fields

    def matching(self, event: Event) -> list[OnRule]:
        """The rules whose matcher accepts `event`, in rule-file order."""
        if self.simple:
            return [r for _, r in self.tested if r.matcher.matches(event)]
        found = [(p, r) for p, r in self.tested if r.matcher.matches(event)]
        data = event.data
        for field, values in self.fields:
            value = data.get(field)
            if isinstance(value, str):
                hits = values.get(value)
                if hits:
                    found.extend(hits)
        found.sort(key=_first)
        return [r for _, r in found]


def _first(item: tuple[int, OnRule]) -> int:
    return item[0]
