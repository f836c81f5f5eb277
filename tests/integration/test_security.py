"""Security with real servers (`scripts/services start secure`): Redis over TLS with client
certificates, a password and an ACL user; Kafka SASL_SSL with SCRAM-SHA-512 on a second
broker. Real commands run against them (run, explain, topics apply, produce, worker) and every
output — stdout, stderr, logs, written files, /healthz and /readyz — is searched for the
secrets, in clear and percent-encoded."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
import redis

from tests.fixtures.servers import PROJECT_ROOT, run_services
from tests.integration.streaming_support import Worker, wait_for, workers_cleanup

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("valeur-monitor"))
HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("VALEUR_REDIS_SECURE_PORT", "16380"))
KAFKA_PORT = int(os.environ.get("VALEUR_KAFKA_SECURE_PORT", "19094"))


class Secure:
    """The secured servers' coordinates and secrets (from .services/secure/secrets.env)."""

    def __init__(self) -> None:
        base = Path(os.environ.get("VALEUR_SERVICES_DIR", PROJECT_ROOT / ".services"))
        self.certs = base / "secure" / "certs"
        self.secrets: dict[str, str] = {}
        for line in (base / "secure" / "secrets.env").read_text().splitlines():
            name, _, value = line.partition("=")
            self.secrets[name] = value.strip("'")
        self.db = random.randrange(1, 31)

    def password(self, name: str) -> str:
        return self.secrets[f"VALEUR_SECURE_{name}"]

    def redis_env(self) -> dict[str, str]:
        return {
            "VALEUR_REDIS_URL": f"rediss://{HOST}:{REDIS_PORT}/{self.db}",
            "VALEUR_REDIS_USERNAME": self.password("REDIS_USER"),
            "VALEUR_REDIS_PASSWORD": self.password("REDIS_PASSWORD"),
            "VALEUR_REDIS_TLS_CA": str(self.certs / "ca.pem"),
            "VALEUR_REDIS_TLS_CERT": str(self.certs / "client.pem"),
            "VALEUR_REDIS_TLS_KEY": str(self.certs / "client.key"),
        }

    def kafka_env(self) -> dict[str, str]:
        return {
            "VALEUR_KAFKA__BOOTSTRAP_SERVERS": f"{HOST}:{KAFKA_PORT}",
            "VALEUR_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
            "VALEUR_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "VALEUR_KAFKA__SASL_USERNAME": self.password("KAFKA_USER"),
            "VALEUR_KAFKA__SASL_PASSWORD": self.password("KAFKA_PASSWORD"),
            "VALEUR_KAFKA__SSL_CAFILE": str(self.certs / "ca.pem"),
        }

    def admin(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=REDIS_PORT, db=self.db, ssl=True,
                           ssl_ca_certs=str(self.certs / "ca.pem"),
                           ssl_certfile=str(self.certs / "client.pem"),
                           ssl_keyfile=str(self.certs / "client.key"),
                           password=self.password("REDIS_ADMIN_PASSWORD"))

    def forms(self) -> list[str]:
        """Every secret in every form it could leak in."""
        out = []
        for name in ("REDIS_PASSWORD", "REDIS_ADMIN_PASSWORD", "KAFKA_PASSWORD",
                     "KAFKA_ADMIN_PASSWORD"):
            secret = self.password(name)
            out += [secret, quote(secret, safe=""), quote_plus(secret)]
        return out

    def assert_nowhere(self, *texts: str) -> None:
        for text in texts:
            for form in self.forms():
                assert form not in text, f"a secret leaked: ...{text[:300]}"


@pytest.fixture(scope="module")
def secure() -> Iterator[Secure]:
    run_services("start", "redis-secure")
    s = Secure()
    s.admin().flushdb()
    yield s
    s.admin().flushdb()


def env(*parts: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    for part in parts:
        base.update(part)
    return base


def cli(args: list[str], environ: dict[str, str], timeout: float = 300,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=PROJECT_ROOT, env=environ, check=False,
                          input=stdin.decode() if stdin else None)


def files_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from valeur_monitor.simulate import SimulationConfig, write_jsonl

    path = tmp_path_factory.mktemp("secure-events") / "events.jsonl"
    write_jsonl(path, SimulationConfig(seed=21, customers=60, days=3, bad_rate=0.005))
    return path


def test_run_and_explain_over_tls_with_an_acl_user_print_no_secret(
        secure: Secure, events: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    environ = env(secure.redis_env())
    done = cli(["run", str(events), "--ledger", str(out / "ledger.jsonl"), "--scores",
                str(out / "scores.csv"), "--dead-letters", str(out / "dead.jsonl"),
                "--no-progress"], environ)
    assert done.returncode == 0, done.stderr
    admin = secure.admin()
    assert admin.zcard("vm:ranking") > 30          # really written over TLS by the ACL user
    customer = admin.zrange("vm:ranking", 0, 0)[0].decode()
    shown = cli(["explain", customer, "--json"], environ)
    assert shown.returncode == 0, shown.stderr
    assert orjson.loads(shown.stdout)["entries"]
    # The password unencoded in the URL (with its / # ? @), the user in the URL: works too.
    url = (f"rediss://{secure.password('REDIS_USER')}:{secure.password('REDIS_PASSWORD')}"
           f"@{HOST}:{REDIS_PORT}/{secure.db}")
    in_url = cli(["run", str(events), "--store", url, "--dead-letters", str(out / "d3.jsonl"),
                  "--no-progress"],
                 env({k: v for k, v in secure.redis_env().items()
                      if k not in ("VALEUR_REDIS_URL", "VALEUR_REDIS_PASSWORD",
                                   "VALEUR_REDIS_USERNAME")}))
    assert in_url.returncode == 0, in_url.stderr

    # Failures: one line, no secret, no traceback.
    wrong = cli(["run", str(events), "--dead-letters", str(out / "d4.jsonl")],
                env(secure.redis_env(), {"VALEUR_REDIS_PASSWORD": "not-" + secure.password(
                    "REDIS_PASSWORD")}))
    no_ca = cli(["run", str(events), "--dead-letters", str(out / "d5.jsonl")],
                env({k: v for k, v in secure.redis_env().items() if k != "VALEUR_REDIS_TLS_CA"}))
    for failed, words in ((wrong, "refused the credentials"), (no_ca, "certificate")):
        assert failed.returncode == 2, failed.stderr
        lines = [line for line in failed.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and words in lines[0], failed.stderr
    secure.assert_nowhere(*(p.stdout + p.stderr for p in (done, shown, in_url, wrong, no_ca)),
                          files_text(out))


def test_acl_user_without_rights_is_a_permanent_one_line_error(
        secure: Secure, events: Path, tmp_path: Path) -> None:
    """The store's ACL user may only touch vm:* keys: another prefix is refused (NOPERM)."""
    from valeur_monitor.errors import StorePermanentError
    from valeur_monitor.settings import load_settings
    from valeur_monitor.store.redis import RedisStore

    os_env = secure.redis_env()
    saved = {k: os.environ.get(k) for k in os_env}
    os.environ.update(os_env)
    try:
        settings = load_settings()
        store = RedisStore.from_url(settings.redis_url, prefix="other:",
                                    options=settings.redis_options())
        from valeur_monitor.store.base import Commit

        with pytest.raises(StorePermanentError) as info:
            store.commit(Commit(watermark=1))
        assert "ACL" in str(info.value) and "\n" not in str(info.value)
        secure.assert_nowhere(str(info.value))
        store.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def secure_kafka(secure: Secure) -> Secure:
    run_services("start", "kafka-secure")
    return secure


def test_topics_produce_and_worker_over_sasl_ssl_print_no_secret(
        secure_kafka: Secure, events: Path, tmp_path: Path) -> None:
    secure = secure_kafka
    suffix = uuid.uuid4().hex[:8]
    topics = {"VALEUR_TOPICS__EVENTS": f"sec-events-{suffix}",
              "VALEUR_TOPICS__SCORE_UPDATES": f"sec-scores-{suffix}",
              "VALEUR_TOPICS__CUSTOMER_ALERTS": f"sec-alerts-{suffix}",
              "VALEUR_TOPICS__DEAD_LETTERS": f"sec-dead-{suffix}",
              "VALEUR_TOPICS__LEDGER": f"sec-ledger-{suffix}"}
    worker_env = {"VALEUR_WORKER__APP_ID": f"sec-{suffix}", "VALEUR_WORKER__CLOCK": "event",
                  "VALEUR_WORKER__TICK_INTERVAL": "0.5", "VALEUR_WORKER__LOGLEVEL": "info",
                  "VALEUR_WORKER__DATADIR": str(tmp_path / "data"),
                  "VALEUR_RULES": str(PROJECT_ROOT / "rules"), "PYTHONUNBUFFERED": "1"}
    environ = env(secure.redis_env(), secure.kafka_env(), topics, worker_env)
    secure.admin().flushdb()
    applied = cli(["topics", "apply"], environ, timeout=120)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    produced = cli(["produce", str(events), "--no-progress"], environ, timeout=120)
    assert produced.returncode == 0, produced.stdout + produced.stderr

    pages: list[Any] = []
    with workers_cleanup() as started:
        worker = Worker("secure", environ, tmp_path / "worker.log").start()
        started.append(worker)
        worker.wait_ready(120)
        admin = secure.admin()
        wait_for("the worker's commits over TLS", lambda: admin.zcard("vm:ranking") >= 30, 90)
        pages += [worker.get("/healthz"), worker.get("/readyz"), worker.get("/metrics")]
        assert pages[0][0] == 200
        worker.stop()
    # A wrong SASL password: the tool stops with one line and no secret.
    wrong = cli(["topics", "apply"], env(secure.redis_env(), secure.kafka_env(), topics,
                                         {"VALEUR_KAFKA__SASL_PASSWORD": "x" + secure.password(
                                             "KAFKA_PASSWORD"),
                                          "VALEUR_KAFKA__REQUEST_TIMEOUT_S": "10"}),
                timeout=120)
    assert wrong.returncode != 0
    assert "Traceback" not in wrong.stderr
    secure.assert_nowhere(applied.stdout + applied.stderr, produced.stdout + produced.stderr,
                          wrong.stdout + wrong.stderr, files_text(tmp_path),
                          *(str(p) for p in pages))
