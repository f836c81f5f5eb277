"""Who takes part: customers (tier, activity, channel habits), agents, technicians and topics."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from random import Random

from valeur_monitor.simulate.config import SimulationConfig

# team -> (topic, weight, may need a technician visit)
TOPICS: dict[str, tuple[tuple[str, float, bool], ...]] = {
    "billing": (
        ("invoice_error", 3.0, False), ("payment_failed", 2.0, False),
        ("refund_request", 2.0, False), ("direct_debit_change", 1.0, False),
        ("plan_change", 2.0, False), ("late_fee_dispute", 1.0, False),
        ("duplicate_charge", 1.0, False), ("billing_address", 0.5, False),
        ("payment_plan", 1.0, False), ("roaming_charges", 1.0, False),
        ("promo_not_applied", 1.5, False), ("paper_invoice", 0.5, False),
        ("credit_note", 0.5, False), ("bank_details", 0.5, False),
    ),
    "technical": (
        ("no_connection", 3.0, True), ("slow_speed", 3.0, False), ("router_fault", 2.0, True),
        ("line_damage", 1.0, True), ("installation", 1.5, True), ("tv_decoder_fault", 1.0, True),
        ("wifi_coverage", 1.5, False), ("email_setup", 1.0, False), ("outage", 1.0, False),
        ("intermittent_drops", 2.0, True), ("phone_line_noise", 1.0, True),
        ("sim_activation", 1.0, False), ("port_number", 1.0, False), ("app_login", 1.0, False),
        ("voicemail_setup", 0.5, False), ("fibre_socket", 1.0, True),
        ("parental_controls", 0.5, False), ("static_ip", 0.5, False),
    ),
    "sales": (
        ("upgrade_offer", 2.0, False), ("contract_renewal", 2.0, False),
        ("moving_home", 1.0, True), ("cancellation_request", 1.5, False),
        ("new_line_order", 1.0, True), ("add_option", 1.0, False),
        ("device_purchase", 1.0, False), ("business_quote", 0.5, False),
        ("family_plan", 1.0, False), ("loyalty_discount", 1.0, False),
    ),
}
GENERIC_TOPICS = 6  # topics invented for a team missing from TOPICS
LIVE_CHANNELS = frozenset({"phone", "chat", "sms"})  # a contact.inbound precedes the request


def cumulative(weights: list[float]) -> list[float]:
    """Running totals scaled to end at exactly 1.0, for `pick` (weights must not all be 0)."""
    total = sum(weights)
    out = [value / total for value in accumulate(weights)]
    out[-1] = 1.0
    return out


def pick(cum: list[float], u: float) -> int:
    """Index drawn from `cumulative` weights with a uniform `u` in [0, 1)."""
    return bisect_right(cum, u)


@dataclass(frozen=True)
class Topic:
    """A reason to contact support, owned by one team."""

    name: str
    team: str
    weight: float
    visit: bool


@dataclass
class Population:
    """Precomputed tables drawn once per simulation (index-based for speed)."""

    customer_ids: list[str]
    tiers: list[str]
    activity_cum: list[float]
    preferred: list[str]
    channels: list[str]
    channel_cum: list[float]
    agents: dict[str, list[str]]
    technicians: list[str]
    topics: list[Topic]
    team_names: list[str]
    team_cum: list[float]
    team_topics: dict[str, list[Topic]]
    team_topic_cum: dict[str, list[float]]
    topic_by_name: dict[str, Topic]

    def new_topic(self, team: str) -> Topic:
        """A topic never used before (for a customer who has raised every known one lately)."""
        topic = Topic(f"{team}_other_{len(self.topic_by_name) + 1}", team, 0.0, False)
        self.topic_by_name[topic.name] = topic
        return topic


def build_population(config: SimulationConfig, rng: Random) -> Population:
    """Draw customers, staff and topics from the config (deterministic for the rng state)."""
    width = max(5, len(str(config.customers - 1)))
    ids = [f"cust-{i:0{width}d}" for i in range(config.customers)]
    tiers = ["gold" if rng.random() < config.gold_share else "standard" for _ in ids]
    # heavy users exist but are capped, so a customer's topics rarely run out in a week
    activity = [min(2.0, rng.lognormvariate(0.0, 0.45)) for _ in ids]
    channels = [name for name, _ in config.channel_mix]
    channel_cum = cumulative([weight for _, weight in config.channel_mix])
    preferred = [channels[pick(channel_cum, rng.random())] for _ in ids]

    team_names = [name for name, _ in config.teams]
    team_cum = cumulative([weight for _, weight in config.teams])
    team_topics: dict[str, list[Topic]] = {}
    for team in team_names:
        known = TOPICS.get(team)
        if known is None:
            known = tuple((f"{team}_issue_{i + 1}", 1.0, False) for i in range(GENERIC_TOPICS))
        team_topics[team] = [Topic(name, team, weight, visit) for name, weight, visit in known]
    topics = [topic for team in team_names for topic in team_topics[team]]

    agents: dict[str, list[str]] = {team: [] for team in team_names}
    total_weight = sum(weight for _, weight in config.teams)
    number = 0
    for team, weight in config.teams:
        for _ in range(max(1, round(config.agents * weight / total_weight))):
            number += 1
            agents[team].append(f"agent-{number:03d}")
    technicians = [f"tech-{i + 1:03d}" for i in range(config.technicians)]
    team_topic_cum = {team: cumulative([tp.weight for tp in items])
                      for team, items in team_topics.items()}
    return Population(ids, tiers, cumulative(activity), preferred, channels, channel_cum, agents,
                      technicians, topics, team_names, team_cum, team_topics, team_topic_cum,
                      {topic.name: topic for topic in topics})
