"""Duplicates, lateness, permutations within the allowed lateness, and the late-event policy."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.engine.helpers import Driver, ev, rules, run_processor, t
from valeur_monitor.engine.event import Event

pytestmark = pytest.mark.unit

BODY = """
rules:
  - id: reply
    expect:
      open: request.opened
      keep: request.agent_replied
      pause: {on: request.status_changed, if: 'data.status == "pending"'}
      resume: request.customer_replied
      deadline: {within: 30m}
      warn: 10m
    kept: {benefits: {service: 1}}
    broken: {costs: {time: 3}}
    late: {costs: {time: 1}}
  - id: repeat
    repeat: {on: contact.inbound, key: data.topic, within: 1h}
    costs: {effort: 2}
  - id: happy
    on: survey.answered
    if: 'data.score >= 4'
    benefits: {experience: 2}
alerts:
  - id: low
    score_below: -10
"""
RULES = rules(BODY)


def test_duplicate_ids_have_no_effect_even_across_batches() -> None:
    e = ev("e1", "survey.answered", "2026-11-02T09:00:00Z", score=5)
    d = Driver(RULES).feed(e, e, until="2026-11-02T10:00:00Z")
    d.feed(e, until="2026-11-02T11:00:00Z")
    assert d.outcomes() == [("happy", "matched", t("2026-11-02T09:00:00Z"))]
    assert d.out.duplicates == 2


def test_an_event_behind_the_customers_clock_is_applied_late_and_flagged() -> None:
    d = Driver(RULES).feed(ev("e1", "request.opened", "2026-11-02T09:00:00Z"),
                           until="2026-11-02T10:00:00Z")
    assert d.outcomes() == [("reply", "broken", t("2026-11-02T09:30:00Z"))]
    d.feed(ev("e2", "request.agent_replied", "2026-11-02T09:20:00Z"))
    # the broken entry stays (no silent rewrite); the late reply adds a compensating entry
    assert d.outcomes()[-1] == ("reply", "late", t("2026-11-02T09:20:00Z"))
    assert d.out.entries[-1].late is True
    assert d.out.late == 1


def test_older_than_the_late_horizon_is_refused() -> None:
    d = Driver(RULES).feed(ev("e1", "survey.answered", "2026-11-20T09:00:00Z", score=5),
                           until="2026-11-20T10:00:00Z")
    d.feed(ev("e2", "survey.answered", "2026-11-02T09:00:00Z", score=5))
    assert [e.id for e in d.out.too_late] == ["e2"]
    assert len(d.out.entries) == 1



def test_dedupe_marks_are_dropped_exactly_when_they_age_out() -> None:
    """Daily pruning keeps the marks the late horizon can still need, in arrival order, and no
    others: the same marks whether or not a prune had anything to drop (21 days, 2 events a
    day, some out of order)."""
    from valeur_monitor.engine.event import format_time
    d, horizon = Driver(RULES), 7 * 86_400_000
    expected: dict[str, int] = {}
    pruned, start = d.state.pruned, t("2026-11-02T08:00:00Z")
    for i in range(42):
        at = start + i * 43_200_000 - (3_600_000 if i % 5 == 3 else 0)
        d.feed(ev(f"e{i}", "survey.answered", format_time(at), score=4),
               until=format_time(at + 60_000))
        expected[f"e{i}"] = at
        if d.state.pruned != pruned:
            pruned = d.state.pruned
            expected = {k: v for k, v in expected.items() if v >= pruned - horizon}
        assert list(d.state.seen.items()) == list(expected.items())
    assert 10 <= len(d.state.seen) <= 16   # a week and a day of marks at most, never all 42
    d.feed(ev("e41", "survey.answered", format_time(start + 41 * 43_200_000), score=4))
    assert d.out.duplicates == 1

def _story(customer: str, base: str) -> list[Event]:
    b = t(base)

    def at(minutes: int) -> str:
        from valeur_monitor.engine.event import format_time
        return format_time(b + minutes * 60_000)

    return [
        ev(f"{customer}-1", "request.opened", at(0), customer, ref=f"{customer}-r"),
        ev(f"{customer}-2", "contact.inbound", at(1), customer, topic="bill"),
        ev(f"{customer}-3", "request.status_changed", at(2), customer, ref=f"{customer}-r",
           status="pending"),
        ev(f"{customer}-4", "contact.inbound", at(3), customer, topic="bill"),
        ev(f"{customer}-5", "request.customer_replied", at(20), customer, ref=f"{customer}-r"),
        ev(f"{customer}-6", "survey.answered", at(21), customer, score=5),
        ev(f"{customer}-7", "request.opened", at(22), customer, ref=f"{customer}-q"),
        ev(f"{customer}-8", "request.agent_replied", at(40), customer, ref=f"{customer}-r"),
        ev(f"{customer}-9", "contact.inbound", at(41), customer, topic="bill"),
        ev(f"{customer}-10", "request.agent_replied", at(80), customer, ref=f"{customer}-q"),
    ]


def _ledger(store_events: list[list[Event]]) -> list[tuple[object, ...]]:
    store = run_processor(RULES, store_events, t("2026-11-03T00:00:00Z"))
    return [(e.customer, e.seq, e.rule, e.outcome, e.dimension, e.value, e.time, e.events,
             e.late) for c in store.customers() for e in store.ledger(c)]


EVENTS = _story("a", "2026-11-02T09:00:00Z") + _story("b", "2026-11-02T09:02:00Z")
BASELINE = _ledger([[e] for e in sorted(EVENTS, key=Event.sort_key)])


def _shuffle_within(events: list[Event], rng: random.Random, bound_ms: int) -> list[Event]:
    # jitter each event's arrival by less than the lateness, then sort by arrival
    keyed = [(e.time + rng.randrange(bound_ms), i, e) for i, e in enumerate(events)]
    return [e for _, _, e in sorted(keyed)]


def test_the_baseline_is_not_trivial() -> None:
    outcomes = {(row[2], row[3]) for row in BASELINE}
    assert {("reply", "broken"), ("reply", "late"), ("repeat", "repeat"),
            ("happy", "matched")} <= outcomes


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 7))
def test_any_arrival_order_within_lateness_gives_the_same_ledger(seed: int, batch: int) -> None:
    rng = random.Random(seed)
    arrival = _shuffle_within(EVENTS, rng, 5 * 60_000)
    if rng.random() < 0.5:
        arrival = [*arrival, arrival[rng.randrange(len(arrival))]]  # plus a redelivery
    batches = [arrival[i:i + batch] for i in range(0, len(arrival), batch)]
    assert _ledger(batches) == BASELINE
