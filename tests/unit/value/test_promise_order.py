"""Every shipped promise: kept on time > kept late (at any delay) > never kept, in virtual time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from valeur_monitor.engine import obligations as O
from valeur_monitor.engine.event import EVENT_TYPES, Event, parse_time
from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.engine.rules.model import ExpectRule
from valeur_monitor.service import Processor
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]
SHIPPED = load_rules([ROOT / "rules"])
OPENED = parse_time("2026-11-16T09:30:00+01:00")   # a Monday morning, business hours
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


def _promise_key(rule: ExpectRule) -> tuple[Any, ...]:
    """Rules sharing a promise (YAML aliases) are valued together: same open, keep, deadline."""
    d = rule.deadline
    return (min(t for m in rule.open for t in m.types), frozenset(t for m in rule.keep
                                                                  for t in m.types),
            d.within, d.tiers, d.at_field, d.offset, d.calendar.name if d.calendar else None)


def _groups(ruleset: RuleSet) -> dict[tuple[Any, ...], list[ExpectRule]]:
    groups: dict[tuple[Any, ...], list[ExpectRule]] = {}
    for rule in ruleset.expect_rules:
        groups.setdefault(_promise_key(rule), []).append(rule)
    return groups


def _data(event_type: str) -> dict[str, Any]:
    """Required data of an opening event, with times a few days ahead."""
    out: dict[str, Any] = {}
    for name, kind in EVENT_TYPES[event_type].items():
        if kind == "time":
            later = OPENED + (4 * HOUR if name == "promised_at" else 3 * DAY)
            if name == "window_end":
                later += 4 * HOUR
            out[name] = _iso(later)
        elif kind == "number":
            out[name] = 3
        else:
            out[name] = "x"
    return out


def _iso(ms: int) -> str:
    from valeur_monitor.engine.event import format_time
    return format_time(ms)


def _total(ruleset: RuleSet, rules: list[ExpectRule], keep_at: int | None,
           horizon: int) -> float:
    """Σ value of this promise's entries (entries caused by its opening event) at `horizon`."""
    rule = rules[0]
    open_type = min(t for m in rule.open for t in m.types)
    keep_type = min(t for m in rule.keep for t in m.types)
    events = [Event("o1", open_type, OPENED, "c1", ref="p1", data=_data(open_type))]
    if keep_at is not None:
        events.append(Event("k1", keep_type, keep_at, "c1", ref="p1"))
    processor = Processor(ruleset, MemoryStore())
    entries = []
    for event in events:
        entries += processor.process_events([event]).entries
    entries += processor.advance_to(horizon).entries
    ids = {r.id for r in rules}
    return sum(e.value for e in entries if e.rule in ids and e.events[0] == "o1")


def _cases() -> list[Any]:
    return [pytest.param(rules, id="+".join(r.id for r in rules))
            for rules in _groups(SHIPPED).values()
            if any(r.broken or r.late or r.kept for r in rules)]


def test_every_shipped_promise_rule_is_covered() -> None:
    covered = {r.id for param in _cases() for r in param.values[0]}
    assert covered == {r.id for r in SHIPPED.expect_rules}
    assert len(covered) >= 7


@pytest.mark.parametrize("rules", _cases())
def test_on_time_beats_late_beats_never(rules: list[ExpectRule]) -> None:
    rule = rules[0]
    open_type = min(t for m in rule.open for t in m.types)
    opening = Event("o1", open_type, OPENED, "c1", ref="p1", data=_data(open_type))
    promise = O.open_promise(rule, opening)
    assert promise is not None, "the scenario must open the promise"
    deadline = promise.deadline
    window = max(r.late_window for r in rules)
    horizon = deadline + window + DAY
    on_time = _total(SHIPPED, rules, max(OPENED + MINUTE, deadline - 10 * MINUTE), horizon)
    never = _total(SHIPPED, rules, None, horizon)
    assert on_time > never, (on_time, never)
    delays = [MINUTE, 10 * MINUTE, 25 * MINUTE, 2 * HOUR, 9 * HOUR, DAY, window - MINUTE]
    for delay in (d for d in delays if 0 < d < window):
        late = _total(SHIPPED, rules, deadline + delay, horizon)
        assert on_time > late > never, (delay, on_time, late, never)
