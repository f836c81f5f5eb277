"""Helpers for the streaming tests: worker subprocesses, topic reads, consumer lag, comparisons."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from valeur_monitor.sinks.files import score_row
from valeur_monitor.store.base import Store

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("valeur-monitor"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@dataclass
class Worker:
    """One `valeur-monitor worker` subprocess with its own web port, datadir and log."""

    name: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        env = {**self.env, "VALEUR_WORKER__WEB_PORT": str(self.port)}
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([CLI, "worker"], env=env, cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def get(self, path: str) -> tuple[int, Any]:
        """(HTTP status, JSON or text body) of a page; (0, None) when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=3) as reply:
                status, body = reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, None
        with contextlib.suppress(orjson.JSONDecodeError):
            return status, orjson.loads(body)
        return status, body.decode()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/readyz")
        return body if isinstance(body, dict) else {"status": code}

    def ready(self) -> bool:
        self.check_alive()
        return self.get("/readyz")[0] == 200

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_for(f"{self.name} /readyz", self.ready, timeout)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n"
                                 + self.log_tail())

    def metric(self, name: str) -> float:
        """Sum of every sample of a metric on /metrics (0 when absent)."""
        code, body = self.get("/metrics")
        total = 0.0
        if code == 200 and isinstance(body, str):
            for line in body.splitlines():
                if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


def run_cli(args: list[str], env: Mapping[str, str], timeout: float = 300.0,
            stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([CLI, *args], env=dict(env), cwd=ROOT, capture_output=True,
                          text=stdin is None, input=stdin, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"valeur-monitor {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def end_offsets(admin: Any, topic: str, partitions: int) -> dict[int, int]:
    from kafka import TopicPartition
    from kafka.protocol.consumer.offsets import OffsetSpec

    specs = {TopicPartition(topic, p): OffsetSpec.LATEST for p in range(partitions)}
    return {tp.partition: o.offset for tp, o in admin.list_partition_offsets(specs).items()}


def committed(admin: Any, group: str, topic: str) -> dict[int, int]:
    offsets = admin.list_group_offsets(group).get(group, {})
    return {tp.partition: o.offset for tp, o in offsets.items() if tp.topic == topic}


def wait_consumed(admin: Any, group: str, topic: str, partitions: int, timeout: float,
                  workers: list[Worker] = ()) -> None:  # type: ignore[assignment]
    """Until the group's committed offsets reach the end of every partition."""
    ends = end_offsets(admin, topic, partitions)

    def done() -> bool:
        for worker in workers:
            worker.check_alive()
        now = committed(admin, group, topic)
        return all(now.get(p, 0) >= end for p, end in ends.items())

    wait_for(f"group {group} to consume {sum(ends.values())} records", done, timeout, 0.5)


def read_topic(bootstrap: str, topic: str, partitions: int,
               timeout: float = 60.0) -> list[Any]:
    """Every record of `topic` from the beginning to the current end (kafka-python)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=2000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topic} timed out")
            for records in consumer.poll(timeout_ms=500, max_records=10_000).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def latest_by_key(records: list[Any]) -> dict[str, Any]:
    """The compacted view of a topic: key -> decoded JSON value of its latest record."""
    latest: dict[str, Any] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        latest[record.key.decode()] = orjson.loads(record.value)
    return latest


def compare_stores(expected: Store, actual: Store, ledger_cap: int) -> list[str]:
    """Per-customer differences of ledgers (last `ledger_cap` entries) and scores."""
    problems: list[str] = []
    want, got = expected.customers(), actual.customers()
    if want != got:
        problems.append(f"customers differ: {len(want)} expected, {len(got)} found, "
                        f"missing {sorted(set(want) - set(got))[:5]}, "
                        f"extra {sorted(set(got) - set(want))[:5]}")
    for customer in want:
        ledger_want = expected.ledger(customer, ledger_cap)
        ledger_got = actual.ledger(customer)
        if ledger_want != ledger_got:
            first = next((i for i, (a, b) in enumerate(zip(ledger_want, ledger_got, strict=False))
                          if a != b), min(len(ledger_want), len(ledger_got)))
            problems.append(f"{customer}: ledger differs at entry {first} "
                            f"({len(ledger_want)} expected, {len(ledger_got)} found): "
                            f"{ledger_want[first:first + 1]} vs {ledger_got[first:first + 1]}")
        if expected.score(customer) != actual.score(customer):
            problems.append(f"{customer}: score {expected.score(customer)} vs "
                            f"{actual.score(customer)}")
    return problems


def score_json(store: Store, customer: str) -> Any:
    view = store.score(customer)
    return None if view is None else orjson.loads(orjson.dumps(score_row(view)))


@contextlib.contextmanager
def workers_cleanup() -> Iterator[list[Worker]]:
    """A list to register workers in; every one is stopped (then killed) at the end."""
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            with contextlib.suppress(Exception):
                worker.stop(timeout=15)
