"""Vendor payloads -> canonical events: one lifecycle per source, retries, dead letters."""

from __future__ import annotations

import orjson
import pytest

from valeur_monitor.sources.loader import load_sources_text
from valeur_monitor.sources.mapper import Mapper

from .support import DATA, events, map_lines, mapper, resolver

pytestmark = pytest.mark.unit


def kinds(evs: list[dict]) -> list[tuple[str, str]]:
    return [(e["type"], e["time"]) for e in evs]


def test_zendesk_webhook_lifecycle() -> None:
    mapped = map_lines(mapper("zendesk"), "zendesk-webhooks.jsonl")
    evs = events(mapped)
    assert kinds(evs) == [
        ("request.opened", "2026-11-02T08:00:00Z"),
        ("request.customer_replied", "2026-11-02T08:00:00Z"),   # the ticket's description
        ("request.agent_replied", "2026-11-02T10:30:00Z"),      # the private note is skipped
        ("request.status_changed", "2026-11-02T11:00:00Z"),
        ("request.customer_replied", "2026-11-03T09:00:00Z"),
        ("request.resolved", "2026-11-03T10:00:00Z"),
        ("request.reopened", "2026-11-04T09:00:00Z"),
        ("request.customer_replied", "2026-11-04T09:00:00Z"),
        ("request.agent_replied", "2026-11-04T10:00:00Z"),
        ("request.resolved", "2026-11-04T11:00:00Z"),
    ]
    assert {e["customer"] for e in evs} == {"cust-zd-1"}
    assert {e["ref"] for e in evs} == {"zd-5158"}
    assert evs[3]["data"]["status"] == "pending"
    assert evs[0]["data"]["account"] == "acct-lyon" and evs[0]["channel"] == "web"
    assert mapped.ignored == 2 and not mapped.dead_letters   # private note, tags change


def test_zendesk_trigger_lifecycle() -> None:
    mapped = map_lines(mapper("zendesk"), "zendesk-triggers.jsonl")
    assert [(e["type"], e["time"], e.get("data", {}).get("status")) for e in events(mapped)] == [
        ("request.opened", "2026-11-05T08:00:02Z", None),
        ("request.agent_replied", "2026-11-05T09:10:01Z", None),
        ("request.status_changed", "2026-11-05T09:10:02Z", "pending"),
        ("request.customer_replied", "2026-11-06T10:00:03Z", None),
        ("request.resolved", "2026-11-06T11:00:01Z", None),
    ]
    # the requester's email is known (any case); its Zendesk id is not: the email wins
    assert {e["customer"] for e in events(mapped)} == {"cust-fd-1"}
    assert len({e["id"] for e in events(mapped)}) == 5


def test_a_retried_webhook_gives_the_same_event_id() -> None:
    line = (DATA / "zendesk-webhooks.jsonl").read_bytes().splitlines()[2]
    first, again = mapper("zendesk").map(line), mapper("zendesk").map(line)
    assert first.events == again.events and len(first.events) == 1


def test_zendesk_export_pages_remember_the_requester() -> None:
    evs = events(map_lines(mapper("zendesk"), "zendesk-export.jsonl"))
    assert sorted((e["time"], e["type"]) for e in evs) == [
        ("2026-11-09T13:00:00Z", "request.customer_replied"),
        ("2026-11-09T13:00:00Z", "request.opened"),
        ("2026-11-09T16:30:00Z", "request.agent_replied"),
        ("2026-11-09T16:30:00Z", "request.status_changed"),
        ("2026-11-09T16:40:00Z", "request.status_changed"),
        ("2026-11-10T09:00:00Z", "request.customer_replied"),
        ("2026-11-10T09:00:00Z", "request.status_changed"),
        ("2026-11-10T10:00:00Z", "request.agent_replied"),
        ("2026-11-10T10:00:00Z", "request.resolved"),
    ]
    assert {e["customer"] for e in evs} == {"cust-zd-2"}
    assert [e["data"]["status"] for e in evs if e["type"] == "request.status_changed"] == [
        "open", "on_hold", "open"]


def test_zendesk_export_of_a_ticket_created_earlier_is_unknown_customer() -> None:
    pages = (DATA / "zendesk-export.jsonl").read_bytes().splitlines()
    mapped = mapper("zendesk").map(pages[1])      # the requester was on page 1
    assert not mapped.events
    assert {d.reason for d in mapped.dead_letters} == {"unknown_customer"}
    assert mapped.dead_letters[0].raw == pages[1]                    # kept whole


def test_unknown_requester_is_a_dead_letter_without_the_identity() -> None:
    line = (DATA / "zendesk-webhooks.jsonl").read_bytes().splitlines()[0]
    obj = orjson.loads(line)
    obj["detail"]["requester_id"] = "777000111"
    mapped = mapper("zendesk").map(orjson.dumps(obj))
    assert [d.reason for d in mapped.dead_letters] == ["unknown_customer"]
    assert "777000111" not in mapped.dead_letters[0].detail


def test_malformed_json_is_kept_whole() -> None:
    mapped = mapper("zendesk").map(b'{"type": "zen:event-type:ticket.created", ')
    assert [d.reason for d in mapped.dead_letters] == ["malformed_json"]
    assert mapped.dead_letters[0].raw.startswith(b'{"type"')


def test_zammad_lifecycle() -> None:
    evs = events(map_lines(mapper("zammad"), "zammad-webhooks.jsonl"))
    assert [(e["type"], e.get("data", {}).get("status")) for e in evs] == [
        ("request.opened", None),
        ("request.status_changed", "open"),          # the internal note is no reply
        ("request.agent_replied", None),
        ("request.status_changed", "pending"),
        ("request.customer_replied", None),
        ("request.status_changed", "open"),
        ("request.resolved", None),
    ]
    assert {e["customer"] for e in evs} == {"cust-zm-1"}
    assert evs[0]["team"] == "Support L1" and evs[0]["time"] == "2026-11-02T08:15:00Z"


def test_freshdesk_lifecycle_uses_the_receive_time_and_the_email() -> None:
    mapped = map_lines(mapper("freshdesk"), "freshdesk-webhooks.jsonl")
    evs = events(mapped)
    assert kinds(evs) == [
        ("request.opened", "2026-11-02T10:00:00Z"),
        ("request.agent_replied", "2026-11-02T16:30:00Z"),
        ("request.status_changed", "2026-11-02T16:31:00Z"),
        ("request.customer_replied", "2026-11-03T09:00:00Z"),
        ("request.resolved", "2026-11-03T15:00:00Z"),
    ]
    # the email in the payload differs in case from the identity file: normalised
    assert {e["customer"] for e in evs} == {"cust-fd-1"}
    assert evs[0]["team"] == "Billing" and evs[0]["channel"] == "email"
    assert not mapped.dead_letters


def test_freshdesk_unknown_event_is_unmappable() -> None:
    payload = orjson.dumps({"freshdesk_webhook": {"event": "surprise", "ticket_id": "1"}})
    mapped = mapper("freshdesk").map(payload, received=1_790_000_000_000)
    assert [d.reason for d in mapped.dead_letters] == ["unmappable"]


DERIVING = """\
version: 1
source: pbx
format: queue_log
auth: {kind: none}
identity: {unknown: derive, region: FR}
mappings:
  - name: caller
    when: 'body.event == "ENTERQUEUE"'
    remember: {key: body.callid, values: {caller: body.data2}}
  - name: callback
    recall: body.callid
    when: 'body.event == "ABANDON"'
    emit:
      type: contact.inbound
      time: body.time
      customer: {phone: memo.caller}
      ref: body.callid
      data: {topic: '"abandoned"', waited: int(body.data3)}
"""


def test_derived_customer_is_a_keyed_hash_of_the_normalised_number() -> None:
    source = load_sources_text([("pbx.yaml", DERIVING)])["pbx"]
    lines = (b"1793606400|c1|support|NONE|ENTERQUEUE||01 45 67 89 01|1\n"
             b"1793606495|c1|support|NONE|ABANDON|1|1|95\n")
    one = Mapper(source, resolver(b"k1")).map(lines)
    same = Mapper(source, resolver(b"k1")).map(lines.replace(b"01 45 67 89 01", b"+33145678901"))
    other = Mapper(source, resolver(b"k2")).map(lines)
    customer = events(one)[0]["customer"]
    assert customer.startswith("anon-") and "145678901" not in customer
    assert events(same)[0]["customer"] == customer          # E.164: same number, same id
    assert events(other)[0]["customer"] != customer         # keyed
    assert events(one)[0]["data"]["waited"] == 95
    assert "145678901" not in one.events[0][1].decode()


def test_derive_without_a_key_is_a_dead_letter() -> None:
    source = load_sources_text([("pbx.yaml", DERIVING)])["pbx"]
    lines = (b"1793606400|c1|support|NONE|ENTERQUEUE||+33145678901|1\n"
             b"1793606495|c1|support|NONE|ABANDON|1|1|95\n")
    mapped = Mapper(source, resolver(None)).map(lines)
    assert [d.reason for d in mapped.dead_letters] == ["unknown_customer"]
    assert "no identity key" in mapped.dead_letters[0].detail


def test_memory_is_bounded() -> None:
    text = DERIVING.replace("mappings:", "memory: 2\nmappings:")
    source = load_sources_text([("pbx.yaml", text)])
    m = Mapper(source["pbx"], resolver())
    m.map(b"".join(f"1793606400|c{i}|q|NONE|ENTERQUEUE||+3314567890{i}|1\n".encode()
                   for i in range(5)))
    assert list(m.memory) == ["c3", "c4"]


def test_asterisk_queue_log_lifecycle() -> None:
    mapped = map_lines(mapper("asterisk"), "queue_log")
    evs = events(mapped)
    assert [(e["type"], e["ref"], e.get("data", {}).get("wait_s")) for e in evs] == [
        ("call.queued", "call-1793606400.101", None),
        ("call.abandoned", "call-1793606400.101", 95),
        ("call.queued", "call-1793606700.102", None),
        ("call.answered", "call-1793606700.102", 420),
        ("call.transferred", "call-1793606700.102", None),
        ("call.completed", "call-1793606700.102", None),
        ("call.queued", "call-1793610000.103", None),
        ("call.answered", "call-1793610000.103", 30),
        ("call.completed", "call-1793610000.103", None),
        ("call.queued", "call-1793613600.104", None),
        ("call.timed_out", "call-1793613600.104", 600),
    ]
    customers = [e["customer"] for e in evs]
    assert customers[:6] == ["cust-ph-1"] * 6 and customers[6:9] == ["cust-ph-2"] * 3
    assert customers[9].startswith("anon-") and customers[9] == customers[10]
    assert evs[4]["data"]["to"] == "3001" and evs[5]["data"]["talk_s"] == 780
    assert {e["team"] for e in evs} == {"support"} and {e["channel"] for e in evs} == {"phone"}
    assert mapped.ignored == 3                       # QUEUESTART, ADDMEMBER, RINGNOANSWER
    assert not mapped.dead_letters
    assert "145678901" not in b"".join(v for _, v in mapped.events).decode()


def test_asterisk_line_of_an_unseen_call_is_unknown_customer() -> None:
    mapped = mapper("asterisk").map(b"1793606495|c9|support|NONE|ABANDON|1|1|95\n")
    assert [d.reason for d in mapped.dead_letters] == ["unknown_customer"]
    assert mapped.dead_letters[0].raw == b"1793606495|c9|support|NONE|ABANDON|1|1|95"


def test_asterisk_malformed_lines() -> None:
    mapped = mapper("asterisk").map(b"not|enough\nsoon|c1|q|NONE|ENTERQUEUE||+33145678901|1\n")
    assert [d.reason for d in mapped.dead_letters] == ["unmappable", "unmappable"]


@pytest.mark.parametrize(("kind", "previous", "field"), [
    ("agent_assignment_changed", "8447388090101", "assignee"),
    ("group_assignment_changed", "360002", "group"),
    ("agent_assignment_changed", None, None),            # a first assignment: no hand-over
])
def test_zendesk_reassignment_is_a_hand_over(kind: str, previous: str | None,
                                             field: str | None) -> None:
    obj = orjson.loads((DATA / "zendesk-webhooks.jsonl").read_bytes().splitlines()[0])
    obj.update(type=f"zen:event-type:ticket.{kind}", id="01JC8Y2A00000000000000A1",
               event={"current": "360001", "previous": previous})
    evs = events(mapper("zendesk").map(orjson.dumps(obj)))
    if field is None:
        assert evs == []
    else:
        assert [(e["type"], e["data"][field]) for e in evs] == [
            ("request.assignee_changed", "360001")]
