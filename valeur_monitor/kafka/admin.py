"""The topic topology (streams/topics.yaml) and `topics apply`, with kafka-python's admin client.

`apply_topology` is idempotent: it creates missing topics, raises partition counts (never
lowers them: Kafka cannot), and sets the configs the file names (other configs are left alone).
It returns what it did, one `Action` per change, so the CLI can print it and tests can check it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from valeur_monitor.errors import BrokerError, ConfigError
from valeur_monitor.settings import TOPIC_ROLES

MIN_ISR = "min.insync.replicas"
UNKNOWN_TOPIC = 3  # Kafka error code UNKNOWN_TOPIC_OR_PARTITION

ActionKind = Literal["create", "partitions", "configs", "unchanged", "note", "warning"]


def _config_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _config_strings(value: Any) -> Any:
    """Topic config values as Kafka wants them: strings (YAML may give ints and booleans)."""
    if isinstance(value, Mapping):
        return {str(k): _config_value(v) for k, v in value.items()}
    return value


class _TopicFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str = ""
    partitions: int = Field(ge=1, le=10_000)
    replication_factor: int | None = Field(default=None, ge=1)
    configs: dict[str, str] = Field(default_factory=dict)

    _strings = field_validator("configs", mode="before")(_config_strings)


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replication_factor: int = Field(default=1, ge=1)
    configs: dict[str, str] = Field(default_factory=dict)

    _strings = field_validator("configs", mode="before")(_config_strings)


class _TopologyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    defaults: _Defaults = _Defaults()
    topics: dict[str, _TopicFile]


@dataclass(frozen=True)
class TopicSpec:
    """One topic as it should be."""

    role: str
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Topology:
    """Every topic of the pipeline, by role (events, score-updates, ...)."""

    topics: dict[str, TopicSpec]

    def name(self, role: str) -> str:
        return self.topics[role].name

    def with_names(self, names: Mapping[str, str]) -> Topology:
        """The same topology with some topic names replaced (role -> name)."""
        unknown = set(names) - set(self.topics)
        if unknown:
            raise ConfigError(f"unknown topic role(s) {sorted(unknown)}; "
                              f"roles are {', '.join(self.topics)}")
        return Topology({role: TopicSpec(role, names.get(role, spec.name), spec.partitions,
                                         spec.replication_factor, dict(spec.configs),
                                         spec.description)
                         for role, spec in self.topics.items()})


def load_topology(path: str | Path, names: Mapping[str, str] | None = None) -> Topology:
    """Read and check a topology file; `names` overrides topic names by role."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read topology {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        parsed = _TopologyFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    missing = [r for r in TOPIC_ROLES if r not in parsed.topics]
    unknown = [r for r in parsed.topics if r not in TOPIC_ROLES]
    if missing or unknown:
        parts = ([f"missing topic role(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown topic role(s) {', '.join(unknown)}"] if unknown else [])
        raise ConfigError(f"{path}: {'; '.join(parts)} (roles: {', '.join(TOPIC_ROLES)})")
    topics: dict[str, TopicSpec] = {}
    for role, entry in parsed.topics.items():
        topics[role] = TopicSpec(
            role=role, name=entry.name or role, partitions=entry.partitions,
            replication_factor=entry.replication_factor or parsed.defaults.replication_factor,
            configs={**parsed.defaults.configs, **entry.configs},
            description=" ".join(entry.description.split()))
    seen: dict[str, str] = {}
    for role, spec in topics.items():
        if spec.name in seen:
            raise ConfigError(f"{path}: topics {seen[spec.name]} and {role} have the same name "
                              f"{spec.name!r}")
        seen[spec.name] = role
    topology = Topology(topics)
    return topology.with_names(names) if names else topology


@dataclass(frozen=True)
class Action:
    """One thing `apply_topology` did (or would do with `dry_run`)."""

    topic: str
    kind: ActionKind
    detail: str


def effective(spec: TopicSpec, brokers: int) -> tuple[int, dict[str, str], list[str]]:
    """Replication factor and configs fitted to a cluster of `brokers` brokers, with notes."""
    notes: list[str] = []
    rf = spec.replication_factor
    if rf > brokers:
        notes.append(f"replication factor {rf} capped to {brokers} (brokers in the cluster)")
        rf = brokers
    configs = dict(spec.configs)
    if MIN_ISR in configs:
        wanted = int(configs[MIN_ISR])
        fitted = max(1, min(wanted, rf - 1 if rf > 1 else 1))
        if fitted != wanted:
            notes.append(f"{MIN_ISR} {wanted} capped to {fitted} (replication factor {rf})")
            configs[MIN_ISR] = str(fitted)
    return rf, configs, notes


def apply_topology(admin: Any, topology: Topology, *, dry_run: bool = False,
                   roles: list[str] | None = None) -> list[Action]:
    """Create/update the topics of `topology` with a kafka-python `KafkaAdminClient`."""
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import KafkaError

    specs = [topology.topics[r] for r in (roles or list(topology.topics))]
    actions: list[Action] = []
    try:
        brokers = max(1, len(admin.describe_cluster().get("brokers", [])))
        described = {t["name"]: t for t in admin.describe_topics([s.name for s in specs])}
        for spec in specs:
            rf, configs, notes = effective(spec, brokers)
            actions += [Action(spec.name, "note", n) for n in notes]
            info = described.get(spec.name)
            if info is None or info.get("error_code") == UNKNOWN_TOPIC:
                detail = (f"{spec.partitions} partitions, replication factor {rf}"
                          + (", " + ", ".join(f"{k}={v}" for k, v in sorted(configs.items()))
                             if configs else ""))
                if not dry_run:
                    admin.create_topics({spec.name: {"num_partitions": spec.partitions,
                                                     "replication_factor": rf,
                                                     "configs": configs}},
                                        wait_for_metadata=True)
                actions.append(Action(spec.name, "create", detail))
                continue
            if info.get("error_code"):
                raise BrokerError(f"cannot describe topic {spec.name}: Kafka error code "
                                  f"{info['error_code']}")
            changed = False
            partitions = info.get("partitions") or []
            current = len(partitions)
            if spec.partitions > current:
                if not dry_run:
                    admin.create_partitions({spec.name: spec.partitions})
                actions.append(Action(spec.name, "partitions",
                                      f"partitions {current} -> {spec.partitions} (keyed records "
                                      "of existing keys may move to new partitions)"))
                changed = True
            elif spec.partitions < current:
                actions.append(Action(spec.name, "warning",
                                      f"has {current} partitions, the spec asks {spec.partitions}:"
                                      " left as is (Kafka cannot remove partitions)"))
            replicas = len(partitions[0].get("replica_nodes", [])) if partitions else rf
            if replicas != rf:
                actions.append(Action(spec.name, "warning",
                                      f"replication factor is {replicas}, the spec asks {rf}: "
                                      "left as is (changing it needs a partition reassignment)"))
            if configs:
                resource = ConfigResource(ConfigResourceType.TOPIC, spec.name,
                                          dict.fromkeys(configs))
                result = admin.describe_configs([resource], config_filter="all")
                now = {k: (v or {}).get("value") for k, v in
                       result.get("topic", {}).get(spec.name, {}).items()}
                diff = {k: v for k, v in configs.items() if now.get(k) != v}
                if diff:
                    if not dry_run:
                        reply = admin.alter_configs(
                            [ConfigResource(ConfigResourceType.TOPIC, spec.name, dict(diff))])
                        status = reply.get("topic", {}).get(spec.name)
                        if status is not None and status != "OK":
                            raise BrokerError(f"altering configs of {spec.name}: {status}")
                    actions.append(Action(spec.name, "configs", ", ".join(
                        f"{k}: {now.get(k)} -> {v}" for k, v in sorted(diff.items()))))
                    changed = True
            if not changed:
                actions.append(Action(spec.name, "unchanged",
                                      f"{current} partitions, configs as specified"))
    except KafkaError as exc:
        raise BrokerError(f"Kafka admin operation failed: {exc}") from exc
    return actions


def open_admin(client_config: Mapping[str, Any]) -> Any:
    """A kafka-python KafkaAdminClient, or BrokerError with a one-line reason."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        return KafkaAdminClient(**client_config)
    except KafkaError as exc:
        servers = ",".join(client_config.get("bootstrap_servers", []))
        raise BrokerError(f"cannot reach Kafka at {servers}: {exc}") from exc


def partition_count(admin: Any, topic: str) -> int | None:
    """Number of partitions of `topic`, None if it does not exist."""
    for info in admin.describe_topics([topic]):
        if info.get("name") == topic and not info.get("error_code"):
            return len(info.get("partitions") or [])
    return None
