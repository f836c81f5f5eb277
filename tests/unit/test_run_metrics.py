"""`run --metrics-port`: counters added once per batch, promises and bands read at scrape time."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from valeur_monitor.cli.run_cmd import run_files
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.observe import metrics_hook
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.census import StatesCensus
from valeur_monitor.store.memory import MemoryStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode())
            for s in family.samples}


def test_run_metrics_match_the_run(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=4, customers=80, days=3, bad_rate=0.01))
    rules = load_rules(["rules"])
    port = _free_port()
    hook = metrics_hook(port, rules)
    report = run_files([str(events)], rules=["rules"], progress=False, hooks=[hook],
                       dead_letters=str(tmp_path / "dead.jsonl"))
    # The scrape-time collector reads the store the run used: compare with a second run.
    store = MemoryStore()
    runner = EmbeddedRunner(rules, store)
    runner.feed(events.read_bytes().splitlines())
    runner.finish()
    census = StatesCensus(store)
    got = _scrape(port)

    def total(name: str, **labels: str) -> float:
        return sum(v for (n, ls), v in got.items()
                   if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))

    assert total("valeur_events_processed_total") == report.processed
    assert total("valeur_events_received_total") == report.received
    assert total("valeur_events_dead_lettered_total") == sum(report.dead_letters.values())
    for (rule, outcome), n in report.outcomes.items():
        assert total("valeur_rule_outcomes_total", rule=rule, outcome=outcome) == n
    created = sum(report.created.values())
    assert abs(total("valeur_value_created_total") - created) < 1e-6 * max(1.0, created)
    expected = census.open_promises()
    assert sum(expected.values()) > 0
    for rule in rules.rule_ids():
        assert total("valeur_open_promises", rule=rule) == expected.get(rule, 0)
    bands = census.bands(hook.metrics.band_edges)
    for band, n in bands.items():
        assert total("valeur_customers", band=band) == n
    assert sum(bands.values()) == report.customers
