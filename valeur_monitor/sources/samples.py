"""Seeded vendor payloads for demos, tests and benchmarks: queue_log files, Zendesk export pages.

They follow the shapes the shipped mappings read (streams/sources/), with the variety a real
export has: abandoned and timed-out calls, transfers, tickets put on hold, reopened, private notes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

DAY = 86_400


@dataclass(frozen=True)
class SampleConfig:
    seed: int = 7
    customers: int = 500
    start: int = 1_793_606_400          # 2026-11-02T08:00:00Z, a Monday
    days: int = 14


def phone(i: int) -> str:
    return f"+3347{i:07d}"


def requester(i: int) -> int:
    return 9_100_000_000 + i


def identities_csv(config: SampleConfig) -> str:
    """Identity rows for every sample customer: their phone and their Zendesk user id."""
    rows = ["kind,value,customer,account"]
    for i in range(config.customers):
        rows.append(f"phone,{phone(i)},cust-{i:05d},acct-{i % 50:03d}")
        rows.append(f"zendesk,{requester(i)},cust-{i:05d},acct-{i % 50:03d}")
    return "\n".join(rows) + "\n"


def queue_log(config: SampleConfig, calls: int) -> Iterator[str]:
    """queue_log lines of `calls` calls in time order (about 3.3 events per call)."""
    rng = random.Random(config.seed)
    span = config.days * DAY
    starts = sorted(config.start + rng.randrange(span) for _ in range(calls))
    lines: list[tuple[int, int, str]] = []
    for n, t in enumerate(starts):
        callid = f"{t}.{n}"
        queue = rng.choice(("support", "billing", "technical"))
        caller = phone(rng.randrange(config.customers))
        lines.append((t, 0, f"{t}|{callid}|{queue}|NONE|ENTERQUEUE||{caller}|1"))
        wait = int(rng.expovariate(1 / 90)) + 1
        fate = rng.random()
        if fate < 0.12:
            lines.append((t + wait, 1, f"{t + wait}|{callid}|{queue}|NONE|ABANDON|1|1|{wait}"))
            continue
        if fate < 0.15:
            wait = 600
            lines.append((t + wait, 1,
                          f"{t + wait}|{callid}|{queue}|NONE|EXITWITHTIMEOUT|1|1|{wait}"))
            continue
        agent = f"PJSIP/{2000 + rng.randrange(20)}"
        lines.append((t + wait, 1,
                       f"{t + wait}|{callid}|{queue}|{agent}|CONNECT|{wait}|{t}.9{n}|3"))
        talk = int(rng.expovariate(1 / 240)) + 5
        end = t + wait + talk
        if rng.random() < 0.2:
            lines.append((end, 2, f"{end}|{callid}|{queue}|{agent}|TRANSFER|3001|"
                                  f"from-internal|{wait}|{talk}|1"))
            continue
        kind = "COMPLETEAGENT" if rng.random() < 0.5 else "COMPLETECALLER"
        lines.append((end, 2, f"{end}|{callid}|{queue}|{agent}|{kind}|{wait}|{talk}|1"))
    lines.sort()
    for _t, _order, line in lines:
        yield line


def zendesk_export(config: SampleConfig, tickets: int,
                   per_page: int = 1000) -> Iterator[dict[str, object]]:
    """Incremental Ticket Event export pages (with comment events) for `tickets` tickets."""
    rng = random.Random(config.seed + 1)
    span = config.days * DAY
    events: list[dict[str, object]] = []
    ids = iter(range(90_000_000_001, 10**15))

    def audit(ticket: int, when: int, updater: int, children: list[dict[str, object]]) -> None:
        events.append({"id": 920_000_000_000 + len(events), "ticket_id": ticket,
                       "timestamp": when, "updater_id": updater, "via": "Web form",
                       "event_type": "Audit", "child_events": children})

    def child(kind: str, **fields: object) -> dict[str, object]:
        return {"id": next(ids), "via": "Web form", **fields, "event_type": kind}

    for n in range(tickets):
        ticket = 100_000 + n
        user = requester(rng.randrange(config.customers))
        agent = 8_000_000_000 + rng.randrange(30)
        t = config.start + rng.randrange(span)
        audit(ticket, t, user, [child("Comment", author_id=user, public=True, body="Help"),
                                child("Create", requester_id=user), child("Create", status="new")])
        t += rng.randrange(600, 8 * 3600)
        audit(ticket, t, agent, [child("Comment", author_id=agent, public=True, body="On it"),
                                 child("Change", status="open", previous_value="new")])
        if rng.random() < 0.3:
            t += rng.randrange(60, 3600)
            audit(ticket, t, agent, [
                child("Comment", author_id=agent, public=False, body="note"),
                child("Change", status="hold", previous_value="open")])
            t += rng.randrange(3600, 2 * DAY)
            audit(ticket, t, user, [child("Comment", author_id=user, public=True, body="News?"),
                                    child("Change", status="open", previous_value="hold")])
        t += rng.randrange(600, DAY)
        audit(ticket, t, agent, [child("Change", status="solved", previous_value="open")])
        if rng.random() < 0.1:
            t += rng.randrange(3600, 3 * DAY)
            audit(ticket, t, user, [child("Comment", author_id=user, public=True, body="Again"),
                                    child("Change", status="open", previous_value="solved")])
            t += rng.randrange(600, DAY)
            audit(ticket, t, agent, [
                child("Comment", author_id=agent, public=True, body="Fixed"),
                child("Change", status="solved", previous_value="open")])
    events.sort(key=lambda e: (int(str(e["timestamp"])), int(str(e["id"]))))
    for start in range(0, len(events), per_page):
        page = events[start:start + per_page]
        last = start + per_page >= len(events)
        yield {"ticket_events": page, "count": len(page), "end_of_stream": last,
               "end_time": page[-1]["timestamp"],
               "next_page": None if last else "https://example.zendesk.com/api/v2/incremental/"
                                              f"ticket_events.json?start_time={page[-1]['timestamp']}"}
