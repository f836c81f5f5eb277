"""Response bodies of the API (they make the published OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Reason(BaseModel):
    rule: str
    value: float = Field(description="undecayed value the rule added to this customer")


class OpenPromise(BaseModel):
    rule: str
    ref: str
    opened_at: str
    deadline: str
    paused: bool = Field(description="the SLA clock is stopped (waiting on the customer)")
    team: str
    channel: str


class Customer(BaseModel):
    customer: str
    as_of: str = Field(description="the instant every number below is decayed to (RFC 3339)")
    score: float
    previous_score: float = Field(description="the score at as_of without its latest update")
    change: float = Field(description="what the latest update moved (score - previous_score)")
    band: str = Field(description="critical | at_risk | neutral | positive")
    dimensions: dict[str, float]
    created: float = Field(description="undecayed sum of benefits ever added")
    destroyed: float = Field(description="undecayed sum of costs ever added (positive)")
    updated_at: str | None
    top_reasons: list[Reason]
    open_promises: list[OpenPromise]
    rules_version: str | None = None
    account: str | None = None
    ledger_entries: int = Field(description="entries in the kept ledger window")


class LedgerItem(BaseModel):
    seq: int
    time: str
    rule: str
    outcome: str
    dimension: str
    amount: float
    value: float
    events: list[str]
    explain: str
    ref: str = ""
    team: str = ""
    channel: str = ""
    late: bool = False
    rules_version: str | None = None


class LedgerPage(BaseModel):
    customer: str
    entries: list[LedgerItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class RankedCustomer(BaseModel):
    customer: str
    score: float
    band: str
    lost: float | None = None
    net: float | None = None


class RankedList(BaseModel):
    as_of: str
    window: str | None = None
    complete: bool = Field(description="false: the scan limit was reached first")
    scanned: int
    items: list[RankedCustomer]


class RuleInfo(BaseModel):
    id: str
    kind: str
    title: str


class AlertInfo(BaseModel):
    id: str
    title: str
    score_below: float | None = None
    outcome: str | None = None
    count: int | None = None
    within: str | None = None


class Rules(BaseModel):
    version: str | None
    sources: list[str]
    half_life: str | None
    rules: list[RuleInfo]
    alerts: list[AlertInfo]


class Health(BaseModel):
    status: str


class Account(BaseModel):
    account: str
    as_of: str
    score: float = Field(description="sum of the customers' scores at as_of")
    mean: float = Field(description="mean customer score at as_of")
    band: str = Field(description="band of the mean customer score")
    customers: int
    members: list[RankedCustomer] = Field(description="customers with a score, lowest first")
