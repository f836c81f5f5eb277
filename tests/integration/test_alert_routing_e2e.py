"""Alerts routed for real: a pipeline destroys value, a shipped alert fires in Prometheus, reaches
Alertmanager, is routed by team with the example routing, and arrives at a webhook receiver.

Method:

* ``scripts/services`` starts its OWN Prometheus and Alertmanager for this test (temp services
  directory, free ports), so the shared servers are left alone. Prometheus loads a copy of the
  shipped alerts where only ``for:`` is shortened (expressions, labels and annotations as
  shipped); Alertmanager runs the example routing (``alertmanager.example.yml``) with its
  placeholder webhook URLs pointed at this test's receiver and group waits of one second.
* The spike alerts compare the last hour with the previous day. That history is backfilled
  with ``promtool tsdb create-blocks-from openmetrics``: a quiet day (callback outcome counters
  that do not move) for teams ``field`` and ``billing``, ending more than an hour ago.
* The pipeline is a real ``valeur-monitor run -`` process with ``--metrics-port``, fed on stdin:
  callbacks promised and never made for both teams, one customer first (so the counter exists
  before it grows), then more. Stream time moves past the deadlines with later events.
* ``BrokenCallbacksSpike`` must fire for both teams and arrive at
  ``/valeur-monitor/field/ticket`` (team ``field`` has its own route) and
  ``/valeur-monitor/support/ticket`` (billing: no route of its own, the support leads' fallback),
  with the shipped labels and runbook link.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services"
ALERTS = ROOT / "deploy" / "monitoring" / "alerts" / "valeur.rules.yml"
EXAMPLE = ROOT / "deploy" / "monitoring" / "alertmanager.example.yml"
PLACEHOLDER = "https://hooks.example.invalid/valeur-monitor"
HOST = "127.0.0.1"
JOB = "valeur-monitor"
ALERT = "BrokenCallbacksSpike"
SHORT_FOR = "4s"
TEAMS = {"field": "/valeur-monitor/field/ticket", "billing": "/valeur-monitor/support/ticket"}
BROKEN_PER_TEAM = 8
DEADLINE_S = 150.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], Any], timeout: float, log: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{log()}")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


class Receiver:
    """A webhook receiver: every POST body (JSON) with its path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    outer.received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self, path: str, alertname: str) -> list[dict[str, Any]]:
        return [a for p, body in list(self.received) if p == path for a in body["alerts"]
                if a["labels"].get("alertname") == alertname and a["status"] == "firing"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alertmanager_config(receiver_port: int) -> str:
    """The example routing, webhooks to the receiver, groups sent after one second."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert PLACEHOLDER in text
    config = yaml.safe_load(text.replace(PLACEHOLDER, f"http://{HOST}:{receiver_port}"
                                                      "/valeur-monitor"))
    config["route"].update(group_wait="1s", group_interval="1s")
    return yaml.safe_dump(config, sort_keys=False)


def short_alerts() -> tuple[str, dict[str, Any]]:
    """The shipped alerts with `for` shortened; also the shipped rule of ALERT."""
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    shipped = next(r for g in doc["groups"] for r in g["rules"] if r.get("alert") == ALERT)
    shipped = json.loads(json.dumps(shipped))
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SHORT_FOR
    return yaml.safe_dump(doc, sort_keys=False), shipped


def backfill(promtool: str, data_dir: Path, tmp: Path) -> None:
    """A quiet previous day: callback counters that exist and do not move, per team."""
    now = int(time.time())
    lines = ["# HELP valeur_rule_outcomes_total Rule outcomes.",
             "# TYPE valeur_rule_outcomes_total counter"]
    for team in TEAMS:
        labels = (f'rule="missed-callback",outcome="broken",team="{team}",channel="phone",'
                  f'job="{JOB}",instance="history"')
        lines += [f"valeur_rule_outcomes_total{{{labels}}} 3 {t}"
                  for t in range(now - 26 * 3600, now - 62 * 60, 60)]
    lines.append("# EOF")
    source = tmp / "history.om"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source),
                           str(data_dir)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def events(team: str, customers: range, promised: datetime) -> list[str]:
    out = []
    for i in customers:
        out.append(json.dumps({
            "id": f"{team}-cb-{i}", "type": "callback.promised", "customer": f"{team}-c{i}",
            "time": (promised - timedelta(minutes=5)).isoformat(), "ref": f"{team}-cb-{i}",
            "channel": "phone", "team": team, "source": "telephony",
            "data": {"promised_at": promised.isoformat()}}))
    return out


def tick(name: str, at: datetime) -> str:
    """An event that only moves stream time (a happy survey of a bystander)."""
    return json.dumps({"id": f"tick-{name}", "type": "survey.answered", "customer": "bystander",
                       "time": at.isoformat(), "channel": "web", "team": "survey",
                       "data": {"score": 5}})


@pytest.fixture
def stack(tmp_path: Path, promtool: str) -> Iterator[dict[str, Any]]:
    """Own Prometheus + Alertmanager started by scripts/services; the webhook receiver."""
    receiver = Receiver()
    services_dir = tmp_path / "services"
    rules = tmp_path / "alerts.yml"
    text, shipped = short_alerts()
    rules.write_text(text, encoding="utf-8")
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(alertmanager_config(receiver.port), encoding="utf-8")
    env = {**os.environ, "VALEUR_SERVICES_DIR": str(services_dir),
           "VALEUR_PROMETHEUS_PORT": str(free_port()),
           "VALEUR_ALERTMANAGER_PORT": str(free_port()),
           "VALEUR_PROMETHEUS_RULE_FILES": str(rules),
           "VALEUR_ALERTMANAGER_CONFIG": str(am_config)}
    backfill(promtool, services_dir / "prometheus" / "data", tmp_path)

    def services(action: str, name: str) -> None:
        done = subprocess.run([str(SERVICES), action, name], env=env, capture_output=True,
                              text=True, timeout=600, check=False, cwd=ROOT)
        assert done.returncode == 0, f"services {action} {name}:\n{done.stdout}{done.stderr}"

    try:
        services("start", "alertmanager")
        services("start", "prometheus")
        yield {"prometheus": f"http://{HOST}:{env['VALEUR_PROMETHEUS_PORT']}",
               "alertmanager": f"http://{HOST}:{env['VALEUR_ALERTMANAGER_PORT']}",
               "targets": services_dir / "prometheus" / "targets", "receiver": receiver,
               "shipped": shipped, "services_dir": services_dir}
    finally:
        for name in ("prometheus", "alertmanager"):
            subprocess.run([str(SERVICES), "stop", name], env=env, capture_output=True,
                           timeout=120, check=False, cwd=ROOT)
        receiver.close()


def test_a_value_destroying_pattern_pages_the_right_team(stack: dict[str, Any],
                                                         tmp_path: Path) -> None:
    prom, am, receiver = stack["prometheus"], stack["alertmanager"], stack["receiver"]
    # Prometheus sends to this Alertmanager (the script's config), not to a shared one.
    wait_for("Prometheus to discover its Alertmanager",
             lambda: get_json(f"{prom}/api/v1/alertmanagers")["data"]["activeAlertmanagers"],
             30, lambda: "")

    metrics_port = free_port()
    exe = shutil.which("valeur-monitor", path=str(Path(sys.executable).parent))
    assert exe, "valeur-monitor console script not installed in this environment"
    run = subprocess.Popen(
        [exe, "run", "-", "--rules", str(ROOT / "rules"), "--metrics-port", str(metrics_port),
         "--no-progress", "--dead-letters", str(tmp_path / "dead-letters.jsonl")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=tmp_path)
    assert run.stdin is not None

    def feed(lines: list[str]) -> None:
        assert run.stdin is not None
        run.stdin.write("\n".join(lines) + "\n")
        run.stdin.flush()

    def log() -> str:
        alerts = get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
        return (f"prometheus alerts: {json.dumps(alerts)[:3000]}\n"
                f"received: {json.dumps(receiver.received)[:3000]}")

    try:
        now = datetime.now(UTC).replace(microsecond=0)
        promised = now - timedelta(minutes=40)   # deadline (+15 min grace) 25 min ago
        # Wave 1: one broken callback per team, so each counter exists before it grows.
        feed([*(e for team in TEAMS for e in events(team, range(1), promised)),
              tick("1", now - timedelta(minutes=10))])
        (stack["targets"] / "run.json").write_text(json.dumps(
            [{"targets": [f"{HOST}:{metrics_port}"], "labels": {"job": JOB}}]), encoding="utf-8")
        query = (f'{prom}/api/v1/query?query=' + urllib.request.quote(
            f'valeur_rule_outcomes_total{{rule="missed-callback",outcome="broken",'
            f'instance="{HOST}:{metrics_port}"}}'))

        def scraped(value: float) -> bool:
            series = get_json(query)["data"]["result"]
            return len(series) == len(TEAMS) and all(float(s["value"][1]) == value
                                                     for s in series)

        wait_for("the first broken callbacks to be scraped", lambda: scraped(1.0), 60, log)
        time.sleep(4)   # two more scrapes at 1: the increase that follows is real
        # Wave 2: a spike of broken callbacks for both teams.
        promised2 = promised + timedelta(minutes=1)
        feed([*(e for team in TEAMS for e in events(team, range(1, BROKEN_PER_TEAM), promised2)),
              tick("2", now - timedelta(minutes=5))])
        wait_for("the spike to be scraped", lambda: scraped(float(BROKEN_PER_TEAM)), 60, log)

        def firing() -> set[str]:
            alerts = get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
            return {a["labels"].get("team", "") for a in alerts
                    if a["labels"]["alertname"] == ALERT and a["state"] == "firing"}

        assert wait_for(f"{ALERT} firing for {sorted(TEAMS)}",
                        lambda: firing() >= set(TEAMS) and firing(), DEADLINE_S, log)
        am_alerts = wait_for("the alerts in Alertmanager", lambda: [
            a for a in get_json(f"{am}/api/v2/alerts")
            if a["labels"]["alertname"] == ALERT], 30, log)
        assert {a["labels"]["team"] for a in am_alerts} >= set(TEAMS)

        for team, path in TEAMS.items():
            got = wait_for(f"{ALERT} for team {team} at {path}",
                           lambda p=path: receiver.alerts(p, ALERT), 60, log)
            alert = next(a for a in got if a["labels"]["team"] == team)
            shipped = stack["shipped"]
            assert alert["labels"]["severity"] == shipped["labels"]["severity"] == "ticket"
            assert alert["annotations"]["runbook_url"] == shipped["annotations"]["runbook_url"]
            assert alert["annotations"]["runbook_url"].endswith("#brokencallbacksspike")
            assert alert["annotations"]["summary"] == f"Missed callbacks spiking for team {team}"
            assert alert["labels"] == {"alertname": ALERT, "team": team, "severity": "ticket"}
        # Routed by team: field's alert never reaches the support fallback, and vice versa.
        field_at_support = [a for a in receiver.alerts(TEAMS["billing"], ALERT)
                            if a["labels"]["team"] == "field"]
        billing_at_field = [a for a in receiver.alerts(TEAMS["field"], ALERT)
                            if a["labels"]["team"] == "billing"]
        assert not field_at_support and not billing_at_field
    finally:
        if run.stdin is not None:
            run.stdin.close()
        try:
            run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
