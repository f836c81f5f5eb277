"""Small builders for engine tests: rules from text, events from short specs, a driver."""

from __future__ import annotations

from typing import Any

from valeur_monitor.engine.core import Engine, Output
from valeur_monitor.engine.event import Event, parse_time
from valeur_monitor.engine.rules import RuleSet, load_rules_text
from valeur_monitor.engine.state import CustomerState
from valeur_monitor.service import Processor
from valeur_monitor.store.memory import MemoryStore

CALENDAR = """
calendars:
  office:
    timezone: Europe/Paris
    hours: {mon-fri: "09:00-18:00"}
    holidays: [2026-11-11]
"""


def rules(body: str, settings: str = "settings: {lateness: 5m, late_horizon: 7d}\n") -> RuleSet:
    return load_rules_text([("test.yml", "version: 1\n" + settings + CALENDAR + body)])


def ev(id: str, type: str, time: str, customer: str = "c1", ref: str = "r1",
       **data: Any) -> Event:
    return Event(id=id, type=type, time=parse_time(time), customer=customer, ref=ref,
                 channel="phone", team="support", data=data)


def t(text: str) -> int:
    return parse_time(text)


class Driver:
    """One customer's state driven directly through the engine (no store)."""

    def __init__(self, ruleset: RuleSet, customer: str = "c1") -> None:
        self.engine = Engine(ruleset)
        self.state = CustomerState(customer)
        self.out = Output()

    def feed(self, *events: Event, until: str | None = None) -> Driver:
        for event in events:
            self.engine.ingest(self.state, event, self.out)
        if until is not None:
            self.engine.advance(self.state, t(until), self.out)
        return self

    def outcomes(self) -> list[tuple[str, str, int]]:
        return [(e.rule, e.outcome, e.time) for e in self.out.entries]


def run_processor(ruleset: RuleSet, batches: list[list[Event]], until: int) -> MemoryStore:
    store = MemoryStore()
    processor = Processor(ruleset, store)
    for batch in batches:
        processor.process_events(batch)
    processor.advance_to(until)
    return store
