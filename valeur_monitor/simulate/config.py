"""Simulation settings: population, calendar, volume and the rate of each destroyer and creator."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from valeur_monitor.engine.event import CHANNELS
from valeur_monitor.errors import ConfigError

DEFAULT_TIMEZONE = "Europe/Paris"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
DEFAULT_START = datetime(2026, 11, 2, tzinfo=ZoneInfo(DEFAULT_TIMEZONE))  # a Monday, 00:00
DEFAULT_TEAMS: tuple[tuple[str, float], ...] = (("billing", 0.35), ("technical", 0.45),
                                                 ("sales", 0.20))
DEFAULT_CHANNEL_MIX: tuple[tuple[str, float], ...] = (("phone", 0.35), ("email", 0.25),
                                                       ("chat", 0.20), ("web", 0.15), ("sms", 0.05))


@dataclass(frozen=True)
class Rates:
    """Probabilities of each outcome; a remainder (e.g. callbacks kept on time) is derived.

    Requests: `late_first_reply` (first agent reply after the SLA), `no_update` (a non-FCR request
    left open without an agent update for longer than the update SLA), `first_contact_resolution`
    (resolved with one agent reply, never reopened), `reopen` (of the other resolved requests),
    `repeat_contact` (customer contacts again about the same topic on another channel within
    7 days), `repeat_new_request` (share of those repeats that open a duplicate request).
    Callbacks: `callback` (a request gets a promised callback), then `callback_missed`,
    `callback_late`, `callback_cancelled`; on time is the rest.
    Visits: `visit` (a non-FCR request on a field topic needs a technician), confirmation
    `visit_unconfirmed` / `visit_confirmed_late` (< 24h before the window), on time is the rest;
    `visit_cancelled` (before its window), `visit_rescheduled` (moved once, to 1-3 days later),
    and `visit_no_show` (of the visits not cancelled: the technician misses the final window).
    Surveys: `survey` (a resolved request gets an answered survey), `survey_happy` (score 4-5),
    `survey_unhappy` (score 1-2), neutral (3) is the rest.
    """

    late_first_reply: float = 0.10
    no_update: float = 0.08
    first_contact_resolution: float = 0.55
    reopen: float = 0.06
    repeat_contact: float = 0.10
    repeat_new_request: float = 0.30
    callback: float = 0.18
    callback_missed: float = 0.10
    callback_late: float = 0.12
    callback_cancelled: float = 0.03
    visit: float = 0.35
    visit_unconfirmed: float = 0.10
    visit_confirmed_late: float = 0.08
    visit_no_show: float = 0.06
    visit_rescheduled: float = 0.08
    visit_cancelled: float = 0.04
    survey: float = 0.30
    survey_happy: float = 0.65
    survey_unhappy: float = 0.20

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"rate {item.name} must be a number in [0, 1], got {value!r}")
        for label, total in (
            ("callback_missed + callback_late + callback_cancelled",
             self.callback_missed + self.callback_late + self.callback_cancelled),
            ("visit_unconfirmed + visit_confirmed_late",
             self.visit_unconfirmed + self.visit_confirmed_late),
            ("visit_rescheduled + visit_cancelled", self.visit_rescheduled + self.visit_cancelled),
            ("survey_happy + survey_unhappy", self.survey_happy + self.survey_unhappy),
        ):
            if total > 1.0 + 1e-9:
                raise ConfigError(f"{label} must not exceed 1, got {total:g}")

    @property
    def callback_on_time(self) -> float:
        """Share of promised callbacks completed at or before `promised_at`."""
        return 1.0 - self.callback_missed - self.callback_late - self.callback_cancelled

    @property
    def visit_confirmed(self) -> float:
        """Share of visit windows confirmed at least 24 hours before they start."""
        return 1.0 - self.visit_unconfirmed - self.visit_confirmed_late

    @property
    def visit_completed(self) -> float:
        """Share of visits completed within their (final) window."""
        return (1.0 - self.visit_cancelled) * (1.0 - self.visit_no_show)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The rate names accepted by `SimulationConfig.with_rates` and `--rate NAME=VALUE`."""
        return tuple(item.name for item in fields(cls))


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that shapes a simulated support operation; the same config gives the same events.

    `request_rate` is requests per customer per day (volume scales with customers × days: about
    6 events per request, ~69k events for 1,000 customers over a week). `business_hours` are
    local hours [open, close) on `business_days` (0 = Monday) minus the public holidays of
    `holidays_country` (None: none); agents reply inside them, except the live answers and a
    share `off_hours_reply_share` of requests opened out of hours. The SLAs the rates are drawn
    against: first reply within `first_reply_sla_hours` business hours
    (`gold_first_reply_sla_hours` for gold customers), an agent update every
    `update_sla_business_days` while a request is open (waits on the customer pause it).
    `bad_rate` is the fraction of output lines malformed on purpose; `disorder` the fraction of
    events emitted late, by at most `disorder_window_seconds`. Events at or after `end` are not
    emitted: obligations still open then stay open.
    """

    seed: int = 0
    customers: int = 1000
    start: datetime = DEFAULT_START
    days: int = 7
    agents: int = 60
    technicians: int = 20
    teams: tuple[tuple[str, float], ...] = DEFAULT_TEAMS
    channel_mix: tuple[tuple[str, float], ...] = DEFAULT_CHANNEL_MIX
    request_rate: float = 1.6
    gold_share: float = 0.15
    timezone: str = DEFAULT_TIMEZONE
    business_hours: tuple[int, int] = (9, 18)
    business_days: tuple[int, ...] = (0, 1, 2, 3, 4)
    holidays_country: str | None = "FR"
    first_reply_sla_hours: float = 4.0
    gold_first_reply_sla_hours: float = 2.0
    update_sla_business_days: float = 2.0
    off_hours_reply_share: float = 0.25
    rates: Rates = field(default_factory=Rates)
    bad_rate: float = 0.0
    disorder: float = 0.0
    disorder_window_seconds: int = 120

    def __post_init__(self) -> None:
        problems: list[str] = []
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("customers", "days", "agents", "technicians"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            problems.append("start must carry a time zone (e.g. 2026-11-02T00:00+01:00)")
        try:
            ZoneInfo(self.timezone)
        except (ValueError, KeyError, OSError):
            problems.append(f"unknown time zone {self.timezone!r}")
        problems += _weights_problems("teams", self.teams, None)
        problems += [f"team name {name!r} must match [A-Za-z0-9_.-]+" for name, _ in self.teams
                     if not _NAME.fullmatch(name)]
        problems += _weights_problems("channel_mix", self.channel_mix, set(CHANNELS) - {"field"})
        if not math.isfinite(self.request_rate) or self.request_rate < 0:
            problems.append(f"request_rate must be >= 0, got {self.request_rate!r}")
        opening, closing = self.business_hours
        if not 0 <= opening < closing <= 24:
            problems.append(f"business_hours must be 0 <= open < close <= 24, got "
                            f"{self.business_hours!r}")
        if not self.business_days or not set(self.business_days) <= set(range(7)):
            problems.append(f"business_days must be weekdays 0-6, got {self.business_days!r}")
        if min(self.first_reply_sla_hours, self.gold_first_reply_sla_hours,
               self.update_sla_business_days) <= 0:
            problems.append("first_reply_sla_hours, gold_first_reply_sla_hours and "
                            "update_sla_business_days must be > 0")
        for name in ("gold_share", "off_hours_reply_share", "disorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {value!r}")
        if not 0.0 <= self.bad_rate < 1.0:
            problems.append(f"bad_rate must be in [0, 1), got {self.bad_rate!r}")
        if self.disorder_window_seconds < 1:
            problems.append("disorder_window_seconds must be >= 1")
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def end(self) -> datetime:
        """The exclusive end of the simulated period: events at or after it are not emitted."""
        return self.start + timedelta(days=self.days)

    def with_rates(self, **overrides: float) -> SimulationConfig:
        """A copy with some rates replaced; unknown names raise ConfigError listing valid ones."""
        unknown = sorted(set(overrides) - set(Rates.names()))
        if unknown:
            raise ConfigError(f"unknown rate(s) {', '.join(unknown)}; "
                              f"known: {', '.join(Rates.names())}")
        return replace(self, rates=replace(self.rates, **overrides))


def _weights_problems(name: str, pairs: tuple[tuple[str, float], ...],
                      allowed: set[str] | None) -> list[str]:
    if not pairs:
        return [f"{name} must not be empty"]
    out = []
    for label, weight in pairs:
        if allowed is not None and label not in allowed:
            out.append(f"{name}: unknown channel {label!r} (known: {', '.join(sorted(allowed))})")
        if not weight >= 0:
            out.append(f"{name}: weight of {label!r} must be >= 0")
    if sum(weight for _, weight in pairs) <= 0:
        out.append(f"{name}: weights must not all be zero")
    return out
