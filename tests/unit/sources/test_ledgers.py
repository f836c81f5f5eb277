"""Acceptance: each source's fixture lifecycle, mapped and scored, gives the hand-computed ledger.

Rules: tests/data/sources/acceptance-rules.yml (pinned amounts; business hours Mon–Fri
09:00–18:00 Europe/Paris, UTC+1 in November). Times below are UTC.
"""

from __future__ import annotations

import pytest

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.store.memory import MemoryStore

from .support import DATA, map_lines, mapper

pytestmark = pytest.mark.unit
RULES = DATA / "acceptance-rules.yml"


def ledger(source: str, fixture: str) -> tuple[list[tuple], dict[str, float]]:
    rows, totals, _ = run(source, fixture)
    return rows, totals


def run(source: str, fixture: str) -> tuple[list[tuple], dict[str, float], list[str]]:
    mapped = map_lines(mapper(source), fixture)
    store = MemoryStore()
    runner = EmbeddedRunner(load_rules([RULES]), store)
    runner.feed([value for _key, value in mapped.events])
    report = runner.finish()
    assert not report.dead_letters, report.dead_letters
    rows = [(e.customer, e.rule, e.outcome, e.dimension, e.value,
             e.to_json()["time"]) for c in store.customers() for e in store.ledger(c)]
    totals = {c: round(sum(e.value for e in store.ledger(c)), 6) for c in store.customers()}
    explains = [e.explain for c in store.customers() for e in store.ledger(c)]
    return sorted(rows, key=lambda r: (r[5], r[1], r[3])), totals, explains


def test_zendesk_webhook_lifecycle_ledger() -> None:
    # Mon 09:00 Paris opened (+ its description as a customer message), answered 11:30:
    # first reply within 4 business hours (kept) and the message answered within 8.
    # Tue: resolved (+1 quality). Wed 10:00 reopened (-2), answered 11:00, resolved (+1).
    rows, totals = ledger("zendesk", "zendesk-webhooks.jsonl")
    assert rows == [
        ("cust-zd-1", "reply-in-time", "kept", "service", 1.0, "2026-11-02T10:30:00Z"),
        ("cust-zd-1", "resolved", "matched", "quality", 1.0, "2026-11-03T10:00:00Z"),
        ("cust-zd-1", "request-reopened", "matched", "effort", -1.0, "2026-11-04T09:00:00Z"),
        ("cust-zd-1", "request-reopened", "matched", "inconvenience", -1.0,
         "2026-11-04T09:00:00Z"),
        ("cust-zd-1", "resolved", "matched", "quality", 1.0, "2026-11-04T11:00:00Z"),
    ]
    assert totals == {"cust-zd-1": 1.0}


def test_zendesk_export_lifecycle_ledger() -> None:
    # Mon 14:00 Paris opened, answered 17:30 (3.5 business hours: kept), on hold, the customer
    # writes Tue 10:00 and is answered 11:00 with the resolution.
    rows, totals = ledger("zendesk", "zendesk-export.jsonl")
    assert rows == [
        ("cust-zd-2", "reply-in-time", "kept", "service", 1.0, "2026-11-09T16:30:00Z"),
        ("cust-zd-2", "resolved", "matched", "quality", 1.0, "2026-11-10T10:00:00Z"),
    ]
    assert totals == {"cust-zd-2": 2.0}


def test_zammad_lifecycle_ledger() -> None:
    # Mon 09:15 Paris opened; the 10:00 article is an internal note; the first public answer
    # comes at 14:30, after the 13:15 deadline: broken (-5) then late (-1). The customer's
    # reply Tue 09:00 is answered by the closing at 11:00 (resolution cancels the wait).
    rows, totals = ledger("zammad", "zammad-webhooks.jsonl")
    assert rows == [
        ("cust-zm-1", "unanswered-request", "broken", "inconvenience", -2.0,
         "2026-11-02T12:15:00Z"),
        ("cust-zm-1", "unanswered-request", "broken", "time", -3.0, "2026-11-02T12:15:00Z"),
        ("cust-zm-1", "unanswered-request", "late", "time", -1.0, "2026-11-02T13:30:00Z"),
        ("cust-zm-1", "resolved", "matched", "quality", 1.0, "2026-11-03T10:00:00Z"),
    ]
    assert totals == {"cust-zm-1": -5.0}


def test_freshdesk_lifecycle_ledger() -> None:
    # Mon 11:00 Paris opened, answered 17:30 (deadline 15:00): broken then late; the customer
    # writes Tue 10:00 and the request is resolved at 16:00 Paris, within 8 business hours.
    rows, totals = ledger("freshdesk", "freshdesk-webhooks.jsonl")
    assert rows == [
        ("cust-fd-1", "unanswered-request", "broken", "inconvenience", -2.0,
         "2026-11-02T14:00:00Z"),
        ("cust-fd-1", "unanswered-request", "broken", "time", -3.0, "2026-11-02T14:00:00Z"),
        ("cust-fd-1", "unanswered-request", "late", "time", -1.0, "2026-11-02T16:30:00Z"),
        ("cust-fd-1", "resolved", "matched", "quality", 1.0, "2026-11-03T15:00:00Z"),
    ]
    assert totals == {"cust-fd-1": -5.0}


def test_asterisk_queue_log_ledger() -> None:
    # Call 1: +33 4 72 10 20 30 hangs up after 95 s (-2 inconvenience, -95/300 time). Call 2,
    # same caller: answered after 420 s (-1.4 time), transferred (-1 effort). Call 3: a
    # national number answered in 30 s (nothing). Call 4: an unknown number, the queue gives up
    # after 600 s (-3, and -2 time), under a derived customer id.
    rows, totals, explains = run("asterisk", "queue_log")
    anon = next(c for c in totals if c.startswith("anon-"))
    assert rows == [
        ("cust-ph-1", "abandoned-call", "matched", "inconvenience", -2.0, "2026-11-02T08:01:35Z"),
        ("cust-ph-1", "queue-wait-lost", "matched", "time", -0.32, "2026-11-02T08:01:35Z"),
        ("cust-ph-1", "long-queue-wait", "matched", "time", -1.4, "2026-11-02T08:12:00Z"),
        ("cust-ph-1", "transferred", "matched", "effort", -1.0, "2026-11-02T08:15:00Z"),
        (anon, "queue-timed-out", "matched", "inconvenience", -3.0, "2026-11-02T10:10:00Z"),
        (anon, "queue-wait-lost", "matched", "time", -2.0, "2026-11-02T10:10:00Z"),
    ]
    assert totals == {"cust-ph-1": -4.72, "cust-ph-2": 0, anon: -5.0}
    # no phone number anywhere in the ledger, even through {customer} in an explanation
    assert not any("472102030" in x or "145678901" in x for x in explains)
