"""The HTTP API against real Redis: answers, problems, authentication, published OpenAPI."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.integration.api_support import ADMIN_TOKEN, READ_TOKEN, Loaded, load, simulated
from valeur_monitor.api.app import create_app
from valeur_monitor.api.openapi import text as openapi_text
from valeur_monitor.engine.event import format_time, parse_time
from valeur_monitor.metrics import band_of
from valeur_monitor.read.memory import MemoryReader
from valeur_monitor.read.views import customer_view, decayed

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return simulated()


@pytest.fixture
def loaded(redis_db_url: str, lines: list[bytes]) -> Loaded:
    return load(redis_db_url, lines)


@pytest.fixture
def client(loaded: Loaded) -> Iterator[TestClient]:
    with TestClient(create_app(loaded.context())) as c:
        yield c


def _problem(response: object, status: int) -> dict[str, object]:
    assert getattr(response, "status_code") == status  # noqa: B009
    headers = getattr(response, "headers")  # noqa: B009
    assert headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = getattr(response, "json")()  # noqa: B009
    assert body["status"] == status and body["title"]
    return body


def test_customer_matches_the_engine(client: TestClient, loaded: Loaded) -> None:
    mem = MemoryReader(loaded.memory)
    name = mem.ranked(0, 1)[0][0]
    got = client.get(f"/v1/customers/{name}", headers=READ)
    assert got.status_code == 200, got.text
    body = got.json()
    score = mem.score(name)
    assert score is not None
    want = customer_view(score, mem.ledger(name), mem.promises(name), as_of=loaded.watermark,
                         half_life=loaded.rules.settings.half_life)
    assert body["customer"] == name and body["as_of"] == format_time(loaded.watermark)
    assert body["score"] == pytest.approx(want.score) and body["score"] < 0
    assert body["change"] == pytest.approx(body["score"] - body["previous_score"])
    assert body["band"] == band_of(body["score"])
    assert sum(body["dimensions"].values()) == pytest.approx(body["score"])
    assert [r["rule"] for r in body["top_reasons"]] == [r for r, _ in score.top_reasons(3)]
    assert len(body["open_promises"]) == len(mem.promises(name))
    # a month later the same customer counts half (half-life 30 days)
    later = format_time(loaded.watermark + 30 * 86_400_000)
    half = client.get(f"/v1/customers/{name}", params={"as_of": later}, headers=READ).json()
    assert half["score"] == pytest.approx(body["score"] / 2)
    assert half["as_of"] == later


def test_unknown_customer_and_bad_parameters_are_problems(client: TestClient) -> None:
    assert "no such customer" in str(_problem(client.get("/v1/customers/nobody",
                                                         headers=READ), 404)["detail"])
    bad = _problem(client.get("/v1/customers/x", params={"as_of": "yesterday"}, headers=READ),
                   400)
    assert "RFC 3339" in str(bad["detail"])
    bad = _problem(client.get("/v1/rankings/at-risk", params={"limit": 0}, headers=READ), 400)
    assert bad["invalid_params"]
    _problem(client.get("/v1/rankings/losing", params={"window": "400d"}, headers=READ), 400)
    _problem(client.get("/v1/nothing-here", headers=READ), 404)


def test_authentication_and_scopes(client: TestClient, loaded: Loaded) -> None:
    name = MemoryReader(loaded.memory).ranked(0, 1)[0][0]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
        refused = client.get(f"/v1/customers/{name}", headers=headers)
        _problem(refused, 401)
        assert refused.headers["www-authenticate"].startswith("Bearer")
        _problem(client.get("/v1/rules", headers=headers), 401)
    _problem(client.get("/v1/rules", headers=READ), 403)
    rules = client.get("/v1/rules", headers=ADMIN)
    assert rules.status_code == 200
    assert {a["id"] for a in rules.json()["alerts"]} == {a.id for a in loaded.rules.alerts}
    assert rules.json()["half_life"] == "30d"
    assert client.get(f"/v1/customers/{name}", headers=ADMIN).status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_ledger_pages_and_filters(client: TestClient, loaded: Loaded) -> None:
    mem = MemoryReader(loaded.memory)
    name = max((c for b in mem.batches() for c in b), key=lambda c: len(mem.ledger(c)))
    seqs: list[int] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/v1/customers/{name}/ledger", params=params, headers=READ).json()
        seqs += [e["seq"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seqs == sorted((e.seq for e in mem.ledger(name)), reverse=True)
    rule = mem.ledger(name)[0].rule
    only = client.get(f"/v1/customers/{name}/ledger", params={"rule": rule, "limit": 500},
                      headers=READ).json()["entries"]
    assert only and {e["rule"] for e in only} == {rule}
    since = mem.ledger(name)[len(mem.ledger(name)) // 2].time
    recent = client.get(f"/v1/customers/{name}/ledger", headers=READ,
                        params={"since": format_time(since), "outcome": ["matched", "broken"]}
                        ).json()["entries"]
    assert all(parse_time(e["time"]) >= since and e["outcome"] in ("matched", "broken")
               for e in recent)
    _problem(client.get(f"/v1/customers/{name}/ledger", params={"cursor": "abc"},
                        headers=READ), 400)


def test_rankings(client: TestClient, loaded: Loaded) -> None:
    risk = client.get("/v1/rankings/at-risk", params={"limit": 5}, headers=READ).json()
    scores = [i["score"] for i in risk["items"]]
    mem = MemoryReader(loaded.memory)
    half_life = loaded.rules.settings.half_life
    negatives = sorted(s for v in mem.scores([c for b in mem.batches() for c in b]).values()
                       if (s := decayed(v, loaded.watermark, half_life)) < 0)
    assert scores == pytest.approx(negatives[:5]) and scores and risk["complete"]
    team = loaded.memory.ledger(risk["items"][0]["customer"])[0].team
    by_team = client.get("/v1/rankings/at-risk", params={"team": team}, headers=READ).json()
    assert by_team["items"] and all(
        any(e.team == team for e in loaded.memory.ledger(i["customer"]))
        for i in by_team["items"])
    lose = client.get("/v1/rankings/losing", params={"window": "3d", "channel": "phone"},
                      headers=READ).json()
    assert lose["window"] == "3d" and all(i["net"] < 0 for i in lose["items"])


def test_access_log_has_no_customer_ids(client: TestClient, loaded: Loaded,
                                        caplog: pytest.LogCaptureFixture) -> None:
    name = MemoryReader(loaded.memory).ranked(0, 1)[0][0]
    with caplog.at_level(logging.INFO, logger="valeur_monitor.api"):
        client.get(f"/v1/customers/{name}", headers=READ)
        client.get(f"/v1/customers/{name}/ledger", headers=READ)
        client.get("/v1/customers/secret-customer-id", headers=READ)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("valeur_monitor.api")]
    assert any("/v1/customers/{customer}" in line and " 200 " in line for line in lines)
    assert not any(name in line or "secret-customer-id" in line for line in lines)


def test_published_openapi_is_current() -> None:
    checked_in = (ROOT / "docs" / "openapi.json").read_text()
    assert checked_in == openapi_text(), (
        "docs/openapi.json is stale: python -m valeur_monitor.api.openapi > docs/openapi.json")


def test_run_serve_keeps_serving_the_embedded_state(tmp_path: Path) -> None:
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(simulated(seed=2, customers=20, days=3)) + b"\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "valeur_monitor.cli.main", "run", str(events),
                             "--serve", "--port", str(port), "--no-progress", "--dead-letters",
                             str(tmp_path / "dl.jsonl"), "--scores", str(tmp_path / "s.jsonl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert ready.status_code == 200
        scores = [orjson.loads(line) for line in (tmp_path / "s.jsonl").read_bytes().splitlines()]
        worst = min(scores, key=lambda r: r["score"])
        got = httpx.get(f"http://127.0.0.1:{port}/v1/customers/{worst['customer']}",
                        params={"as_of": worst.get("as_of") or worst["at"]}).json()
        assert got["score"] == pytest.approx(worst["score"], abs=1e-6)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert out.strip()                               # the run summary was printed first


def test_pages_need_a_token_and_escape_what_they_echo(client: TestClient) -> None:
    page = client.get("/ui/at-risk", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
    bad = client.post("/ui/login", content=b"token=wrong&next=/ui/at-risk",
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert bad.status_code == 401 and "Unknown token" in bad.text
    good = client.post("/ui/login", content=f"token={READ_TOKEN}&next=//evil.example/".encode(),
                       headers={"content-type": "application/x-www-form-urlencoded"},
                       follow_redirects=False)
    assert good.status_code == 303 and good.headers["location"] == "/ui/at-risk"
    assert "httponly" in good.headers["set-cookie"].lower()
    missing = client.get("/ui/customers/<script>x", headers=READ)
    assert missing.status_code == 404 and "<script>x" not in missing.text
    assert "&lt;script&gt;x" in missing.text
    assert "default-src 'none'" in missing.headers["content-security-policy"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/at-risk"
