"""What the engine emits: ledger entries (value with its cause) and notices (warnings, alerts)."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, get_args

import msgspec

from valeur_monitor.engine.event import format_time

BENEFITS = ("quality", "service", "experience", "image")
COSTS = ("money", "time", "effort", "energy", "inconvenience")
DIMENSIONS = BENEFITS + COSTS

# What a rule can book a value for (the rule language's `outcome:` of alerts uses this type).
ValuedOutcome = Literal["matched", "kept", "broken", "late", "repeat"]
OUTCOMES: tuple[str, ...] = get_args(ValuedOutcome)
# Every outcome the engine reports (metrics count them): valued ones, plus a warning sent
# before a deadline and a promise cancelled before it was due.
REPORTED_OUTCOMES: tuple[str, ...] = (*OUTCOMES, "warning", "cancelled")


class Outcome(NamedTuple):
    """One outcome of one rule for one customer's case, valued or not (metrics, reports)."""

    rule: str
    outcome: str              # one of REPORTED_OUTCOMES
    team: str
    channel: str


class LedgerEntry(msgspec.Struct, gc=False, omit_defaults=True):
    """One signed value in one dimension for one customer, with the rule and events behind it."""

    customer: str
    seq: int                  # per-customer sequence number, stable across runs
    rule: str
    outcome: str              # matched | kept | broken | late | repeat
    dimension: str
    amount: float             # as written in the rule (a cost of 2 is amount 2)
    value: float              # signed effect on the score (costs negative)
    time: int                 # event time of the effect (ms)
    events: tuple[str, ...]   # ids of the causing events
    explain: str
    ref: str = ""
    team: str = ""
    channel: str = ""
    late: bool = False        # produced by an event that arrived after its customer's clock
    rules_version: str = ""   # RuleSet.version of the rules that produced it

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict with RFC 3339 time (the ledger file and API format)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        out["time"] = format_time(self.time)
        out["events"] = list(self.events)
        return out


class Notice(msgspec.Struct, gc=False, omit_defaults=True):
    """A warning before a deadline, or a customer alert; carries no value."""

    kind: str                 # warning | alert
    id: str                   # rule id (warning) or alert id (alert)
    customer: str
    time: int
    message: str
    ref: str = ""
    score: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict with RFC 3339 time."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        out["time"] = format_time(self.time)
        return out
