"""`identities load` into a real Redis, then resolution through the Redis book: hashed keys only,
no raw email or phone number stored, and a Redis outage is a StoreError (the ingest route's 503)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
import redis

from valeur_monitor.errors import StoreError
from valeur_monitor.identity.book import RedisBook
from valeur_monitor.identity.resolve import Resolver
from valeur_monitor.store.keys import Keys

from .streaming_support import CLI, ROOT, run_cli

pytestmark = pytest.mark.integration
IDS = ROOT / "tests" / "data" / "sources" / "identities.csv"


def test_load_and_resolve_through_redis(redis_db_url: str, redis_client: Any) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env["VALEUR_REDIS_URL"] = redis_db_url
    done = run_cli(["identities", "load", str(IDS)], env)
    assert "loaded 7 identities" in done.stdout and "(7 known)" in done.stdout
    again = run_cli(["identities", "load", str(IDS)], env)      # idempotent
    assert "(7 known)" in again.stdout
    stored = redis_client.hgetall(Keys().identities)
    dump = b" ".join([*stored.keys(), *stored.values()]).lower()
    assert b"@" not in dump and b"472102030" not in dump and b"8447388090494" not in dump
    resolver = Resolver(RedisBook(redis_client, Keys().identities))
    hit = resolver.resolve("email", "JEANNE.martin@example.fr")
    assert (hit.customer, hit.account, hit.how) == ("cust-fd-1", "acct-paris", "book")
    assert resolver.resolve("phone", "04 72 10 20 30", region="FR").customer == "cust-ph-1"
    assert resolver.resolve("external", "3", namespace="zammad").customer == "cust-zm-1"
    assert resolver.resolve("email", "nobody@example.com").customer is None


def test_bad_file_loads_nothing(redis_db_url: str, redis_client: Any, tmp_path: Any) -> None:
    bad = tmp_path / "ids.csv"
    bad.write_text("kind,value,customer,account\nemail,a@example.com,c1,\nphone,12,c2,\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env["VALEUR_REDIS_URL"] = redis_db_url
    proc = subprocess.run([CLI, "identities", "load", str(bad)], env=env, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 1
    assert f"{bad}:3: not a phone number" in proc.stdout + proc.stderr
    assert redis_client.hlen(Keys().identities) == 0


def test_redis_down_is_a_store_error() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with pytest.raises(StoreError):
        RedisBook(client, Keys().identities).lookup(["00"])
