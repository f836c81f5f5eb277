"""An `valeur-monitor ingest` subprocess for the end-to-end tests, and a private Kafka broker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from valeur_monitor.engine.event import format_time
from valeur_monitor.ingest.auth import zendesk_headers

from .streaming_support import CLI, ROOT, free_port, wait_for

SERVICES = ROOT / "scripts" / "services"


def now_stamp() -> str:
    return format_time(int(time.time()) * 1000)


@dataclass
class Ingest:
    """One ingest server process on a free loopback port."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Ingest:
        env = {**self.env, "VALEUR_INGEST__PORT": str(self.port)}
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([CLI, "ingest"], env=env, cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for("ingest /healthz", self.healthy, 60)
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"ingest exited {self.proc.returncode}:\n{self.log()}")
        return self.post_raw("GET", "/healthz", b"", {})[0] == 200

    def post_raw(self, method: str, path: str, body: bytes,
                 headers: Mapping[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, data=body or None, method=method,
                                         headers=dict(headers))
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def zendesk(self, body: bytes, secret: str) -> tuple[int, bytes]:
        headers = {**zendesk_headers(secret, body, now_stamp()),
                   "Content-Type": "application/json"}
        return self.post_raw("POST", "/ingest/zendesk", body, headers)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "<no log>"


@dataclass
class PrivateKafka:
    """A Kafka broker of our own (scripts/services with other ports and data directory):
    the fault tests stop and restart it, never the shared one."""

    directory: Path
    port: int = field(default_factory=free_port)
    controller: int = field(default_factory=free_port)

    def env(self) -> dict[str, str]:
        return {**os.environ, "VALEUR_SERVICES_DIR": str(self.directory),
                "VALEUR_KAFKA_PORT": str(self.port),
                "VALEUR_KAFKA_CONTROLLER_PORT": str(self.controller)}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, action: str) -> None:
        proc = subprocess.run([str(SERVICES), action, "kafka"], env=self.env(), cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"scripts/services {action} kafka failed:\n"
                                 f"{proc.stdout}\n{proc.stderr}")


@contextlib.contextmanager
def private_kafka(directory: Path) -> Iterator[PrivateKafka]:
    kafka = PrivateKafka(directory)
    kafka.run("start")
    try:
        yield kafka
    finally:
        kafka.run("stop")
