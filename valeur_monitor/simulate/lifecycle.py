"""The life of each request, callback, visit and survey, drawn at once and queued by event time."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from datetime import timedelta
from math import floor
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

from valeur_monitor.simulate.clock import (
    DAY_MS,
    HOUR_MS,
    BusinessClock,
    TimeFormatter,
    public_holidays,
)
from valeur_monitor.simulate.config import SimulationConfig
from valeur_monitor.simulate.population import (
    LIVE_CHANNELS,
    Population,
    Topic,
    build_population,
    cumulative,
    pick,
)
from valeur_monitor.simulate.scheduler import Context, Scheduler, context

MIN_MS = 60_000
TOPIC_MEMORY_MS = 7 * DAY_MS + HOUR_MS   # a new problem never reuses a topic seen this recently
REPEAT_WITHIN_MS = 6 * DAY_MS     # repeats come back inside the 7-day repeat window
VISIT_SLOTS = ((8, 12), (13, 17), (14, 18))  # 4-hour technician windows, local time
SOURCE_OF_CHANNEL = {"phone": "telephony", "sms": "telephony"}  # others: helpdesk


# A deferred request opening: (customer index, forced topic or "", forced channel or "",
# whether it repeats an earlier request, and so must not repeat in turn). A tuple of atoms, so
# the garbage collector can stop tracking it.
Opening = tuple[int, str, str, bool]


class Operation:
    """The simulated support operation: draws each obligation's whole future when it starts."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rates = config.rates
        self.rng = Random(config.seed)
        zone = ZoneInfo(config.timezone)
        self.zone = zone
        start = config.start.astimezone(zone)
        # every instant below is ms since `origin_ms`, the whole minute at or before the start
        start_epoch_ms = int(start.timestamp() * 1000)
        self.origin_ms = start_epoch_ms - start_epoch_ms % 60_000
        self.start_ms = start_epoch_ms - self.origin_ms
        self.end_ms = self.start_ms + config.days * DAY_MS
        first = start.date() - timedelta(days=1)
        last = start.date() + timedelta(days=config.days + 30)
        closed = public_holidays(config.holidays_country, range(first.year, last.year + 1))
        self.clock = BusinessClock(zone, first, last, config.business_hours,
                                   config.business_days, closed, self.origin_ms)
        self.formatter = TimeFormatter(zone, self.origin_ms)
        self.population: Population = build_population(config, self.rng)
        self.sched = Scheduler(self.start_ms, self.end_ms, config.disorder,
                               config.disorder_window_seconds * 1000, config.seed ^ 0x5EED_D150,
                               self.origin_ms)
        self.sla_ms = int(config.first_reply_sla_hours * HOUR_MS)
        self.gold_sla_ms = int(config.gold_first_reply_sla_hours * HOUR_MS)
        opening, closing = config.business_hours
        self.update_ms = int(config.update_sla_business_days * (closing - opening) * HOUR_MS)
        self.topic_seen: list[dict[str, int] | None] = [None] * config.customers
        self.requests = self.callbacks = self.visits = 0   # numbering of refs

    # -- the initial arrivals ------------------------------------------------------------------

    def schedule_openings(self) -> int:
        """Queue every customer-initiated request of the period (diurnal and weekly profile)."""
        cfg = self.config
        count = int(cfg.customers * cfg.days * cfg.request_rate + 0.5)
        self.sched.defer_many(self._arrivals(count))
        return count

    def _arrivals(self, count: int) -> Iterator[tuple[int, Opening]]:
        """`count` iid arrivals from the hourly profile, drawn already in time order.

        Normalised cumulative exponential spacings are sorted uniforms; the inverse of the
        (piecewise-linear) profile CDF maps them to instants without any sort.
        """
        slots, weights = self._hour_slots()
        expo, rnd = self.rng.expovariate, self.rng.random
        spacings = [expo(1.0) for _ in range(count + 1)]
        scale = sum(weights) / sum(spacings)
        activity = self.population.activity_cum
        last = len(weights) - 1
        slot, before, position = 0, 0.0, 0.0
        for gap in spacings[:count]:
            position += gap * scale
            while slot < last and position >= before + weights[slot]:
                before += weights[slot]
                slot += 1
            share = (position - before) / weights[slot] if weights[slot] > 0 else 0.0
            second = int(min(share, 0.999_999) * 3600)
            yield slots[slot] + second * 1000, (bisect_right(activity, rnd()), "", "", False)

    def _hour_slots(self) -> tuple[list[int], list[float]]:
        slots: list[int] = []
        weights: list[float] = []
        t = self.start_ms
        while t < self.end_ms:
            local = self.clock.local_date(t)
            hour = (t - self.clock.at(local, 0)) // HOUR_MS
            day_factor = (1.0, 1.0, 1.0, 1.0, 1.0, 0.35, 0.2)[local.weekday()]
            if local in self.clock.closed:
                day_factor = 0.3
            slots.append(t)
            weights.append(_HOURLY[min(int(hour), 23)] * day_factor)
            t += HOUR_MS
        return slots, weights

    def run_deferred(self, t: int, action: Any) -> None:
        """Run an action queued with `Scheduler.defer` (only request openings exist)."""
        if isinstance(action, tuple):
            self.open_request(t, action)

    # -- requests -----------------------------------------------------------------------------

    def _choose_topic(self, customer: int, t: int) -> Topic:
        """A topic the customer has not raised recently, so repeats only come from the rates."""
        pop = self.population
        rnd = self.rng.random
        seen = self.topic_seen[customer]
        team = pop.team_names[pick(pop.team_cum, rnd())]
        topics, cum = pop.team_topics[team], pop.team_topic_cum[team]
        topic = topics[pick(cum, rnd())]
        if seen is None:
            return topic
        horizon = t - TOPIC_MEMORY_MS
        for _ in range(4):   # cheap retries first; a full scan only for the busiest customers
            if seen.get(topic.name, horizon) <= horizon:
                return topic
            topic = topics[pick(cum, rnd())]
        candidates = [tp for tp in topics if seen.get(tp.name, horizon) <= horizon]
        if not candidates:
            candidates = [tp for tp in pop.topics if seen.get(tp.name, horizon) <= horizon]
        if not candidates:   # a very busy customer used them all: a one-off "other" topic
            return pop.new_topic(team)
        return candidates[pick(cumulative([tp.weight for tp in candidates]), rnd())]

    def _remember(self, customer: int, topic: str, t: int) -> None:
        seen = self.topic_seen[customer]
        if seen is None:
            seen = self.topic_seen[customer] = {}
        if seen.get(topic, t) <= t:
            seen[topic] = t

    def open_request(self, t0: int, opening: Opening) -> None:
        """Draw one request's whole life: replies, waits, callback, visit, resolution, survey."""
        rnd = self.rng.random
        push = self.sched.push
        rates = self.rates
        pop = self.population
        c, topic_name, channel, duplicate = opening
        cust = pop.customer_ids[c]
        self.requests += 1
        ref = f"req-{self.requests:06d}"
        topic = pop.topic_by_name[topic_name] if topic_name else self._choose_topic(c, t0)
        team = topic.team
        if not channel:
            channel = (pop.preferred[c] if rnd() < 0.6
                       else pop.channels[pick(pop.channel_cum, rnd())])
        agents = pop.agents[team]
        agent = agents[floor(rnd() * len(agents))]

        req = context(cust, ref, "helpdesk", channel, team)
        t = t0
        if channel in LIVE_CHANNELS:   # the call/chat/SMS that opens the request
            push(t, "contact.inbound",
                 context(cust, ref, SOURCE_OF_CHANNEL.get(channel, "helpdesk"), channel, team),
                 {"topic": topic.name})
            t += 30_000 + floor(rnd() * 270_000)
        opened = t
        push(opened, "request.opened", req, {"topic": topic.name, "tier": pop.tiers[c]})
        self._remember(c, topic.name, opened)
        if not duplicate and rnd() < rates.repeat_contact:
            self._repeat(opened, c, req, topic)

        first = self._first_reply(opened, channel, pop.tiers[c])
        if first >= self.end_ms:   # everything else would happen after the period
            return
        push(first, "request.agent_replied", req, {"agent": agent})
        fcr = rnd() < rates.first_contact_resolution
        if rnd() < rates.callback:
            self._callback(first, req, agent)
        if fcr:
            resolved = first + MIN_MS + floor(rnd() * 9 * MIN_MS)
            push(resolved, "request.resolved", req,
                 {"agent_replies": 1, "reopened": False, "agent": agent})
        else:
            visit = topic.visit and rnd() < rates.visit
            resolved = self._conversation(first, req, agent, visit)
        if resolved < self.end_ms and rnd() < rates.survey:
            self._survey(resolved, req)

    def _first_reply(self, opened: int, channel: str, tier: str) -> int:
        rnd = self.rng.random
        clock = self.clock
        sla = self.gold_sla_ms if tier == "gold" else self.sla_ms
        if rnd() < self.rates.late_first_reply:   # after the SLA, by 30 min to 12 business hours
            return clock.add(opened, sla + 30 * MIN_MS + floor(rnd() * 11.5 * HOUR_MS))
        if channel in ("phone", "chat") and clock.is_open(opened):
            return opened + MIN_MS + floor(rnd() * 14 * MIN_MS)   # answered live
        if not clock.is_open(opened) and rnd() < self.config.off_hours_reply_share:
            return opened + 10 * MIN_MS + floor(rnd() * 90 * MIN_MS)   # the evening/weekend shift
        budget = int(sla * 0.9) - 5 * MIN_MS
        return clock.add(opened, 5 * MIN_MS + floor(rnd() * max(0, budget)))

    def _conversation(self, first: int, req: Context, agent: str, visit: bool) -> int:
        """Agent replies 2-6 with customer waits between; returns the final resolution time."""
        rnd = self.rng.random
        push = self.sched.push
        clock = self.clock
        update = self.update_ms
        # 2 replies most often, up to 6: most conversations close within a few business days
        replies_target = 2 + floor(rnd() ** 2.5 * 5)
        gap_at = 1 + floor(rnd() * (replies_target - 1)) if rnd() < self.rates.no_update else 0
        t = first
        replies = 1
        for stretch in range(1, replies_target):
            if t >= self.end_ms:
                return t
            spent = 0
            if stretch == 1 and visit:
                base = self._visit(t, req, agent)   # on hold meanwhile
            elif rnd() < 0.65:   # waiting on the customer (status pending)
                asked = t + MIN_MS + floor(rnd() * 2 * MIN_MS)
                push(asked, "request.status_changed", req, {"status": "pending", "agent": agent})
                # customers answer within hours mostly (median about 5 h), a day at worst
                answer = asked + 20 * MIN_MS + floor(rnd() ** 2 * 24 * HOUR_MS)
                if clock.between(t, answer) > 12 * HOUR_MS:
                    answer = clock.add(t, 20 * MIN_MS + floor(rnd() * 11 * HOUR_MS))
                push(answer, "request.customer_replied", req, {})
                base = answer + 1000 + floor(rnd() * 59_000)
                push(base, "request.status_changed", req, {"status": "open"})
                spent = clock.between(t, base)
            elif rnd() < 0.12:   # parked with a third party for a few business hours
                held = t + MIN_MS + floor(rnd() * 2 * MIN_MS)
                push(held, "request.status_changed", req, {"status": "on_hold", "agent": agent})
                base = clock.add(held, HOUR_MS + floor(rnd() * 5 * HOUR_MS))
                push(base, "request.status_changed", req, {"status": "open", "agent": agent})
                spent = clock.between(t, base)
            else:
                base = t
            if stretch == gap_at:   # the destroyer: no agent update for longer than the SLA
                nxt = clock.add(base, update + HOUR_MS + floor(rnd() * 8 * HOUR_MS))
            else:   # comfortably inside the SLA, whether or not waits pause its clock
                room = max(0, min(12 * HOUR_MS, update - 2 * HOUR_MS - spent) - 10 * MIN_MS)
                nxt = clock.add(base, 10 * MIN_MS + floor(rnd() * room))
            push(nxt, "request.agent_replied", req, {"agent": agent})
            replies += 1
            t = nxt
        resolved = t + MIN_MS + floor(rnd() * 30 * MIN_MS)
        push(resolved, "request.resolved", req,
             {"agent_replies": replies, "reopened": False, "agent": agent})
        if resolved < self.end_ms and rnd() < self.rates.reopen:
            back = resolved + 2 * HOUR_MS + floor(rnd() * 94 * HOUR_MS)
            push(back, "request.reopened", req, {})
            nxt = clock.add(back, 10 * MIN_MS + floor(rnd() * 7 * HOUR_MS))
            push(nxt, "request.agent_replied", req, {"agent": agent})
            replies += 1
            resolved = nxt + MIN_MS + floor(rnd() * 30 * MIN_MS)
            push(resolved, "request.resolved", req,
                 {"agent_replies": replies, "reopened": True, "agent": agent})
        return resolved

    def _repeat(self, opened: int, c: int, req: Context, topic: Topic) -> None:
        """The customer has to explain the same problem again, on another channel.

        Either a contact about the open request (same ref, hours or days later) or, for a share
        `repeat_new_request`, a new request on the same topic (its opening contact and the
        request share their ref, so they count as one contact).
        """
        rnd = self.rng.random
        pop = self.population
        cust, ref, _, channel, team, _ = req
        others = [ch for ch in pop.channels if ch != channel] or [channel]
        other = others[floor(rnd() * len(others))]
        when = opened + 2 * HOUR_MS + floor(rnd() * (REPEAT_WITHIN_MS - 2 * HOUR_MS))
        self._remember(c, topic.name, when)
        if rnd() < self.rates.repeat_new_request:
            self.sched.defer(when, (c, topic.name, other, True))
            return
        self.sched.push(when, "contact.inbound",
                        context(cust, ref, SOURCE_OF_CHANNEL.get(other, "helpdesk"), other, team),
                        {"topic": topic.name})

    def _survey(self, resolved: int, req: Context) -> None:
        rnd = self.rng.random
        rates = self.rates
        answered = resolved + HOUR_MS + floor(rnd() * 71 * HOUR_MS)
        u = rnd()
        if u < rates.survey_happy:
            score = 4 + floor(rnd() * 2)
        elif u < rates.survey_happy + rates.survey_unhappy:
            score = 1 + floor(rnd() * 2)
        else:
            score = 3
        cust, ref, _, channel, team, _ = req
        survey_channel = "email" if channel in ("email", "web") else "sms"
        self.sched.push(answered, "survey.answered",
                        context(cust, ref, "survey", survey_channel, team), {"score": score})

    # -- callbacks ----------------------------------------------------------------------------

    def _callback(self, t: int, req: Context, agent: str) -> None:
        """A promised callback, then kept on time, kept late, cancelled or never made."""
        rnd = self.rng.random
        push = self.sched.push
        rates = self.rates
        self.callbacks += 1
        cref = f"cb-{self.callbacks:06d}"
        promised = t + 30_000 + floor(rnd() * 90_000)
        if promised >= self.end_ms:
            return
        cust, ref, _, _, team, _ = req
        call = context(cust, cref, "telephony", "phone", team)
        due = self.clock.add(promised, 30 * MIN_MS + floor(rnd() * 7.5 * HOUR_MS))
        due += -due % (15 * MIN_MS)   # promised on the quarter hour
        push(promised, "callback.promised", call,
             {"promised_at": self.formatter.format(due), "request": ref, "agent": agent})
        u = rnd()
        if u < rates.callback_missed:
            return
        if u < rates.callback_missed + rates.callback_late:   # well past the 15-minute grace
            done = due + 30 * MIN_MS + floor(rnd() * 4 * HOUR_MS)
        elif u < rates.callback_missed + rates.callback_late + rates.callback_cancelled:
            cancelled = promised + MIN_MS + floor(rnd() * max(0, due - promised - 2 * MIN_MS))
            push(cancelled, "callback.cancelled", call,
                 {"request": ref, "reason": "customer_cancelled"})
            return
        else:   # on time: within the 20 minutes before the promised time
            done = max(promised + MIN_MS, due - floor(rnd() * 20 * MIN_MS))
        push(done, "callback.completed", call,
             {"request": ref, "agent": agent, "outcome": "reached"})

    # -- technician visits --------------------------------------------------------------------

    def _window(self, after: int, first: int, last: int) -> tuple[int, int]:
        """A 4-hour window on a business day `first` to `last` days after `after` (local).

        With no business day in that range (a long holiday), the next business day after it.
        """
        today = self.clock.local_date(after)
        days = [today + timedelta(days=n) for n in range(first, last + 1)]
        open_days = [d for d in days if self.clock.is_business_day(d)]
        if open_days:
            day = open_days[floor(self.rng.random() * len(open_days))]
        else:
            day = days[-1] + timedelta(days=1)
            while not self.clock.is_business_day(day):
                day += timedelta(days=1)
        lo, hi = VISIT_SLOTS[floor(self.rng.random() * len(VISIT_SLOTS))]
        return self.clock.at(day, lo), self.clock.at(day, hi)

    def _visit(self, t: int, req: Context, agent: str) -> int:
        """Schedule a visit 2-5 days ahead; returns when the request is back to open."""
        rnd = self.rng.random
        push = self.sched.push
        rates = self.rates
        fmt = self.formatter.format
        self.visits += 1
        vref = f"visit-{self.visits:06d}"
        tech = self.population.technicians[floor(rnd() * len(self.population.technicians))]
        booked = t + MIN_MS + floor(rnd() * 2 * MIN_MS)
        if booked >= self.end_ms:
            return booked
        ref = req[1]
        field = context(req[0], vref, "field-service", "field", "field")
        start, end = self._window(booked, 2, 5)
        push(booked, "visit.scheduled", field, {"window_start": fmt(start),
             "window_end": fmt(end), "request": ref, "technician": tech})
        push(booked + 30_000, "request.status_changed", req, {"status": "on_hold", "agent": agent})
        u = rnd()
        if u < rates.visit_cancelled:
            gone = booked + HOUR_MS + floor(rnd() * max(0, start - booked - 3 * HOUR_MS))
            push(gone, "visit.cancelled", field, {"request": ref, "reason": "customer_cancelled"})
            return self._resume(gone, req, agent)
        if u < rates.visit_cancelled + rates.visit_rescheduled:
            moved = booked + HOUR_MS + floor(rnd() * 19 * HOUR_MS)
            ahead = int((start - booked) // DAY_MS)
            start, end = self._window(booked, ahead + 1, ahead + 3)   # 1-3 days later
            push(moved, "visit.rescheduled", field, {"window_start": fmt(start),
                 "window_end": fmt(end), "request": ref, "technician": tech})
            self._confirm(moved, start, field, ref)
        else:
            self._confirm(booked, start, field, ref)
        if rnd() < rates.visit_no_show:   # the technician does not come to the final window
            done = end + 5 * MIN_MS + floor(rnd() * 55 * MIN_MS)
            push(done, "visit.no_show", field, {"request": ref, "technician": tech})
        else:
            done = start + 30 * MIN_MS + floor(rnd() * (end - start - 40 * MIN_MS))
            push(done, "visit.completed", field, {"request": ref, "technician": tech,
                                                  "duration_min": 30 + floor(rnd() * 60)})
        return self._resume(done, req, agent)

    def _resume(self, t: int, req: Context, agent: str) -> int:
        back = t + 5 * MIN_MS + floor(self.rng.random() * 55 * MIN_MS)
        self.sched.push(back, "request.status_changed", req, {"status": "open", "agent": agent})
        return back

    def _confirm(self, after: int, start: int, field: Context, ref: str) -> None:
        """Confirm the window >= 24h before (usually), < 24h before, or never."""
        rnd = self.rng.random
        rates = self.rates
        u = rnd()
        if u < rates.visit_unconfirmed:
            return
        if u < rates.visit_unconfirmed + rates.visit_confirmed_late:
            lo, hi = max(after + 5 * MIN_MS, start - 23 * HOUR_MS), start - HOUR_MS
        else:
            hi = start - DAY_MS - 30 * MIN_MS
            lo = max(after + 5 * MIN_MS, hi - 2 * DAY_MS)
        when = lo + floor(rnd() * max(0, hi - lo))
        self.sched.push(when, "visit.confirmed", field,
                        {"window_start": self.formatter.format(start), "request": ref})


# relative request arrivals per local hour on an ordinary weekday
_HOURLY = (0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 4.0, 7.0, 8.0, 7.5,
           6.0, 6.5, 7.0, 6.5, 6.0, 5.0, 4.0, 3.0, 2.5, 2.0, 1.0, 0.5)
