"""The Redis store against a real Redis: exactly-once effects, crash recovery, errors.

Every test gets a private, flushed logical DB (`redis_db_url` / `redis_client` fixtures).
Redis content is compared through `dump()`, which reads every key under a prefix with the
command of its type (GET, HGETALL, LRANGE, ZRANGE WITHSCORES): byte-for-byte values.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.engine.state import decode_state, encode_state
from valeur_monitor.errors import StoreError
from valeur_monitor.service import Processor
from valeur_monitor.store.base import Commit
from valeur_monitor.store.memory import MemoryStore
from valeur_monitor.store.record import Value, is_value
from valeur_monitor.store.redis import RedisStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("valeur-monitor"))
BATCH = 500
DERIVED = ("score", "reasons", "ledger", "ranking", "due", "watermark")


# --------------------------------------------------------------------------------------------
# helpers


def split_value(key: str, data: bytes) -> dict[str, Any]:
    """A customer's one value (layout 2) as its parts, named like the keys of layout 1:
    ``<key>:state`` (state bytes), ``:score`` (score row and seq mark), ``:reasons``,
    ``:ledger`` (the window's frames, exact bytes)."""
    value = Value(key, data)
    row = value.row()
    return {f"{key}:state": ("string", row.state),
            f"{key}:score": ("hash", (row.total, row.at, row.created, row.destroyed,
                                      sorted(row.dims.items()), value.seq_mark)),
            f"{key}:reasons": ("hash", sorted(row.reasons.items())),
            f"{key}:ledger": ("list", [(t, q, bytes(p)) for t, q, p in value.frames()])}


def dump(client: Any, prefix: str = "vm:") -> dict[str, Any]:
    """Every key under `prefix` (prefix stripped) -> its exact content; a customer's value is
    split into its parts (`split_value`) so that tests can compare scores, windows or states."""
    out: dict[str, Any] = {}
    for raw in client.scan_iter(match=prefix.replace("*", "\\*") + "*", count=1000):
        key = raw.decode()
        if key == prefix + "epoch":     # its commit counter counts every commit, by design
            continue
        kind = client.type(raw).decode()
        value: Any
        if kind == "string":
            value = client.get(raw)
        elif kind == "hash":
            value = dict(sorted(client.hgetall(raw).items()))
        elif kind == "list":
            value = client.lrange(raw, 0, -1)
        elif kind == "zset":
            value = client.zrange(raw, 0, -1, withscores=True)
        elif kind == "set":
            value = sorted(client.smembers(raw))
        else:  # pragma: no cover - the store writes no other type
            raise AssertionError(f"unexpected type {kind} for {key}")
        if kind == "string" and key.startswith(prefix + "{c:") and is_value(value):
            out.update(split_value(key[len(prefix):], value))
            continue
        out[key[len(prefix):]] = (kind, value)
    return out


def only(snapshot: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """Keys whose last part (after the hash tag or prefix) is one of `kinds`."""
    return {k: v for k, v in snapshot.items() if k.rsplit(":", 1)[-1] in kinds}


def states(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {k: decode_state(v[1]) for k, v in snapshot.items() if k.endswith(":state")}


def run_lines(store: Any, rules: RuleSet, lines: list[bytes]) -> None:
    processor = Processor(rules, store)
    for start in range(0, len(lines), BATCH):
        processor.process(lines[start:start + BATCH])
    processor.advance_to(processor.max_event_time)


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, check=False)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules([str(ROOT / "rules")])


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    from valeur_monitor.simulate import SimulationConfig, simulate

    return [orjson.dumps(e) for e in simulate(SimulationConfig(seed=11, customers=200, days=7))]


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]) -> Path:
    path = tmp_path_factory.mktemp("events") / "week.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture
def store(redis_db_url: str) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_db_url, ledger_cap=500)
    yield s
    s.close()


class Recording(RedisStore):
    """A RedisStore that keeps a private copy of every commit it applies."""

    commits: list[Commit] | None = None

    def commit(self, commit: Commit) -> None:
        if self.commits is None:
            self.commits = []
        self.commits.append(Commit(
            states={c: decode_state(encode_state(s)) for c, s in commit.states.items()},
            due=dict(commit.due), entries=list(commit.entries), watermark=commit.watermark))
        super().commit(commit)


class Crash(Exception):
    """Stands for the process dying."""


class CrashingStore(RedisStore):
    """Dies during commit number `at`, after the per-customer scripts of `share` of the batch
    ran but before any global write (ranking, due index, watermark) reached Redis.

    The global keys are saved with DUMP before the commit and put back with RESTORE after it,
    which leaves Redis exactly as a crash between the two halves of the pipeline would.
    """

    at = 1
    share = 1.0
    count = 0

    def commit(self, commit: Commit) -> None:
        self.count += 1
        if self.count < self.at:
            super().commit(commit)
            return
        client = self.client
        saved = {k: client.dump(k) for k in self.keys.globals()}
        customers = list(commit.states)[: max(1, int(len(commit.states) * self.share))]
        partial = Commit(states={c: commit.states[c] for c in customers},
                         due={c: commit.due[c] for c in customers if c in commit.due},
                         entries=[e for e in commit.entries if e.customer in commit.states
                                  and e.customer in customers],
                         watermark=commit.watermark)
        super().commit(partial)
        for key, blob in saved.items():
            client.delete(key)
            if blob is not None:
                client.restore(key, 0, blob)
        raise Crash


# --------------------------------------------------------------------------------------------
# exactly-once


def test_same_commits_applied_twice_leave_redis_identical(
        redis_db_url: str, redis_client: redis.Redis, rules: RuleSet,
        lines: list[bytes]) -> None:
    store = Recording.from_url(redis_db_url, ledger_cap=500)
    run_lines(store, rules, lines)
    first = dump(redis_client)
    assert store.commits is not None and len(store.commits) > 10
    assert sum(len(c.entries) for c in store.commits) > 1000

    # The last batch's commit again (a retried pipeline): nothing changes.
    store.commit(store.commits[-1])
    assert dump(redis_client) == first
    # Every commit of the run again, in order (a redelivery of everything): nothing changes,
    # states included; ledgers are not appended twice.
    for commit in list(store.commits):
        store.commit(commit)
    assert dump(redis_client) == first
    store.close()


def test_same_batch_processed_twice_changes_nothing(
        store: RedisStore, redis_client: redis.Redis, rules: RuleSet,
        lines: list[bytes]) -> None:
    processor = Processor(rules, store)
    batches = [lines[i:i + BATCH] for i in range(0, len(lines), BATCH)]
    for batch in batches[:10]:
        processor.process(batch)
    before = dump(redis_client)
    # A redelivered batch through a new processor (a restarted worker).
    again = Processor(rules, store).process(batches[9])
    assert again.duplicates == len(batches[9])
    assert again.entries == []
    assert dump(redis_client) == before


def test_file_replayed_twice_via_cli_leaves_scores_and_ledger_identical(
        redis_db_url: str, redis_client: redis.Redis, events_file: Path, tmp_path: Path,
        rules: RuleSet, lines: list[bytes]) -> None:
    args = ["run", str(events_file), "--store", redis_db_url, "--rules", str(ROOT / "rules"),
            "--no-progress", "--dead-letters", str(tmp_path / "dead.jsonl")]
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    first = dump(redis_client)
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    second = dump(redis_client)
    assert only(second, DERIVED) == only(first, DERIVED)
    assert len(only(first, ("ledger",))) >= 150

    # And the CLI's Redis run equals an in-memory run of the same file.
    memory = MemoryStore(ledger_cap=rules.settings.ledger_cap)   # the window `run` keeps
    run_lines(memory, rules, lines)
    reader = RedisStore.from_url(redis_db_url)
    assert reader.customers() == memory.customers()
    for customer in memory.customers():
        assert reader.ledger(customer) == memory.ledger(customer)
        assert reader.score(customer) == memory.score(customer)
    assert reader.ranking(1000) == memory.ranking(1000)
    reader.close()


# --------------------------------------------------------------------------------------------
# crashes


@pytest.mark.parametrize("at,share", [(5, 1.0), (12, 0.5), (1, 0.3)])
def test_crash_between_customer_scripts_and_global_writes_is_repaired(
        redis_db_url: str, redis_client: redis.Redis, rules: RuleSet, lines: list[bytes],
        at: int, share: float) -> None:
    clean = RedisStore.from_url(redis_db_url, prefix="clean:")
    run_lines(clean, rules, lines)
    expected = dump(redis_client, "clean:")

    crashing = CrashingStore.from_url(redis_db_url)
    crashing.at, crashing.share = at, share
    with pytest.raises(Crash):
        run_lines(crashing, rules, lines)
    # The crash left states whose ranking entry is missing or stale.
    ranking: dict[Any, Any] = dict(redis_client.zrange("vm:ranking", 0, -1, withscores=True))  # type: ignore[arg-type]
    torn = [k for k, s in states(dump(redis_client)).items()
            if ranking.get(s.customer.encode()) != s.score.total]
    assert torn

    restarted = RedisStore.from_url(redis_db_url)          # a new process: replay everything
    run_lines(restarted, rules, lines)
    got = dump(redis_client)
    assert only(got, DERIVED) == only(expected, DERIVED)
    # States hold the same promises, dedupe marks, score and ledger sequence; only the
    # customer clock of a customer touched again during the replay may be further ahead.
    got_states, want_states = states(got), states(expected)
    assert got_states.keys() == want_states.keys()
    for key, want in want_states.items():
        have = got_states[key]
        assert (have.seq, have.score, have.reasons, have.promises, have.pending) == (
            want.seq, want.score, want.reasons, want.promises, want.pending), key
        assert have.seen.keys() >= {k for k, t in want.seen.items()}
    for s in (clean, crashing, restarted):
        s.close()


def test_sigkill_midway_then_rerun_equals_clean_run(
        redis_db_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    from valeur_monitor.simulate import SimulationConfig, simulate

    path = tmp_path / "big.jsonl"
    with path.open("wb") as out:
        for event in simulate(SimulationConfig(seed=5, customers=400, days=7)):
            out.write(orjson.dumps(event) + b"\n")
    args = ["run", str(path), "--store", redis_db_url, "--rules", str(ROOT / "rules"),
            "--no-progress", "--dead-letters", str(tmp_path / "dead.jsonl")]

    done = cli(*args)
    assert done.returncode == 0, done.stderr
    expected = dump(redis_client)
    redis_client.flushdb()

    proc = subprocess.Popen([CLI, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # Wait for a few committed batches, then kill -9 in the middle of the run.
        while redis_client.zcard("vm:ranking") < 150 and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed = dump(redis_client)
    assert only(killed, ("ledger",)) != only(expected, ("ledger",))  # really midway

    done = cli(*args)
    assert done.returncode == 0, done.stderr
    got = dump(redis_client)
    assert only(got, ("score", "reasons", "ledger", "ranking", "watermark")) == only(
        expected, ("score", "reasons", "ledger", "ranking", "watermark"))
    assert got.keys() == expected.keys()


# --------------------------------------------------------------------------------------------
# connection problems


def test_unreachable_redis_gives_one_line_and_non_zero_exit(
        events_file: Path, tmp_path: Path) -> None:
    began = time.monotonic()
    done = cli("run", str(events_file), "--store", "redis://127.0.0.1:1/0",
               "--dead-letters", str(tmp_path / "dead.jsonl"))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Redis" in lines[0] and "127.0.0.1:1" in lines[0]
    assert time.monotonic() - began < 30


def test_from_url_fails_fast_with_a_store_error_and_hides_the_password() -> None:
    began = time.monotonic()
    with pytest.raises(StoreError) as info:
        RedisStore.from_url("redis://user:s3cret@127.0.0.1:1/0")
    message = str(info.value)
    assert message.startswith("Redis unreachable at redis://user:***@127.0.0.1:1/0")
    assert "s3cret" not in message and "\n" not in message
    assert time.monotonic() - began < 5   # 4 attempts, backoff 50 + 100 + 200 ms


def test_dropped_connection_is_retried(store: RedisStore, redis_client: redis.Redis,
                                       rules: RuleSet, lines: list[bytes]) -> None:
    processor = Processor(rules, store)
    processor.process(lines[:BATCH])
    # Kill this store's own pooled connection from the server side; the next calls retry.
    client_id = store.client.client_id()
    assert redis_client.client_kill_filter(_id=str(client_id)) == 1
    processor.process(lines[BATCH:2 * BATCH])
    assert store.watermark() > 0
    clean = MemoryStore()
    other = Processor(rules, clean)
    other.process(lines[:BATCH])
    other.process(lines[BATCH:2 * BATCH])
    for customer in clean.customers():
        assert store.ledger(customer) == clean.ledger(customer)


def test_flushed_script_cache_is_reloaded(store: RedisStore, redis_client: redis.Redis,
                                          rules: RuleSet, lines: list[bytes]) -> None:
    processor = Processor(rules, store)
    processor.process(lines[:BATCH])
    redis_client.script_flush()
    processor.process(lines[BATCH:2 * BATCH])
    assert store.client.script_exists(store._commit_script.sha) == [True]
    assert len(store.customers()) > 0


def test_store_commits_through_hiredis(store: RedisStore, rules: RuleSet,
                                      lines: list[bytes]) -> None:
    """The store's commands are packed and its replies parsed by hiredis (a dependency: the
    commit thread's packing of a batch's script arguments costs about a third less with it)."""
    from redis.connection import HiredisRespSerializer, _HiredisParser

    Processor(rules, store).process(lines[:BATCH])
    connection = store.client.connection_pool.get_connection()
    try:
        assert isinstance(connection._command_packer, HiredisRespSerializer)
        assert isinstance(connection._parser, _HiredisParser)
    finally:
        store.client.connection_pool.release(connection)
    assert store.watermark() > 0 and len(store.customers()) > 0


def test_explain_reads_a_customer_from_redis(redis_db_url: str, tmp_path: Path) -> None:
    """`explain --store redis://...` shows the stored score and ledger of one customer."""
    events = tmp_path / "e.jsonl"
    events.write_bytes(
        b'{"id": "n1", "type": "visit.no_show", "time": "2026-11-02T12:00:00Z",'
        b' "customer": "cx", "ref": "v1"}\n')
    run = subprocess.run([sys.executable, "-m", "valeur_monitor.cli.main", "run", str(events),
                          "--store", redis_db_url, "--rules", str(ROOT / "rules"),
                          "--dead-letters", str(tmp_path / "d.jsonl")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    shown = subprocess.run([sys.executable, "-m", "valeur_monitor.cli.main", "explain", "cx",
                            "--store", redis_db_url], capture_output=True, text=True,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    # The same in JSON, and with the store taken from VALEUR_REDIS_URL instead of --store.
    as_json = subprocess.run([sys.executable, "-m", "valeur_monitor.cli.main", "explain", "cx",
                              "--json"], capture_output=True, text=True, check=False,
                             env={**os.environ, "VALEUR_REDIS_URL": redis_db_url})
    assert as_json.returncode == 0, as_json.stderr
    data = orjson.loads(as_json.stdout)
    points = data["points"]
    assert points < 0 and points == data["stored"]["score"]
    assert {e["rule"] for e in data["entries"]} >= {"technician-no-show"}
    assert "technician-no-show" in shown.stdout
    assert f"{points:+g} points" in shown.stdout
    assert f"stored score {points:+.2f}" in shown.stdout
    missing = subprocess.run([sys.executable, "-m", "valeur_monitor.cli.main", "explain", "nobody",
                              "--store", redis_db_url], capture_output=True, text=True,
                             check=False)
    assert missing.returncode == 1 and "no ledger entries" in missing.stderr


def test_integers_beyond_64_bits_never_reach_the_commit(
        redis_db_url: str, redis_client: redis.Redis, tmp_path: Path) -> None:
    """Issue #8: an integer above 2**64 in `data` passed the memory store and failed the Redis
    store at commit. The codec dead-letters it (both stores alike), and a state that still
    could not be encoded is a permanent error with nothing written."""
    from valeur_monitor.engine.state import CustomerState
    from valeur_monitor.errors import StorePermanentError

    good = (b'{"id": "g1", "type": "visit.no_show", "time": "2026-11-02T12:00:00Z",'
            b' "customer": "cb", "ref": "v1"}')
    big = (b'{"id": "b1", "type": "survey.answered", "time": "2026-11-02T12:00:00Z",'
           b' "customer": "cb", "data": {"score": 5, "n": 123456789012345678901234567890}}')
    events = tmp_path / "e.jsonl"
    events.write_bytes(good + b"\n" + big + b"\n")
    results = []
    for store in ("memory", redis_db_url):
        dead = tmp_path / f"dead-{len(results)}.jsonl"
        done = cli("run", str(events), "--store", store, "--rules", str(ROOT / "rules"),
                   "--dead-letters", str(dead), "--json")
        assert done.returncode == 0, done.stderr
        summary = orjson.loads(done.stdout)
        results.append((summary["dead_letters"], summary["ledger_entries"],
                        summary["value"], dead.read_bytes()))
    assert results[0] == results[1]
    assert sum(results[0][0].values()) == 1

    redis_client.flushdb()
    store = RedisStore.from_url(redis_db_url)
    state = CustomerState("huge")
    state.seq = 2**70
    with pytest.raises(StorePermanentError, match="nothing was written"):
        store.commit(Commit(states={"huge": state}, watermark=1))
    assert redis_client.dbsize() == 0
    store.close()


# --------------------------------------------------------------------------------------------
# the due index as a worker reads it once


def test_due_entries_list_the_whole_due_index_with_times(store: RedisStore,
                                                         redis_client: redis.Redis) -> None:
    from valeur_monitor.engine.state import CustomerState

    due = {f"c{i:05d}": 1_700_000_000_000 + i * 7 for i in range(25_000)}   # several SCAN pages
    states = {c: CustomerState(c) for c in [*due, "idle"]}
    store.commit(Commit(states=states, due={**due, "idle": -1}, watermark=1))
    listed = store.due_entries()
    assert len(listed) == len(due)            # each once, the customer without a timer absent
    assert dict(listed) == due
    store.commit(Commit(states={"c00000": states["c00000"]}, due={"c00000": -1}, watermark=1))
    assert "c00000" not in dict(store.due_entries())


def test_worker_scope_answers_due_from_memory_like_redis(store: RedisStore) -> None:
    """The worker's due index (streaming/scope.py) is read once from Redis, then follows its
    staged commits: same answers as Redis after the commits are applied."""
    from valeur_monitor.engine.state import CustomerState
    from valeur_monitor.streaming.scope import WorkerScope

    store.commit(Commit(states={c: CustomerState(c) for c in ("a", "b", "c", "other")},
                        due={"a": 300, "b": 100, "c": 5_000, "other": 50}, watermark=1))
    scope = WorkerScope(store)
    scope.owns = lambda customer: customer != "other"     # another worker's customer
    assert scope.due(1_000) == ["b", "a"]
    states = scope.load(["a", "c"])
    scope.commit(Commit(states=states, due={"a": -1, "c": 200}, watermark=2))
    assert scope.due(1_000) == ["b", "c"]         # staged, not in Redis yet
    assert store.due(1_000) == ["other", "b", "a"]
    pending = scope.prepare()
    assert pending is not None
    scope.apply(pending)
    assert store.due(1_000) == ["other", "b", "c"]
    assert scope.due(1_000) == ["b", "c"]
    scope.discard()                              # read again from Redis: the same
    assert scope.due(1_000) == ["b", "c"]
    assert scope.due(1_000, limit=1) == ["b"]
