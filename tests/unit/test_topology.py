"""streams/topics.yaml and `topics apply` planning, against a fake admin client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from valeur_monitor.errors import ConfigError
from valeur_monitor.kafka.admin import Topology, apply_topology, effective, load_topology
from valeur_monitor.settings import TOPIC_ROLES

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_shipped_topology() -> None:
    topology = load_topology(ROOT / "streams" / "topics.yaml")
    assert set(topology.topics) == set(TOPIC_ROLES)
    assert topology.topics["score-updates"].configs["cleanup.policy"] == "compact"
    dead = topology.topics["dead-letters"].configs
    assert int(dead["retention.ms"]) >= 30 * 86_400_000
    assert topology.topics["events"].partitions >= 4
    renamed = load_topology(ROOT / "streams" / "topics.yaml", {"events": "my.events"})
    assert renamed.name("events") == "my.events"
    assert renamed.name("dead-letters") == topology.name("dead-letters")


@pytest.mark.parametrize(("text", "message"), [
    ("version: 1\ntopics: {}\n", "missing topic role"),
    ("version: 2\ntopics: {}\n", "version"),
    ("version: 1\ntopics:\n  events: {partitions: 0}\n", "partitions"),
    ("version: 1\ntopics:\n  events: {partitions: 1, color: red}\n", "color"),
    ("version: 1\ntopics: [\n", "not valid YAML"),
])
def test_bad_topology_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_topology(path)


def test_duplicate_names_and_unknown_roles(tmp_path: Path) -> None:
    body = "".join(f"  {r}: {{name: same, partitions: 1}}\n" for r in TOPIC_ROLES)
    path = tmp_path / "topics.yaml"
    path.write_text("version: 1\ntopics:\n" + body)
    with pytest.raises(ConfigError, match="same name"):
        load_topology(path)
    with pytest.raises(ConfigError, match="unknown topic role"):
        load_topology(ROOT / "streams" / "topics.yaml", {"scores": "x"})


def test_replication_is_fitted_to_the_cluster() -> None:
    spec = load_topology(ROOT / "streams" / "topics.yaml").topics["events"]
    rf, configs, notes = effective(spec, brokers=1)
    assert rf == 1 and configs["min.insync.replicas"] == "1" and len(notes) == 2
    rf, configs, notes = effective(spec, brokers=5)
    assert rf == 3 and configs["min.insync.replicas"] == "2" and notes == []


class FakeAdmin:
    """Just enough of kafka-python 3's KafkaAdminClient (results are plain dicts)."""

    def __init__(self) -> None:
        self.topics: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"broker_id": 1}]}

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        out = []
        for name in names:
            t = self.topics.get(name)
            if t is None:
                out.append({"name": name, "error_code": 3, "partitions": []})
            else:
                out.append({"name": name, "error_code": 0, "partitions": [
                    {"partition_index": i, "replica_nodes": [1]} for i in range(t["n"])]})
        return out

    def create_topics(self, spec: dict[str, Any], wait_for_metadata: bool = False) -> None:
        for name, s in spec.items():
            self.calls.append(f"create {name}")
            self.topics[name] = {"n": s["num_partitions"], "configs": dict(s["configs"])}

    def create_partitions(self, spec: dict[str, int]) -> None:
        for name, n in spec.items():
            self.calls.append(f"partitions {name} {n}")
            self.topics[name]["n"] = n

    def describe_configs(self, resources: list[Any], config_filter: str) -> dict[str, Any]:
        r = resources[0]
        configs = self.topics[r.name]["configs"]
        return {"topic": {r.name: {k: {"value": configs.get(k)} for k in r.configs}}}

    def alter_configs(self, resources: list[Any]) -> dict[str, Any]:
        r = resources[0]
        self.calls.append(f"configs {r.name}")
        self.topics[r.name]["configs"].update(r.configs)
        return {"topic": {r.name: "OK"}}


def test_apply_is_idempotent_and_only_increases_partitions() -> None:
    import dataclasses

    admin = FakeAdmin()
    topology = load_topology(ROOT / "streams" / "topics.yaml")
    first = apply_topology(admin, topology)
    roles = len(topology.topics)
    assert [a.kind for a in first if a.kind not in ("note",)] == ["create"] * roles
    assert apply_topology(admin, topology, dry_run=True) == [
        a for a in apply_topology(admin, topology)]
    again = [a.kind for a in apply_topology(admin, topology) if a.kind != "note"]
    assert again == ["unchanged"] * roles and len(admin.calls) == roles
    events = topology.topics["events"]
    bigger = Topology({**topology.topics, "events": dataclasses.replace(
        events, partitions=events.partitions + 4,
        configs={**events.configs, "retention.ms": "1000"})})
    planned = apply_topology(admin, bigger, dry_run=True)
    assert len(admin.calls) == roles                          # dry run: nothing done
    assert {a.kind for a in planned if a.topic == events.name} >= {"partitions", "configs"}
    apply_topology(admin, bigger)
    assert admin.topics[events.name]["n"] == events.partitions + 4
    assert admin.topics[events.name]["configs"]["retention.ms"] == "1000"
    shrink = [a for a in apply_topology(admin, topology) if a.topic == events.name]
    assert any(a.kind == "warning" and "cannot remove partitions" in a.detail for a in shrink)
    assert admin.topics[events.name]["n"] == events.partitions + 4
