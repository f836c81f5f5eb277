"""deploy/compose/compose.yaml: valid against the Compose specification, and every command,
option, VALEUR_* setting, port, probe path and mounted file it names exists."""

from __future__ import annotations

import json
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.deploy_support import (
    ROOT,
    check_settings,
    parse_command,
    role_of,
    role_port,
    served_paths,
)

pytestmark = pytest.mark.unit

COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
IMAGE = "valeur-monitor:local"
URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost):(\d+)(/[\w/-]*)")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def ours() -> dict[str, dict[str, Any]]:
    """Services running the valeur-monitor image."""
    return {name: svc for name, svc in compose()["services"].items() if svc.get("image") == IMAGE}


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def binds(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path relative to the compose file, container path) of bind mounts."""
    out = []
    for volume in service.get("volumes") or []:
        source, target = (volume.split(":")[:2] if isinstance(volume, str)
                          else (volume["source"], volume["target"]))
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def test_valid_against_the_compose_specification() -> None:
    schema_file = resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / \
        "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                                 for e in errors)
    # The validator does reject a malformed service (the check above can fail).
    broken = compose()
    broken["services"]["worker"]["healthcheck"]["intervall"] = "15s"
    assert list(validator.iter_errors(broken))


def test_the_whole_stack_is_there() -> None:
    services = compose()["services"]
    images = {name: str(svc.get("image", "")) for name, svc in services.items()}
    for needed in ("apache/kafka", "redis", "prom/prometheus", "prom/alertmanager", "grafana"):
        assert any(image.startswith(needed) for image in images.values()), needed
    commands = {name: parse_command(svc["command"])[0] for name, svc in ours().items()}
    assert "topics apply" in commands.values()
    workers = [n for n, c in commands.items() if c == "worker"]
    replicas = sum(int(services[n].get("deploy", {}).get("replicas", 1)) for n in workers)
    assert replicas == 2
    kafka_env = services["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"], "KRaft: no ZooKeeper"
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--maxmemory-policy noeviction" in redis_cmd
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is not loopback-only"


@pytest.mark.parametrize("name", sorted(ours()))
def test_commands_options_and_settings_are_real(name: str) -> None:
    service = ours()[name]
    parse_command(service["command"])
    check_settings(env_of(service))


@pytest.mark.parametrize("name", sorted(n for n, s in ours().items() if role_of(s["command"])))
def test_ports_and_probe_paths_are_the_ones_the_server_has(name: str) -> None:
    service = ours()[name]
    role = role_of(service["command"])
    assert role is not None
    port = role_port(service["command"], env_of(service))
    exposed = {int(str(p).split(":")[-1]) for p in
               [*(service.get("expose") or []), *(service.get("ports") or [])]}
    assert port in exposed, f"{name} listens on {port}, exposes {exposed}"
    probe = " ".join(service["healthcheck"]["test"])
    urls = URL.findall(probe)
    assert urls, probe
    for url_port, path in urls:
        assert int(url_port) == port, f"{name}: health check on {url_port}, server on {port}"
        assert path in served_paths(role), f"{name}: {role} does not serve {path}"


def test_scrape_targets_match_the_worker_port() -> None:
    prom = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    job = jobs["valeur-monitor"]    # the job name the alerts and dashboards use
    assert job.get("metrics_path", "/metrics") in served_paths("worker")
    services = compose()["services"]
    for sd in job["dns_sd_configs"]:
        for host in sd["names"]:
            service = services[host]
            assert parse_command(service["command"])[0] == "worker"
            assert sd["port"] == role_port(service["command"], env_of(service))
    targets = [t for am in prom["alerting"]["alertmanagers"] for sc in am["static_configs"]
               for t in sc["targets"]]
    assert targets == ["alertmanager:9093"] and "alertmanager" in services


def test_mounted_files_exist_and_settings_paths_are_mounted() -> None:
    for name, service in compose()["services"].items():
        for source, _ in binds(service):
            assert (COMPOSE_DIR / source).exists(), f"{name}: {source} does not exist"
        build = service.get("build")
        if build:
            context = COMPOSE_DIR / build["context"]
            assert (context / build["dockerfile"]).is_file()
    for name, service in ours().items():
        rules = env_of(service).get("VALEUR_RULES")
        if rules:
            mounted = {target: source for source, target in binds(service)}
            assert rules in mounted, f"{name}: VALEUR_RULES={rules} is not a mount"
            assert (COMPOSE_DIR / mounted[rules] / "settings.yml").is_file()


def test_depends_on_names_services() -> None:
    services = compose()["services"]
    for name, service in services.items():
        deps = service.get("depends_on") or []
        for dep in deps:
            assert dep in services, f"{name} depends on unknown {dep}"


def test_prometheus_config_with_its_mounts_passes_promtool(promtool: str,
                                                           tmp_path: Path) -> None:
    """The compose Prometheus config, container paths mapped to the mounted repository files."""
    service = compose()["services"]["prometheus"]
    text = (COMPOSE_DIR / "prometheus.yml").read_text(encoding="utf-8")
    for source, target in sorted(binds(service), key=lambda b: -len(b[1])):
        text = text.replace(target, str((COMPOSE_DIR / source).resolve()))
    config = tmp_path / "prometheus.yml"
    config.write_text(text, encoding="utf-8")
    done = subprocess.run([promtool, "check", "config", str(config)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr and "rule" in done.stdout + done.stderr
