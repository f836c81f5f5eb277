"""Account roll-up: accounts from `data.account` (embedded run) and from identity files."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from tests.integration.api_support import READ_TOKEN, TOKENS, simulated
from valeur_monitor.api.app import create_app
from valeur_monitor.api.resources import Context
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.read.accounts import RedisAccounts, rollup
from valeur_monitor.read.redis import RedisReader
from valeur_monitor.settings import ApiSettings

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "valeur_monitor.cli.main"]
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


def account_of(customer: str) -> str:
    return f"acct-{zlib.crc32(customer.encode()) % 6}"


def cli(url: str, *args: str) -> bytes:
    done = subprocess.run([*CLI, *args], capture_output=True, timeout=300, check=False,
                          env={**os.environ, "VALEUR_REDIS_URL": url})
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_accounts_in_the_api_and_the_export(redis_db_url: str, tmp_path: Path) -> None:
    events = []
    for line in simulated(seed=6, customers=40, days=4):
        event = orjson.loads(line)
        if isinstance(event.get("data"), dict) and isinstance(event.get("customer"), str):
            event["data"]["account"] = account_of(event["customer"])
        events.append(orjson.dumps(event))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(events) + b"\n")
    cli(redis_db_url, "run", str(path), "--store", redis_db_url, "--no-progress",
        "--dead-letters", str(tmp_path / "dl.jsonl"))

    client = redis.Redis.from_url(redis_db_url)
    reader = RedisReader(client)
    book = RedisAccounts(client)
    watermark = reader.watermark()
    context = Context(reader, load_rules(["rules"]), ApiSettings(tokens=TOKENS),
                      clock=lambda: watermark, book=book)
    api = TestClient(create_app(context))
    members = book.members("acct-1")
    assert members and all(account_of(c) == "acct-1" for c in members)
    body = api.get("/v1/accounts/acct-1", headers=READ).json()
    scores = {c: api.get(f"/v1/customers/{c}", headers=READ).json()["score"] for c in members}
    assert body["customers"] == len(members)
    assert body["score"] == pytest.approx(sum(scores.values()))
    assert [m["customer"] for m in body["members"]] == sorted(scores, key=lambda c: scores[c])
    assert body["band"] == rollup("acct-1", scores).band
    assert api.get(f"/v1/customers/{members[0]}", headers=READ).json()["account"] == "acct-1"
    assert api.get("/v1/accounts/nobody", headers=READ).status_code == 404

    # an identity file moves a customer to another account
    moved = members[0]
    ids = tmp_path / "ids.csv"
    ids.write_text(f"kind,value,customer,account\nemail,x@example.org,{moved},acct-big\n")
    assert b"1 new or moved" in cli(redis_db_url, "accounts", "load", str(ids))
    assert book.members("acct-big") == [moved] and moved not in book.members("acct-1")

    as_of = body["as_of"]
    rows = [orjson.loads(x) for x in cli(redis_db_url, "export", "--accounts", "-f", "jsonl",
                                         "--as-of", as_of).splitlines()]
    by = {r["account"]: r for r in rows}
    assert set(by) == {account_of(c) for c in scores} | {"acct-big"} | set(by)
    assert by["acct-big"]["score"] == pytest.approx(scores[moved], abs=1e-5)
    rest = {c: s for c, s in scores.items() if c != moved}
    assert by["acct-1"]["score"] == pytest.approx(sum(rest.values()), abs=1e-5)
    assert by["acct-1"]["customers"] == len(rest)
    client.close()
