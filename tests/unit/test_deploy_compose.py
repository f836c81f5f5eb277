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
    LOOPBACK,
    ROOT,
    check_settings,
    parse_command,
    role_host,
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
    host = role_host(service["command"], env_of(service))
    assert host not in LOOPBACK, f"{name} binds {host}: unreachable from the other containers"
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


VARIABLE = re.compile(r"\$\{(\w+)(?::?([?-])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose interpolation of ${VAR}, ${VAR:-default} and ${VAR:?error}."""
    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == "?":
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return arg or ""
    return VARIABLE.sub(one, value)


def test_compose_env_satisfies_every_required_variable(tmp_path: Path) -> None:
    """scripts/compose-env writes what `compose up` requires; the values are valid settings."""
    script = ROOT / "scripts" / "compose-env"
    done = subprocess.run([str(script), str(tmp_path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    env_file, token_file = tmp_path / ".env", tmp_path / ".api-token"
    assert env_file.stat().st_mode & 0o077 == 0 and token_file.stat().st_mode & 0o077 == 0
    dotenv = dict(line.split("=", 1) for line in env_file.read_text().splitlines()
                  if line and not line.startswith("#"))
    token = token_file.read_text().strip()
    assert token not in done.stdout + done.stderr + env_file.read_text(), "token printed/stored"
    required = {m.group(1) for m in VARIABLE.finditer(COMPOSE.read_text()) if m.group(2) == "?"}
    assert required and required <= {k for k, v in dotenv.items() if v}
    for name, service in ours().items():
        env = {k: interpolate(v, dotenv) for k, v in env_of(service).items()}
        settings = check_settings(env)
        if name == "api":
            from valeur_monitor.api.auth import hash_token

            assert [t.sha256 for t in settings.api.tokens] == [hash_token(token)]
    # A second run leaves the file alone (no silent rotation of the secrets).
    before = env_file.read_text()
    subprocess.run([str(script), str(tmp_path)], capture_output=True, timeout=120, check=True)
    assert env_file.read_text() == before


def test_servers_bound_beyond_loopback_are_authenticated() -> None:
    """API and ingest listen on 0.0.0.0 in their containers: tokens / signed sources only."""
    from valeur_monitor.settings import Settings
    from valeur_monitor.sources.factory import load_configured_sources

    sources = load_configured_sources(Settings())
    for name, service in ours().items():
        command, params = parse_command(service["command"])
        env = env_of(service)
        if command == "serve":
            assert params["host"] == "0.0.0.0" and ":?" in env["VALEUR_API__TOKENS"]
        if command == "ingest":
            keys = [k for k in env if k.startswith(("VALEUR_INGEST__SECRETS__",
                                                     "VALEUR_INGEST__BASIC_USERS__"))]
            assert keys and any(":?" in env[k] for k in keys), name
            for key in keys:
                source = key.rsplit("__", 1)[1].lower()
                assert source in sources, f"{key}: no shipped source {source!r}"
                kind = sources[source].auth.kind
                assert kind != "none", f"{key}: {source} is unauthenticated"
                # basic auth reads ingest.basic_users, every other kind ingest.secrets
                assert ("BASIC_USERS" in key) == (kind == "basic"), f"{key}: {source} is {kind}"


def test_grafana_provisioning_points_at_the_mounted_dashboards_and_prometheus() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    mounts = {target: (COMPOSE_DIR / source).resolve() for source, target in binds(grafana)}
    providers = [mounts[t] for t in mounts if "/provisioning/dashboards/" in t]
    (provider_file,) = providers
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    folder = mounts[provider["options"]["path"]]
    assert sorted(p.name for p in folder.glob("*.json")) == \
        ["customer-value-overview.json", "pipeline-health.json"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (folder / Path(home).name).is_file() and home.startswith(provider["options"]["path"])
    (sources_file,) = [mounts[t] for t in mounts if "/provisioning/datasources/" in t]
    (source,) = yaml.safe_load(sources_file.read_text())["datasources"]
    host, port = source["url"].removeprefix("http://").split(":")
    assert host in services and f"127.0.0.1:{port}:{port}" in services[host]["ports"]


def test_the_archive_is_written_to_a_volume() -> None:
    (archiver,) = [s for s in ours().values() if parse_command(s["command"])[0] == "archive"]
    _, params = parse_command(archiver["command"])
    named = {str(v).split(":")[1]: str(v).split(":")[0] for v in archiver["volumes"]
             if not str(v).startswith((".", "/"))}
    assert named.get(str(params["folder"])) in compose()["volumes"]
