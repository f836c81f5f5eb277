"""deploy/k8s: base and production overlay, built in-process (tests/unit/kustomize_support.py).

* Core objects are validated against the Kubernetes OpenAPI schemas (kubernetes-validate,
  offline, strict: unknown fields refused) for the oldest and newest supported versions.
* Custom resources (ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication): no
  package ships their CRD schemas offline, so they are checked for what matters instead: the
  PrometheusRule's groups pass `promtool check rules` and equal deploy/monitoring's, the
  ServiceMonitor selects the worker Service and port, the ScaledObject's topic, consumer group,
  bootstrap servers and bounds match the topology and the settings.
* Every command, option, VALEUR_* setting, port and probe path is checked against the code.
"""

from __future__ import annotations

import base64
import copy
import functools
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from deploy.k8s import generate
from tests.unit.deploy_support import (
    LOOPBACK,
    ROOT,
    check_settings,
    parse_command,
    role_host,
    role_of,
    role_port,
    served_paths,
    setting_field,
)
from tests.unit.kustomize_support import build, containers, name_hash, pod_specs
from tests.unit.test_deploy_image import final_envs, image_files
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.kafka.admin import load_topology
from valeur_monitor.settings import Settings

pytestmark = pytest.mark.unit

K8S = ROOT / "deploy" / "k8s"
BUILDS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
K8S_VERSIONS = ("1.28.0", "1.33.0")
CRDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"}
SECRET = "valeur-credentials"
TOPOLOGY = load_topology(ROOT / "streams" / "topics.yaml")
PARTITIONS = TOPOLOGY.topics["events"].partitions


@functools.cache
def _built(name: str) -> list[dict[str, Any]]:
    return build(BUILDS[name])


def built(name: str) -> list[dict[str, Any]]:
    """The build's resources (a copy: tests may change them)."""
    return copy.deepcopy(_built(name))


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def config_map(docs: list[dict[str, Any]], ref: str) -> dict[str, str]:
    data: dict[str, str] = one(docs, "ConfigMap", ref)["data"]
    return data


@functools.cache
def base_secret() -> dict[str, str]:
    secret = one(built("base"), "Secret", SECRET)
    data = dict(secret.get("stringData", {}))
    data.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
    return data


def container_env(docs: list[dict[str, Any]], c: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets: the image's ENV, envFrom ConfigMaps, then env
    (secrets: the base placeholder values)."""
    env = {k: v for k, v in final_envs().items() if k.startswith("VALEUR_")}
    for source in c.get("envFrom", []):
        assert "configMapRef" in source, "secrets are read key by key, never whole (envFrom)"
        env.update(config_map(docs, source["configMapRef"]["name"]))
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == SECRET
        assert ref["key"] in base_secret(), f"{ref['key']}: not a key of {SECRET}"
        env[item["name"]] = base_secret()[ref["key"]]
    return env


SHELL = ["/bin/sh", "-c"]


def commands_of(c: dict[str, Any]) -> list[list[str]]:
    """The valeur-monitor command lines a container runs: its args (the image's entrypoint), or
    each `valeur-monitor ...` line of a shell script (up to `&&`, `;` or `|`)."""
    if "command" not in c:
        return [c["args"]]
    assert c["command"] == SHELL, f"{c['name']}: only the image entrypoint or {SHELL}"
    lines = [line.strip() for line in c["args"][0].splitlines()]
    out = []
    for line in lines:
        if "valeur-monitor " in line:
            tail = line.split("valeur-monitor ", 1)[1]
            out.append(shlex.split(re.split(r"&&|;|\|", tail)[0]))
    assert out, f"{c['name']}: the script runs no valeur-monitor command"
    return out


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if list(pod_specs(d))]


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_core_objects_valid_against_kubernetes_schemas(name: str) -> None:
    docs = built(name)
    for doc in docs:
        if doc["kind"] in CRDS:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']} "
                            f"(Kubernetes {version}): {exc.message}")
    assert {d["kind"] for d in docs} >= {"Deployment", "PodDisruptionBudget", "Service",
                                         "ConfigMap", "Job", "ServiceMonitor", "PrometheusRule"}


def test_the_schema_validation_can_fail() -> None:
    worker = one(built("base"), "Deployment", "valeur-worker")
    worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, K8S_VERSIONS[-1], strict=True)


def test_generated_monitoring_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate.main(["--check"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_commands_settings_ports_and_probes_are_real(name: str) -> None:
    docs = built(name)
    roles: set[str] = set()
    for doc in workloads(docs):
        for c in containers(doc):
            where = f"{name}: {doc['kind']} {doc['metadata']['name']}/{c['name']}"
            for argv in commands_of(c):
                parse_command(argv)
            if "command" in c:
                continue
            env = container_env(docs, c)
            for key in env:
                setting_field(key)
            check_settings(env)
            role = role_of(c["args"])
            if role is None:
                continue
            roles.add(role)
            port = role_port(c["args"], env)
            assert role_host(c["args"], env) not in LOOPBACK, f"{where}: binds loopback"
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe not in c:
                    continue
                get = c[probe]["httpGet"]
                assert get["path"] in served_paths(role), f"{where}: {role} has no {get['path']}"
                target = ports.get(get["port"], get["port"])
                assert target == port, f"{where}: {probe} on {target}, server on {port}"
            assert "livenessProbe" in c and "readinessProbe" in c, where
            if "/readyz" in served_paths(role):
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", where
    assert roles == {"worker", "api", "ingest"}
    commands = {parse_command(argv)[0] for d in workloads(docs) for c in containers(d)
                for argv in commands_of(c)}
    assert commands >= {"worker", "serve", "ingest", "topics apply", "archive", "rules reload"}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_workers_fit_the_partitions_and_survive_disruptions(name: str) -> None:
    docs = built(name)
    worker = one(docs, "Deployment", "valeur-worker")
    replicas = worker["spec"]["replicas"]
    assert 1 <= replicas <= PARTITIONS, f"{replicas} workers, {PARTITIONS} partitions"
    pdb = one(docs, "PodDisruptionBudget", "valeur-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] < replicas
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_services_select_pods_and_name_their_ports(name: str) -> None:
    docs = built(name)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert {"valeur-api", "valeur-ingest", "valeur-worker"} <= set(services)
    for svc in services.values():
        pods = [d for d in workloads(docs) if svc["spec"]["selector"].items()
                <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(pods) == 1, f"Service {svc['metadata']['name']} selects {len(pods)}"
        names = {p["name"] for c in containers(pods[0]) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_rules_dirs_are_the_image_s_and_the_mounted_configmap_and_load(
        name: str, tmp_path: Path) -> None:
    """Every VALEUR_RULES entry is the image's shipped rules or a mounted ConfigMap."""
    docs = built(name)
    shipped = image_files()
    checked = 0
    for doc in workloads(docs):
        for c in containers(doc):
            if "command" in c or c["args"][0] not in ("worker", "serve"):
                continue
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            paths: list[str] = []
            for entry in check_settings(container_env(docs, c)).rules:
                if entry in mounts:
                    volume = next(v for pod in pod_specs(doc) for v in pod["volumes"]
                                  if v["name"] == mounts[entry])
                    folder = tmp_path / f"{doc['metadata']['name']}-{len(paths)}"
                    folder.mkdir()
                    for file, text in config_map(docs, volume["configMap"]["name"]).items():
                        (folder / file).write_text(text, encoding="utf-8")
                    paths.append(str(folder))
                else:
                    assert entry in shipped, f"{entry}: neither mounted nor in the image"
                    paths.append(str(ROOT / shipped[entry]))
            assert any(p.startswith(str(tmp_path)) for p in paths), "no ConfigMap rules"
            assert load_rules(paths).rule_ids()
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_rule_changes_are_reloaded_in_place_and_settings_roll_out(name: str) -> None:
    """Rules: a stable ConfigMap, updated in the pods, and a sidecar that SIGHUPs the worker
    through `rules reload --pid-file` at the pid file the worker writes. Settings: a ConfigMap
    named by a hash of its content, so a change rolls the pods."""
    docs = built(name)
    worker = one(docs, "Deployment", "valeur-worker")
    pod = worker["spec"]["template"]["spec"]
    assert pod["shareProcessNamespace"] is True
    main = next(c for c in pod["containers"] if "command" not in c)
    (reloader,) = [c for c in pod["containers"] if "command" in c]
    settings = check_settings(container_env(docs, main))
    (argv,) = commands_of(reloader)
    command, params = parse_command(argv)
    assert command == "rules reload"
    (pid_file,) = params["pid_file"]
    assert pid_file == settings.worker.datadir / "worker.pid"
    main_mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    side_mounts = {m["name"]: m["mountPath"] for m in reloader["volumeMounts"]}
    assert any(Path(main_mounts[v]) in pid_file.parents and side_mounts.get(v) ==
               main_mounts[v] for v in main_mounts), "the pid file is on a shared volume"
    rules_volume = next(v for v in pod["volumes"] if "configMap" in v
                        and v["configMap"]["name"].startswith("valeur-rules"))
    watched = side_mounts[rules_volume["name"]]
    assert watched == main_mounts[rules_volume["name"]]
    assert watched in settings.rules and f"{watched}/..data" in reloader["args"][0]
    assert rules_volume["configMap"]["name"] == "valeur-rules", "stable name: no rollout"
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    hashed = [n for n in names if n.startswith("valeur-settings-")]
    assert len(hashed) == 1
    settings_map = one(docs, "ConfigMap", hashed[0])
    same = {**settings_map, "metadata": {"name": "valeur-settings"}}
    changed = {**same, "data": {**settings_map["data"], "VALEUR_WORKER__BATCH_SIZE": "500"}}
    assert hashed[0] == f"valeur-settings-{name_hash(same)}" != \
        f"valeur-settings-{name_hash(changed)}"


def test_credentials_come_from_one_secret_and_production_ships_none() -> None:
    assert all(not v or "REPLACE" in v or v == "[]" for v in base_secret().values()), \
        "the base Secret holds placeholders only"
    production = built("production")
    assert not [d for d in production if d["kind"] == "Secret"], "no Secret in production"
    for doc in workloads(production):
        for c in containers(doc):
            assert container_env(production, c)   # every secret ref: valeur-credentials keys
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
        for pod in pod_specs(doc):
            assert pod["securityContext"]["runAsNonRoot"] is True


def test_prometheus_rule_is_the_shipped_rules_and_passes_promtool(
        promtool: str, tmp_path: Path) -> None:
    rule = one(built("production"), "PrometheusRule")
    groups = []
    for folder in ("alerts", "recording"):
        for path in sorted((ROOT / "deploy" / "monitoring" / folder).glob("*.yml")):
            groups += yaml.safe_load(path.read_text())["groups"]
    assert rule["spec"]["groups"] == groups
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    file = tmp_path / "rules.yml"
    file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
    done = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_service_monitor_scrapes_the_workers_as_the_alerts_expect() -> None:
    docs = built("production")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [d for d in docs if d["kind"] == "Service" and
                monitor["spec"]["selector"]["matchLabels"].items()
                <= d["metadata"].get("labels", {}).items()]
    assert [s["metadata"]["name"] for s in selected] == ["valeur-worker"]
    service = selected[0]
    # job = the Service's jobLabel value: the job the shipped alerts and dashboards query.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == generate.JOB
    alerts = (ROOT / "deploy" / "monitoring" / "alerts" / "valeur.rules.yml").read_text()
    assert f'up{{job="{generate.JOB}"}}' in alerts
    ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports
        assert endpoint["path"] in served_paths("worker")


def test_keda_scales_the_workers_on_the_events_topic_lag() -> None:
    docs = built("production")
    scaled = one(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    worker = one(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert worker["metadata"]["name"] == "valeur-worker"
    low, high = scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]
    assert 1 <= low <= worker["spec"]["replicas"] <= high <= PARTITIONS
    (trigger,) = scaled["spec"]["triggers"]
    env = container_env(docs, next(containers(worker)))
    settings = check_settings(env)
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["topic"] == TOPOLOGY.with_names(settings.topics.overrides()).name("events")
    assert meta["consumerGroup"] == settings.worker.app_id
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
    keda_sasl = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
                 "SCRAM-SHA-512": "scram_sha512"}
    assert settings.kafka.sasl_mechanism is not None
    assert meta["sasl"] == keda_sasl[settings.kafka.sasl_mechanism]
    assert (meta["tls"] == "enable") == settings.kafka.uses_ssl
    assert int(meta["lagThreshold"]) > 0
    auth = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == SECRET and ref["key"] in base_secret()
        assert setting_field(ref["key"])[0] == "kafka"


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_only_prometheus_reaches_the_unauthenticated_worker_port(name: str) -> None:
    docs = built(name)
    policy = one(docs, "NetworkPolicy", "valeur-worker")
    worker = one(docs, "Deployment", "valeur-worker")
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    named = {p["name"] for c in containers(worker) for p in c.get("ports", [])}
    assert {p["port"] for p in rule["ports"]} <= named
    assert all("namespaceSelector" in peer or "podSelector" in peer for peer in rule["from"])


def _secret_fields(model: type[BaseModel], prefix: str = "VALEUR_") -> set[str]:
    """VALEUR_ names of every SecretStr setting (mappings of secrets: their prefix)."""
    out: set[str] = set()
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        text = repr(field.annotation)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out |= _secret_fields(field.annotation, env + "__")
        elif "SecretStr" in text:
            out.add(env)
    return out


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_no_credential_in_a_configmap(name: str) -> None:
    secrets = _secret_fields(Settings)
    assert {"VALEUR_REDIS_PASSWORD", "VALEUR_KAFKA__SASL_PASSWORD",
            "VALEUR_INGEST__SECRETS"} <= secrets
    for doc in built(name):
        if doc["kind"] != "ConfigMap":
            continue
        for key, value in doc.get("data", {}).items():
            assert not any(key == s or key.startswith(s + "__") for s in secrets), key
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", value), f"{key}: credentials in a URL"


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_the_archive_is_written_to_a_persistent_volume(name: str) -> None:
    archiver = one(built(name), "StatefulSet", "valeur-archiver")
    (c,) = containers(archiver)
    command, params = parse_command(c["args"])
    assert command == "archive"
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    claims = {t["metadata"]["name"] for t in archiver["spec"]["volumeClaimTemplates"]}
    assert mounts[str(params["folder"])] in claims
    assert archiver["spec"]["replicas"] == 1
