"""Duration-scaled values in the rule language: validation with lines, and what the engine emits."""

from __future__ import annotations

import pytest

from tests.unit.engine.helpers import Driver, ev, rules
from valeur_monitor.engine.rules import load_rules_text
from valeur_monitor.errors import RuleLoadError

pytestmark = pytest.mark.unit

CALLBACK = """
rules:
  - id: cb
    expect:
      open: callback.promised
      keep: callback.completed
      deadline: {at: data.promised_at}
      late_window: 2d
    kept: {benefits: {service: 2}}
    broken: {costs: {time: 2, inconvenience: 3}}
    late:
      recover: 0.6
      costs: {time: 1}
      scale: {per: 1h, clock: wall, max: 2h}
"""


def _issues(body: str) -> list[str]:
    with pytest.raises(RuleLoadError) as info:
        rules(body)
    return [f"{i.line} {i.rule_id} {i.message}" for i in info.value.issues]


def _late_total(minutes_late: int) -> float:
    promised = ev("e1", "callback.promised", "2026-11-02T10:00:00+01:00",
                  promised_at="2026-11-02T14:00:00+01:00")
    done = ev("e2", "callback.completed", f"2026-11-02T14:{minutes_late:02d}:00+01:00")
    d = Driver(rules(CALLBACK)).feed(promised, done, until="2026-11-05T00:00:00+01:00")
    return sum(e.value for e in d.out.entries)


def test_a_late_keep_gives_back_part_of_the_broken_cost_and_pays_the_wait() -> None:
    assert _late_total(30) == pytest.approx(-5 + 3 - 0.5)
    assert _late_total(6) == pytest.approx(-5 + 3 - 0.1)


def test_the_wait_is_capped() -> None:
    promised = ev("e1", "callback.promised", "2026-11-02T10:00:00+01:00",
                  promised_at="2026-11-02T14:00:00+01:00")
    done = ev("e2", "callback.completed", "2026-11-03T14:00:00+01:00")
    d = Driver(rules(CALLBACK)).feed(promised, done, until="2026-11-05T00:00:00+01:00")
    late = [(e.dimension, e.amount, e.value) for e in d.out.entries if e.outcome == "late"]
    assert late == [("time", -1.2, 1.2), ("inconvenience", -1.8, 1.8), ("time", 2.0, -2.0)]


def test_sla_clock_counts_business_hours_only() -> None:
    body = """
rules:
  - id: reply
    expect:
      open: request.opened
      keep: request.agent_replied
      deadline: {within: 2h, calendar: office}
    broken: {costs: {time: 4}}
    late: {recover: 1, costs: {time: 1}, scale: {per: 1h, clock: sla, max: 2h}}
"""
    # Friday 17:00 + 2 business hours = Monday 10:00; replied Monday 11:30 -> 1.5 h overdue
    d = Driver(rules(body)).feed(
        ev("e1", "request.opened", "2026-11-06T17:00:00+01:00"),
        ev("e2", "request.agent_replied", "2026-11-09T11:30:00+01:00"),
        until="2026-11-09T12:00:00+01:00")
    assert [(e.outcome, e.value) for e in d.out.entries] == [
        ("broken", -4.0), ("late", 4.0), ("late", -1.5)]


def test_a_field_of_the_event_scales_an_on_rule() -> None:
    body = """
rules:
  - id: queue-wait
    on: contact.inbound
    costs: {time: 1, energy: 0.5}
    scale: {per: 5m, field: data.wait_s, max: 30m}
"""
    d = Driver(rules(body)).feed(
        ev("e1", "contact.inbound", "2026-11-02T10:00:00+01:00", topic="x", wait_s=450),
        ev("e2", "contact.inbound", "2026-11-02T11:00:00+01:00", topic="x", wait_s=7200),
        ev("e3", "contact.inbound", "2026-11-02T12:00:00+01:00", topic="x"),
        ev("e4", "contact.inbound", "2026-11-02T13:00:00+01:00", topic="x", wait_s="long"),
        until="2026-11-02T14:00:00+01:00")
    got = [(e.events[0], e.dimension, e.value) for e in d.out.entries]
    assert got == [("e1", "time", -1.5), ("e1", "energy", -0.75),
                   ("e2", "time", -6.0), ("e2", "energy", -3.0)]
    # no number to measure: the outcome is counted, with no value
    assert [o[0] for o in d.out.outcomes].count("queue-wait") == 4


def test_scale_mistakes_are_reported_with_their_line() -> None:
    body = """
rules:
  - id: a
    on: contact.inbound
    costs: {time: 1}
    scale: {per: 1h, clock: wall}
  - id: b
    on: contact.inbound
    costs: {time: 1}
    scale: {per: 1h, field: wait_s}
  - id: c
    expect: {open: request.opened, keep: request.agent_replied, deadline: {within: 4h}}
    broken: {costs: {time: 1}, scale: {per: 1h, field: data.wait_s}}
  - id: d
    expect: {open: request.opened, keep: request.agent_replied, deadline: {within: 4h}}
    broken: {costs: {time: 1}}
    late: {costs: {time: 1}, scale: {per: 1h, clock: sla}}
  - id: e
    on: contact.inbound
    costs: {time: -1}
    scale: {per: 0s, field: data.wait_s, clock: wall}
  - id: f
    expect: {open: request.opened, keep: request.agent_replied, deadline: {within: 4h}}
    late: {recover: 0.5}
  - id: g
    on: contact.inbound
    costs: {time: 1}
    scale: {per: 1m, rate: 2}
"""
    found = _issues(body)
    text = "\n".join(found)
    # the body starts at line 9 of the file (settings and a calendar come first)
    assert "14 a `clock` measures the wait past a promise's deadline" in text
    assert "18 b `field` names a number of seconds" in text
    assert "21 c `broken` happens at the deadline" in text
    assert "25 d `clock: sla` needs a deadline with a `calendar`" in text
    assert "28 e a cost is ≥ 0" in text
    assert "29 e duration '0s' must be positive" in text
    assert "29 e `scale` measures exactly one of `clock`" in text
    assert "32 f `recover` gives back part of this rule's `broken` values" in text
    assert "36 g unknown key 'rate'" in text


def test_late_worse_than_never_is_a_warning_and_caps_fix_it() -> None:
    base = """
rules:
  - id: cb
    expect: {open: request.opened, keep: request.agent_replied, deadline: {within: 4h},
             late_window: 1d}
    broken: {costs: {time: 3}}
    late: {recover: 0.5, costs: {time: 1}, scale: {per: 1h, clock: wall%s}}
"""
    warned = rules(base % "")
    assert [(w.line, w.rule_id) for w in warned.warnings] == [(15, "cb")]
    assert "a late keep can score -25.5, worse than never keeping (-3)" in str(warned.warnings[0])
    assert rules(base % ", max: 1h").warnings == ()


def test_recover_only_in_late_and_within_bounds() -> None:
    body = """
rules:
  - id: cb
    expect: {open: request.opened, keep: request.agent_replied, deadline: {within: 4h}}
    kept: {benefits: {service: 1}, recover: 0.5}
    broken: {costs: {time: 3}}
    late: {recover: 0.5}
  - id: cb2
    expect: {open: request.opened, keep: request.agent_replied, deadline: {within: 4h}}
    broken: {costs: {time: 3}}
    late: {recover: 1.5}
"""
    text = "\n".join(_issues(body))
    assert "13 cb `recover` belongs to `late`" in text
    assert "19 cb2 late.recover: Input should be less than or equal to 1" in text


def test_load_rules_text_without_calendar_helper() -> None:
    with pytest.raises(RuleLoadError):
        load_rules_text([("x.yml", "version: 1\nrules:\n  - id: a\n    on: visit.no_show\n"
                         "    costs: {time: 1}\n    scale: {per: 1h}\n")])
