"""`expect` rules in virtual time: business hours, pause/resume, warnings, late, quiet customers."""

from __future__ import annotations

import pytest

from tests.unit.engine.helpers import Driver, ev, rules, t

pytestmark = pytest.mark.unit

REPLY = """
rules:
  - id: reply
    expect:
      open: request.opened
      keep: request.agent_replied
      cancel: request.resolved
      pause: {on: request.status_changed, if: 'data.status == "pending"'}
      resume: request.customer_replied
      deadline: {within: 4h, calendar: office}
      warn: 1h
    kept: {benefits: {service: 1}}
    broken: {costs: {time: 3}}
    late: {costs: {time: 1}}
"""


def test_business_hours_skip_the_weekend() -> None:
    d = Driver(rules(REPLY)).feed(ev("e1", "request.opened", "2026-11-06T16:00:00+01:00"),
                                  until="2026-11-09T18:00:00+01:00")
    assert d.outcomes() == [("reply", "broken", t("2026-11-09T11:00:00+01:00"))]


def test_business_hours_skip_a_holiday() -> None:
    d = Driver(rules(REPLY)).feed(ev("e1", "request.opened", "2026-11-10T17:00:00+01:00"),
                                  until="2026-11-13T00:00:00+01:00")
    # Tue 17-18 (1h), Wed 11 Nov closed, Thu 09-12 (3h)
    assert d.outcomes() == [("reply", "broken", t("2026-11-12T12:00:00+01:00"))]


def test_pause_stops_the_sla_clock_and_resume_restarts_it() -> None:
    d = Driver(rules(REPLY)).feed(
        ev("e1", "request.opened", "2026-11-02T09:00:00+01:00"),
        ev("e2", "request.status_changed", "2026-11-02T11:00:00+01:00", status="pending"),
        ev("e3", "request.customer_replied", "2026-11-04T10:00:00+01:00"),
        until="2026-11-05T00:00:00+01:00")
    # 2h used before the pause, 2h left from Wed 10:00 -> 12:00; two paused days cost nothing
    assert d.outcomes() == [("reply", "broken", t("2026-11-04T12:00:00+01:00"))]


def test_a_paused_promise_never_breaks_and_is_dropped_after_max_pause() -> None:
    d = Driver(rules(REPLY)).feed(
        ev("e1", "request.opened", "2026-11-02T09:00:00+01:00"),
        ev("e2", "request.status_changed", "2026-11-02T10:00:00+01:00", status="pending"),
        until="2026-11-30T00:00:00+01:00")
    assert d.outcomes() == []
    assert d.engine.next_due(d.state) == t("2026-12-02T10:00:00+01:00")  # default max_pause 30d
    d.feed(until="2026-12-03T00:00:00+01:00")
    assert d.state.promises == {} and d.outcomes() == []
    d.feed(ev("e3", "request.customer_replied", "2026-12-03T10:00:00+01:00"),
           until="2026-12-10T00:00:00+01:00")
    assert d.outcomes() == []  # nothing left to resume


def test_warning_fires_once_before_the_deadline() -> None:
    d = Driver(rules(REPLY)).feed(ev("e1", "request.opened", "2026-11-02T09:00:00+01:00"),
                                  until="2026-11-02T12:30:00+01:00")
    assert [(n.kind, n.time) for n in d.out.notices] == [
        ("warning", t("2026-11-02T12:00:00+01:00"))]
    assert d.outcomes() == []
    d.feed(until="2026-11-02T14:00:00+01:00")
    assert len(d.out.notices) == 1
    assert d.outcomes() == [("reply", "broken", t("2026-11-02T13:00:00+01:00"))]


def test_kept_late_adds_its_own_entry_after_the_broken_one() -> None:
    d = Driver(rules(REPLY)).feed(
        ev("e1", "request.opened", "2026-11-02T09:00:00+01:00"),
        ev("e2", "request.agent_replied", "2026-11-02T15:00:00+01:00"),
        until="2026-11-03T00:00:00+01:00")
    assert d.outcomes() == [("reply", "broken", t("2026-11-02T13:00:00+01:00")),
                            ("reply", "late", t("2026-11-02T15:00:00+01:00"))]
    assert d.state.score.total == -4
    assert d.state.promises == {}


def test_quiet_customer_breaks_by_advancing_time_alone() -> None:
    d = Driver(rules(REPLY)).feed(ev("e1", "request.opened", "2026-11-02T09:00:00+01:00"),
                                  until="2026-11-02T09:00:00+01:00")
    assert d.outcomes() == []
    due = d.engine.next_due(d.state)
    assert due == t("2026-11-02T12:00:00+01:00")  # the warning comes first
    d.feed(until="2026-11-02T13:00:00+01:00")  # no event at all
    assert d.outcomes() == [("reply", "broken", t("2026-11-02T13:00:00+01:00"))]


def test_kept_on_time_and_cancelled() -> None:
    d = Driver(rules(REPLY)).feed(
        ev("e1", "request.opened", "2026-11-02T09:00:00+01:00"),
        ev("e2", "request.agent_replied", "2026-11-02T13:00:00+01:00"),  # exactly the deadline
        ev("e3", "request.opened", "2026-11-02T09:00:00+01:00", ref="r2"),
        ev("e4", "request.resolved", "2026-11-02T10:00:00+01:00", ref="r2"),
        until="2026-11-06T00:00:00+01:00")
    assert d.outcomes() == [("reply", "kept", t("2026-11-02T13:00:00+01:00"))]
    assert ("reply", "cancelled", "support", "phone") in d.out.outcomes


def test_deadline_from_a_field_with_negative_offset_and_reschedule() -> None:
    body = """
rules:
  - id: confirm
    expect:
      open: [visit.scheduled, visit.rescheduled]
      keep: visit.confirmed
      cancel: [visit.cancelled, visit.rescheduled]
      deadline: {at: data.window_start, offset: -24h}
    broken: {costs: {inconvenience: 2}}
"""
    window = {"window_start": "2026-11-05T08:00:00+01:00",
              "window_end": "2026-11-05T12:00:00+01:00"}
    later = {"window_start": "2026-11-09T08:00:00+01:00", "window_end": "2026-11-09T12:00:00+01:00"}
    d = Driver(rules(body)).feed(
        ev("e1", "visit.scheduled", "2026-11-02T10:00:00+01:00", **window),
        ev("e2", "visit.rescheduled", "2026-11-03T10:00:00+01:00", **later),
        until="2026-11-09T00:00:00+01:00")
    assert d.outcomes() == [("confirm", "broken", t("2026-11-08T08:00:00+01:00"))]


def test_restart_reopens_after_each_keep_recurring_obligation() -> None:
    body = """
rules:
  - id: update
    expect:
      open: [request.opened, request.agent_replied]
      keep: request.agent_replied
      cancel: request.resolved
      deadline: {within: 1d}
      reopen: restart
    broken: {costs: {energy: 1}}
"""
    d = Driver(rules(body)).feed(
        ev("e1", "request.opened", "2026-11-02T09:00:00+01:00"),
        ev("e2", "request.agent_replied", "2026-11-02T20:00:00+01:00"),
        ev("e3", "request.agent_replied", "2026-11-03T19:00:00+01:00"),
        until="2026-11-06T00:00:00+01:00")
    assert d.outcomes() == [("update", "broken", t("2026-11-04T19:00:00+01:00"))]


def test_reopen_ignore_keeps_the_first_clock() -> None:
    body = """
rules:
  - id: reply
    expect:
      open: [request.opened, request.customer_replied]
      keep: request.agent_replied
      deadline: {within: 2h}
    broken: {costs: {time: 1}}
"""
    d = Driver(rules(body)).feed(
        ev("e1", "request.opened", "2026-11-02T09:00:00+01:00"),
        ev("e2", "request.customer_replied", "2026-11-02T10:30:00+01:00"),
        until="2026-11-02T12:00:00+01:00")
    assert d.outcomes() == [("reply", "broken", t("2026-11-02T11:00:00+01:00"))]
