"""deploy/monitoring: generated dashboards, PromQL validity, alerts, runbook, promtool tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from deploy.monitoring import generate
from valeur_monitor.metrics import Metrics
from valeur_monitor.streaming.collectors import LagCollector

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "deploy" / "monitoring"
ALERTS = MON / "alerts" / "valeur.rules.yml"
RECORDING = MON / "recording" / "valeur.rules.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/valeur-monitor/valeur-monitor/blob/main/docs/runbook.md#"
DASHBOARDS = {"customer-value-overview.json": "valeur-overview",
              "pipeline-health.json": "valeur-pipeline"}
ALERT_NAMES = {"BrokenCallbacksSpike", "UnansweredRequestsSpike", "ValueDestroyedAboveUsual",
               "CustomersAtRiskRising", "ProcessingLagHigh", "ConsumerLagHigh",
               "DeadLettersGrowing", "WorkerDown", "StoreErrors"}
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                "$team": ".*", "$channel": ".*"}


def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool"
                                          if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.fail("promtool not found (Debian package `prometheus`, or put it on PATH)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=300,
                          check=False, cwd=ROOT)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MON / "dashboards" / name).read_text(encoding="utf-8"))
    return data


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))   # panels of collapsed rows
    return out


def targets(board: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(p["id"], t["refId"], t["expr"]) for p in panels(board) for t in p.get("targets", [])]


def substitute(expr: str) -> str:
    for var, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules(ALERTS) if "alert" in r]


def exported_names() -> set[str]:
    """Sample names valeur_monitor.metrics exports once every method ran."""
    m = Metrics(registry=CollectorRegistry())
    m.event_received("s", "t")
    m.event_processed("t")
    m.dead_letter("r")
    m.outcome("r", "kept", "t", "c")
    m.value("r", "time", "t", "c", 1.0)
    m.value("r", "time", "t", "c", -1.0)
    m.set_open_promises({"r": 1})
    m.store_error("o")
    m.broker_error("o")
    # the worker's scrape-time collector (streaming/collectors.py)
    m.registry.register(LagCollector("events", lambda: {0: 1}))
    return {s.name for f in m.registry.collect() for s in f.samples
            if not s.name.endswith("_created")} | {"up"}


def metric_names(expr: str) -> set[str]:
    """Metric-looking identifiers of a PromQL expression (strings and label matchers removed)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"\b(valeur[a-z0-9_:]*|up)\b", expr))
    return names


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {slug(line.lstrip("#")) for line in RUNBOOK.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")}


# -- dashboards ---------------------------------------------------------------------------------
def test_generate_check_passes() -> None:
    result = subprocess.run([sys.executable, "-m", "deploy.monitoring.generate", "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generate_check_fails_with_a_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    for name in DASHBOARDS:
        shutil.copy(MON / "dashboards" / name, tmp_path / name)
    stale = tmp_path / "pipeline-health.json"
    stale.write_text(stale.read_text().replace("Workers up", "Workers upp"))
    monkeypatch.setattr(generate, "DASHBOARDS", tmp_path)
    assert generate.main(["--check"]) == 1
    out = capsys.readouterr()
    assert '-      "title": "Workers upp",' in out.out
    assert '+      "title": "Workers up",' in out.out
    assert "out of date" in out.err
    assert generate.main([]) == 0            # regenerates ...
    assert generate.main(["--check"]) == 0   # ... and is clean again
    (tmp_path / "customer-value-overview.json").unlink()
    assert generate.main(["--check"]) == 1   # a missing file is a difference too


def test_generation_is_deterministic() -> None:
    first, second = generate.render(), generate.render()
    assert first == second
    for text in first.values():
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2,
                                  ensure_ascii=False) + "\n"


@pytest.mark.parametrize(("name", "uid"), sorted(DASHBOARDS.items()))
def test_dashboard_shape(name: str, uid: str) -> None:
    board = dashboard(name)
    assert board["uid"] == uid
    assert board["title"] and board["description"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        where = f"{name} panel {panel['id']} {panel['title']!r}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel.get("description"), where
        assert panel["fieldConfig"]["defaults"]["unit"] in {
            "short", "s", "percentunit", "dateTimeAsIso"}, where
        assert panel["targets"], where
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", where


def test_overview_covers_the_issue() -> None:
    board = dashboard("customer-value-overview.json")
    exprs = "\n".join(e for _, _, e in targets(board))
    for needle in ("sum by (rule) (rate(valeur_value_created_total",
                   "sum by (team) (rate(valeur_value_destroyed_total",
                   "sum by (channel) (rate(valeur_value_destroyed_total",
                   'outcome="broken"', 'outcome="repeat"', "technician-no-show",
                   "visit-not-confirmed", 'band=~"critical|at_risk"',
                   "valeur_customer_alerts_total"):
        assert needle in exprs, needle


def test_pipeline_covers_the_issue() -> None:
    board = dashboard("pipeline-health.json")
    exprs = "\n".join(e for _, _, e in targets(board))
    for needle in ("valeur_events_received_total", "valeur_events_processed_total",
                   "sum by (reason) (rate(valeur_events_dead_lettered_total",
                   "valeur_event_time_lag_seconds",
                   "histogram_quantile(0.5, sum by (le) (rate(valeur_batch_duration_seconds",
                   "histogram_quantile(0.99, sum by (le) (rate(valeur_batch_duration_seconds",
                   "valeur_batch_size", "valeur_store_errors_total", "valeur_broker_errors_total",
                   'up{job="valeur-monitor"}', "valeur_consumer_lag_records"):
        assert needle in exprs, needle


def test_panel_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool has no query parser: wrap every panel expression in a recording rule."""
    rules_list = []
    for name in DASHBOARDS:
        for pid, ref, expr in targets(dashboard(name)):
            record = f"panel:{Path(name).stem.replace('-', '_')}:{pid}_{ref}"
            rules_list.append({"record": record, "expr": substitute(expr)})
    assert len(rules_list) >= 30
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules_list}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules_list)} rules found" in result.stdout


def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    """The wrapper above really parses: a typo fails."""
    path = tmp_path / "bad.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum by (rule) (rate(valeur_value_created_total[5m])"}]}]}))
    assert run_promtool("check", "rules", str(path)).returncode != 0


def test_expressions_use_only_exported_metrics() -> None:
    """Dashboards and alerts query the raw metrics (plus `up`): they work on any Prometheus that
    scrapes a runner, with or without the recording rules."""
    known = exported_names()
    exprs = [e for name in DASHBOARDS for _, _, e in targets(dashboard(name))]
    exprs += [a["expr"] for a in alerts()]
    exprs += [r["expr"] for r in rules(RECORDING)]
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= known, (names - known, expr)


# -- rules and alerts ---------------------------------------------------------------------------
def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS), str(RECORDING))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    files = sorted(str(p) for p in (MON / "tests").glob("*.yml"))
    assert len(files) >= 3
    result = run_promtool("test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_every_alert_is_complete_and_has_a_runbook_section() -> None:
    anchors = runbook_anchors()
    found = {a["alert"] for a in alerts()}
    assert found == ALERT_NAMES
    for alert in alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"page", "ticket", "info"}, name
        notes = alert["annotations"]
        assert notes["summary"].strip() and notes["description"].strip(), name
        url = notes["runbook_url"]
        assert url.startswith(RUNBOOK_URL), (name, url)
        anchor = url.removeprefix(RUNBOOK_URL)
        assert anchor in anchors, f"{name}: #{anchor} is not a heading of docs/runbook.md"
        assert alert.get("for"), name
    section = RUNBOOK.read_text(encoding="utf-8")
    for heading in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**"):
        assert section.count(heading) >= len(ALERT_NAMES), heading
    assert "valeur-monitor explain CUSTOMER" in section


def test_recording_rules_are_named_by_convention() -> None:
    records = [r["record"] for r in rules(RECORDING) if "record" in r]
    assert "valeur:value_destroyed:rate1h" in records
    for record in records:
        assert re.fullmatch(r"valeur:[a-z0-9_]+:[a-z0-9_]+", record), record


def test_promtool_tests_cover_each_alert_firing_and_not_and_every_recording_rule() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    tested_exprs: list[str] = []
    for path in (MON / "tests").glob("*.yml"):
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
            tested_exprs += [case["expr"] for case in test.get("promql_expr_test", [])]
    assert firing == ALERT_NAMES
    assert quiet == ALERT_NAMES
    for record in (r["record"] for r in rules(RECORDING)):
        assert any(record in expr for expr in tested_exprs), f"{record} is not tested"


# -- Alertmanager and Grafana provisioning ------------------------------------------------------
def test_alertmanager_example() -> None:
    path = MON / "alertmanager.example.yml"
    config = load_yaml(path)
    route = config["route"]
    assert route["group_by"] == ["alertname", "team"]
    receivers = {r["name"] for r in config["receivers"]}

    def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(n for child in node.get("routes", []) for n in walk(child))]

    routes = walk(route)
    assert {r["receiver"] for r in routes} <= receivers
    matchers = " ".join(m for r in routes for m in r.get("matchers", []))
    assert "team=" in matchers
    for severity in ("page", "info"):
        assert f'severity="{severity}"' in matchers
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert hook["url"].startswith("https://hooks.example.invalid/")
    amtool = shutil.which("amtool")
    if amtool:   # optional extra check where Alertmanager is installed
        result = subprocess.run([amtool, "check-config", str(path)], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning() -> None:
    boards = load_yaml(MON / "provisioning" / "dashboards" / "valeur.yml")
    provider = boards["providers"][0]
    assert boards["apiVersion"] == 1 and provider["type"] == "file"
    assert provider["options"]["path"]
    sources = load_yaml(MON / "provisioning" / "datasources" / "prometheus.yml")
    assert sources["apiVersion"] == 1
    assert [s["type"] for s in sources["datasources"]] == ["prometheus"]
