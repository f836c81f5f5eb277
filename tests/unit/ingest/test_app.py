"""The ingest app in process (httpx ASGI transport) with the real file sink: auth per vendor,
problem bodies, limits, dead letters, and nothing written for a refused request."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from valeur_monitor.ingest.app import IngestContext, create_app
from valeur_monitor.ingest.auth import hub_signature, zendesk_headers
from valeur_monitor.ingest.sinks import FileSink
from valeur_monitor.sources.loader import load_sources
from valeur_monitor.sources.mapper import Mapper

from ..sources.support import DATA, SOURCES, resolver

pytestmark = pytest.mark.unit
NOW = 1_794_000_000.0                      # 2026-11-06T...Z, the server's clock in these tests
STAMP = "2026-11-06T21:20:00Z"             # NOW as Zendesk would stamp it
SECRETS = {"zendesk": "zd-signing-secret", "zammad": "zm-token", "freshdesk": "fd:pass-word"}


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "events.jsonl", tmp_path / "dead.jsonl"


@pytest.fixture
async def client(files: tuple[Path, Path]) -> AsyncIterator[httpx.AsyncClient]:
    sources = load_sources([SOURCES])
    mappers = {n: Mapper(s, resolver()) for n, s in sources.items() if n in SECRETS}
    context = IngestContext(mappers=mappers, secrets=SECRETS, sink=FileSink(*files),
                            body_limit=64 * 1024, clock=lambda: NOW)
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
        yield c


def webhook(n: int) -> bytes:
    return (DATA / "zendesk-webhooks.jsonl").read_bytes().splitlines()[n]


def lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


async def test_signed_zendesk_webhook_is_stored_and_a_retry_has_the_same_id(
        client: httpx.AsyncClient, files: tuple[Path, Path]) -> None:
    body = webhook(0)
    headers = {**zendesk_headers(SECRETS["zendesk"], body, STAMP),
               "Content-Type": "application/json"}
    first = await client.post("/ingest/zendesk", content=body, headers=headers)
    again = await client.post("/ingest/zendesk", content=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == {"events": 1, "dead_letters": {}, "ignored": 0}
    stored = lines(files[0])
    assert [e["id"] for e in stored] == ["zd-01JC8Y2A0000000000000001"] * 2
    assert stored[0]["customer"] == "cust-zd-1" and stored[0]["type"] == "request.opened"


@pytest.mark.parametrize("change", ["signature", "body", "timestamp", "missing", "stale"])
async def test_bad_zendesk_signature_is_401_and_nothing_is_written(
        client: httpx.AsyncClient, files: tuple[Path, Path], change: str) -> None:
    body = webhook(0)
    headers = zendesk_headers(SECRETS["zendesk"], body, STAMP)
    if change == "signature":
        headers = zendesk_headers("another-secret", body, STAMP)
    elif change == "body":
        body = body.replace(b"5158", b"5159")
    elif change == "timestamp":
        headers["X-Zendesk-Webhook-Signature-Timestamp"] = "2026-11-06T21:20:01Z"
    elif change == "missing":
        headers = {}
    else:      # signed correctly, but an hour old: a replay
        headers = zendesk_headers(SECRETS["zendesk"], body, "2026-11-06T20:20:00Z")
    reply = await client.post("/ingest/zendesk", content=body, headers=headers)
    assert reply.status_code == 401
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == 401 and problem["title"] == "Unauthorized"
    assert SECRETS["zendesk"] not in reply.text
    assert not files[0].exists() and not files[1].exists()


async def test_zammad_hub_signature(client: httpx.AsyncClient, files: tuple[Path, Path]) -> None:
    body = (DATA / "zammad-webhooks.jsonl").read_bytes().splitlines()[0]
    bad = await client.post("/ingest/zammad", content=body,
                            headers={"X-Hub-Signature": hub_signature("nope", body)})
    assert bad.status_code == 401 and not files[0].exists()
    good = await client.post("/ingest/zammad", content=body,
                             headers={"X-Hub-Signature": hub_signature(SECRETS["zammad"], body)})
    assert good.status_code == 202, good.text
    assert [e["type"] for e in lines(files[0])] == ["request.opened"]


async def test_freshdesk_basic_auth_and_unmappable_payload(
        client: httpx.AsyncClient, files: tuple[Path, Path]) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(SECRETS["freshdesk"].encode()).decode()}
    payload = orjson.loads((DATA / "freshdesk-webhooks.jsonl").read_bytes().splitlines()[0])
    body = orjson.dumps(payload["payload"])
    refused = await client.post("/ingest/freshdesk", content=body,
                                headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert refused.status_code == 401
    accepted = await client.post("/ingest/freshdesk", content=body, headers=auth)
    assert accepted.status_code == 202
    stored = lines(files[0])
    assert stored[0]["time"] == "2026-11-06T21:20:00Z"       # the receive time
    odd = orjson.dumps({"freshdesk_webhook": {"event": "surprise", "ticket_id": "9"}})
    unmappable = await client.post("/ingest/freshdesk", content=odd, headers=auth)
    assert unmappable.status_code == 422
    assert "kept as a dead letter" in unmappable.json()["detail"]
    dead = lines(files[1])
    assert [(d["reason"], d["source"]) for d in dead] == [("unmappable", "freshdesk")]
    assert orjson.loads(dead[0]["record"]) == orjson.loads(odd)


async def test_malformed_json_is_400_and_kept(client: httpx.AsyncClient,
                                              files: tuple[Path, Path]) -> None:
    body = b'{"type": "zen:event-type:ticket.created", "id": '
    reply = await client.post("/ingest/zendesk", content=body,
                              headers=zendesk_headers(SECRETS["zendesk"], body, STAMP))
    assert reply.status_code == 400 and reply.json()["status"] == 400
    assert [d["reason"] for d in lines(files[1])] == ["malformed_json"]
    assert lines(files[1])[0]["record"] == body.decode()


async def test_unknown_customer_is_accepted_as_a_dead_letter(
        client: httpx.AsyncClient, files: tuple[Path, Path]) -> None:
    obj = orjson.loads(webhook(0))
    obj["detail"]["requester_id"] = "123123123"
    body = orjson.dumps(obj)
    reply = await client.post("/ingest/zendesk", content=body,
                              headers=zendesk_headers(SECRETS["zendesk"], body, STAMP))
    assert reply.status_code == 202
    assert reply.json()["dead_letters"] == {"unknown_customer": 1}
    assert not files[0].exists() and "123123123" not in lines(files[1])[0]["detail"]


async def test_body_limit_and_unknown_route(client: httpx.AsyncClient) -> None:
    big = b"{" + b" " * (64 * 1024) + b"}"
    reply = await client.post("/ingest/zendesk", content=big)
    assert reply.status_code == 413 and reply.json()["title"] == "Content Too Large"
    missing = await client.post("/ingest/nowhere", content=b"{}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_storage_failure_is_503(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.mkdir()                                 # cannot be appended to
    sources = load_sources([SOURCES])
    context = IngestContext(mappers={"zendesk": Mapper(sources["zendesk"], resolver())},
                            secrets=SECRETS, clock=lambda: NOW,
                            sink=FileSink(events, tmp_path / "dead.jsonl"))
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
        body = webhook(0)
        reply = await c.post("/ingest/zendesk", content=body,
                             headers=zendesk_headers(SECRETS["zendesk"], body, STAMP))
    assert reply.status_code == 503 and reply.headers["retry-after"] == "5"
    assert reply.json()["detail"] == "events could not be stored durably; retry later"


async def test_metrics_count_by_source_and_status_without_identities(
        client: httpx.AsyncClient) -> None:
    body = webhook(0)
    await client.post("/ingest/zendesk", content=body,
                      headers=zendesk_headers(SECRETS["zendesk"], body, STAMP))
    await client.post("/ingest/zendesk", content=body, headers={})
    text = (await client.get("/metrics")).text
    assert 'valeur_ingest_requests_total{source="zendesk",status="202"} 1.0' in text
    assert 'valeur_ingest_requests_total{source="zendesk",status="401"} 1.0' in text
    assert 'valeur_ingest_events_total{source="zendesk"} 1.0' in text
    assert "cust-zd-1" not in text and "8447388090494" not in text
