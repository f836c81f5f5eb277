"""Deployment settings: sources and their priority, validation, kafka-python config."""

from __future__ import annotations

from pathlib import Path

import pytest

from valeur_monitor.errors import ConfigError
from valeur_monitor.settings import TopicNames, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("VALEUR_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert s.kafka.servers == ["127.0.0.1:9092"]
    assert s.worker.clock == "wall" and s.worker.batch_size >= 1
    assert s.rule_paths() and s.topology_path().name == "topics.yaml"
    assert s.topics.overrides() == {}
    assert s.kafka.client_config() == {
        "bootstrap_servers": ["127.0.0.1:9092"], "client_id": "valeur-monitor",
        "security_protocol": "PLAINTEXT", "request_timeout_ms": 30000}


def test_environment_nested_names_and_rules_path_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALEUR_KAFKA__BOOTSTRAP_SERVERS", "b1:9092, b2:9093")
    monkeypatch.setenv("VALEUR_REDIS_URL", "redis://r:6379/2")
    monkeypatch.setenv("VALEUR_RULES", "rules:more-rules")
    monkeypatch.setenv("VALEUR_TOPICS__SCORE_UPDATES", "crm.scores")
    monkeypatch.setenv("VALEUR_WORKER__CLOCK", "event")
    monkeypatch.setenv("VALEUR_WORKER__FLUSH_INTERVAL", "0.25")
    monkeypatch.setenv("VALEUR_REDIS_PORT", "16379")      # the test servers' own variables
    s = load_settings()
    assert s.kafka.servers == ["b1:9092", "b2:9093"]
    assert s.redis_url == "redis://r:6379/2"
    assert s.rules == ["rules", "more-rules"] == s.rule_paths()
    assert s.topics.overrides() == {"score-updates": "crm.scores"}
    assert s.worker.clock == "event" and s.worker.flush_interval == 0.25


TOML = """
redis_url = "redis://from-file:6379/0"
rules = ["a", "b"]
[kafka]
bootstrap_servers = "file:9092"
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "svc"
sasl_password = "s3cret"
[topics]
events = "support.events"
[worker]
batch_size = 7
web_port = 7070
"""


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".env"])
def test_config_file_then_env_then_arguments(tmp_path: Path, suffix: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / f"valeur{suffix}"
    if suffix == ".toml":
        path.write_text(TOML)
    elif suffix == ".yaml":
        import tomllib

        import yaml
        path.write_text(yaml.safe_dump(tomllib.loads(TOML)))
    else:
        path.write_text("VALEUR_REDIS_URL=redis://from-file:6379/0\nVALEUR_RULES=a:b\n"
                        "VALEUR_KAFKA__BOOTSTRAP_SERVERS=file:9092\n"
                        "VALEUR_KAFKA__SECURITY_PROTOCOL=SASL_SSL\n"
                        "VALEUR_KAFKA__SASL_MECHANISM=SCRAM-SHA-512\n"
                        "VALEUR_KAFKA__SASL_USERNAME=svc\nVALEUR_KAFKA__SASL_PASSWORD=s3cret\n"
                        "VALEUR_TOPICS__EVENTS=support.events\n"
                        "VALEUR_WORKER__BATCH_SIZE=7\nVALEUR_WORKER__WEB_PORT=7070\n")
    monkeypatch.setenv("VALEUR_WORKER__BATCH_SIZE", "9")                  # env beats file
    s = load_settings(path, worker={"web_port": 8080})                    # arguments beat env
    assert s.redis_url == "redis://from-file:6379/0" and s.rules == ["a", "b"]
    assert s.worker.batch_size == 9 and s.worker.web_port == 8080
    assert s.topics.overrides() == {"events": "support.events"}
    config = s.kafka.client_config()
    assert config["sasl_plain_password"] == "s3cret" and config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert "s3cret" not in repr(s)                                          # secret not shown


def test_invalid_settings_are_one_readable_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"worker.clock: Input should be 'wall' or 'event'"):
        load_settings(worker={"clock": "tomorrow"})
    with pytest.raises(ConfigError, match=r"kafka\.bootstrap_servers.*not host:port"):
        load_settings(kafka={"bootstrap_servers": "nohost"})
    with pytest.raises(ConfigError, match="redis_url"):
        load_settings(redis_url="http://x")
    with pytest.raises(ConfigError, match=r"needs kafka\.sasl_mechanism, kafka\.sasl_username"):
        load_settings(kafka={"security_protocol": "SASL_PLAINTEXT"})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[worker\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_settings(bad)


def test_topic_names_map_to_roles() -> None:
    names = TopicNames(events="e", customer_alerts="a")
    assert names.overrides() == {"events": "e", "customer-alerts": "a"}
