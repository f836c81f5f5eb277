"""The rule file schema (pydantic, unknown keys refused); polymorphic parts stay `Any` here."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from valeur_monitor.engine.ledger import ValuedOutcome


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Amounts = dict[str, float]
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"   # a rule-set label: `+label` of the version


class ScaleSpec(Strict):
    per: str
    clock: Literal["wall", "sla"] | None = None
    field: str | None = None
    max: str | None = None


class EffectSpec(Strict):
    benefits: Amounts = Field(default_factory=dict)
    costs: Amounts = Field(default_factory=dict)
    scale: ScaleSpec | None = None
    recover: float | None = Field(default=None, gt=0, le=1)
    explain: str | None = None


class DeadlineSpec(Strict):
    within: str | None = None
    tiers: dict[str, str] = Field(default_factory=dict)
    at: str | None = None
    offset: str = "0"
    calendar: str | None = None


class ExpectSpec(Strict):
    open: Any
    keep: Any
    cancel: Any = None
    pause: Any = None
    resume: Any = None
    deadline: DeadlineSpec
    warn: str | None = None
    reopen: Literal["ignore", "restart"] = "ignore"
    late_window: str = "7d"
    max_pause: str = "30d"


class RepeatSpec(Strict):
    on: Any
    if_: str | None = Field(default=None, alias="if")
    key: str
    within: str
    from_: int = Field(default=2, alias="from", ge=1)
    merge_same_ref: str | None = None


class RuleSpec(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: str | None = None
    description: str | None = None
    on: Any = None
    if_: str | None = Field(default=None, alias="if")
    expect: ExpectSpec | None = None
    repeat: RepeatSpec | None = None
    benefits: Amounts = Field(default_factory=dict)
    costs: Amounts = Field(default_factory=dict)
    scale: ScaleSpec | None = None
    explain: str | None = None
    kept: EffectSpec | None = None
    broken: EffectSpec | None = None
    late: EffectSpec | None = None


class CalendarSpec(Strict):
    timezone: str
    hours: dict[str, str]
    holidays: list[date] = Field(default_factory=list)
    holiday_country: str | None = None
    holiday_years: list[int] = Field(default_factory=list)


class AlertSpec(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: str | None = None
    score_below: float | None = None
    outcome: ValuedOutcome | None = None
    rules: list[str] = Field(default_factory=list)
    count: int = Field(default=0, ge=0)
    within: str | None = None


class SettingsSpec(Strict):
    label: str | None = Field(default=None, pattern=LABEL_PATTERN)
    lateness: str = "5m"
    late_horizon: str = "7d"
    half_life: str | None = None
    ledger_cap: int = Field(default=20, ge=1)
    ledger_max_age: str | None = "30d"


class FileSpec(Strict):
    """Top level of a rule file; `rules` and `alerts` items are validated one by one."""

    version: Literal[1]
    settings: SettingsSpec | None = None
    calendars: dict[str, Any] = Field(default_factory=dict)
    rules: list[Any] = Field(default_factory=list)
    alerts: list[Any] = Field(default_factory=list)
