"""The real servers started by scripts/services answer, and the script reports them up."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
import redis

from tests.fixtures.servers import PROJECT_ROOT, SERVICES_SCRIPT

pytestmark = pytest.mark.integration


def test_redis_ping_and_round_trip(redis_url: str, redis_client: redis.Redis) -> None:
    shared = redis.Redis.from_url(redis_url)
    try:
        assert shared.ping()
    finally:
        shared.close()
    assert redis_client.ping()
    assert redis_client.dbsize() == 0  # fresh, flushed DB
    assert redis_client.set("valeur:smoke", "42", ex=60)
    assert redis_client.get("valeur:smoke") == b"42"


def test_prometheus_ready(prometheus_url: str) -> None:
    with urllib.request.urlopen(f"{prometheus_url}/-/ready", timeout=5) as response:
        assert response.status == 200


def test_promtool_version(promtool: str) -> None:
    proc = subprocess.run(
        [promtool, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "promtool" in (proc.stdout + proc.stderr)


def test_services_status_reports_all_up(
    redis_url: str, kafka_bootstrap: str, prometheus_url: str, alertmanager_url: str
) -> None:
    proc = subprocess.run(
        [str(SERVICES_SCRIPT), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["redis", "up"],
        ["kafka", "up"],
        ["prometheus", "up"],
        ["alertmanager", "up"],
    ]
    assert redis_url.rsplit("/", 1)[0] in proc.stdout
    assert kafka_bootstrap in proc.stdout
    assert prometheus_url in proc.stdout
    assert alertmanager_url in proc.stdout


def test_alertmanager_ready_with_the_example_routing(alertmanager_url: str) -> None:
    with urllib.request.urlopen(f"{alertmanager_url}/api/v2/status", timeout=5) as response:
        status = json.load(response)
    original = status["config"]["original"]
    # The example routing (deploy/monitoring/alertmanager.example.yml), webhooks made local.
    for receiver in ("platform-page", "field-ticket", "support-ticket"):
        assert f"name: {receiver}" in original
    assert "hooks.example.invalid" not in original
