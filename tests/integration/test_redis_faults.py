"""Redis faults against the real CLI and our OWN redis-server (never the shared one):
out of memory, restart without persistence, restart within the retry budget, connection
resets, eviction policy, wrong credentials. After each fault either the run went on and its
results equal a clean run, or it stopped with one clear line and nothing half-applied, and a
re-run equals a clean run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.fixtures.own_redis import OwnRedis
from tests.integration.test_redis_store import dump, only
from valeur_monitor.engine.state import decode_state

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("valeur-monitor"))
RESULTS = ("score", "reasons", "ledger", "ranking", "watermark")


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from valeur_monitor.simulate import SimulationConfig, simulate

    path = tmp_path_factory.mktemp("faults") / "week.jsonl"
    with path.open("wb") as out:
        for event in simulate(SimulationConfig(seed=7, customers=150, days=7)):
            out.write(orjson.dumps(event) + b"\n")
    return path


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    return {**base, **extra}


def run_cli(*args: str, extra_env: dict[str, str] | None = None,
            stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], input=stdin.decode() if stdin else None,
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
                          env=env(**(extra_env or {})))


def run_args(url: str, tmp: Path, *files: str) -> list[str]:
    return ["run", *(files or ("-",)), "--store", url, "--rules", str(ROOT / "rules"),
            "--no-progress", "--dead-letters", str(tmp / "dead.jsonl")]


def clean_run(server: OwnRedis, week: Path, tmp: Path, db: int = 1) -> dict[str, Any]:
    url = f"redis://127.0.0.1:{server.port}/{db}"
    done = run_cli(*run_args(url, tmp, str(week)))
    assert done.returncode == 0, done.stderr
    return dump(redis.Redis(port=server.port, db=db))


def piped_run(url: str, tmp: Path, week: Path, fault: Callable[[], None],
              extra_env: dict[str, str] | None = None, wait_key: tuple[int, int] | None = None,
              ) -> subprocess.CompletedProcess[str]:
    """`run -` fed a third of the week, then `fault()` once a commit reached Redis, then the
    rest: the fault lands between two batches of a live run, deterministically."""
    lines = week.read_bytes().splitlines(keepends=True)
    cut = len(lines) // 3
    proc = subprocess.Popen([CLI, *run_args(url, tmp)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=env(**(extra_env or {})))
    assert proc.stdin is not None
    proc.stdin.write(b"".join(lines[:cut]))
    proc.stdin.flush()
    port, db = wait_key or (int(url.rsplit(":", 1)[1].split("/")[0]), int(url.rsplit("/", 1)[1]))
    probe = redis.Redis(port=port, db=db)
    deadline = time.monotonic() + 60
    while not probe.exists("vm:watermark"):
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "no commit within 60 s"
        time.sleep(0.02)
    probe.close()
    fault()
    writer = threading.Thread(target=lambda: _feed(proc.stdin, lines[cut:]))
    writer.start()
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    proc.wait(timeout=300)
    writer.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())


def _feed(stdin: Any, lines: list[bytes]) -> None:
    try:
        stdin.write(b"".join(lines))
        stdin.close()
    except (BrokenPipeError, ValueError):   # the run stopped on the fault: some tests expect it
        pass


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def consistent(client: redis.Redis) -> None:
    """Nothing half-applied: every stored state has its score hash and ranking entry."""
    snapshot = dump(client)
    ranking = dict(client.zrange("vm:ranking", 0, -1, withscores=True))  # type: ignore[arg-type]
    states = {k: decode_state(v[1]) for k, v in snapshot.items() if k.endswith(":state")}
    assert len(ranking) == len(states)
    for key, state in states.items():
        assert ranking[state.customer.encode()] == state.score.total, key
        total, *_, seq_mark = snapshot[key.replace(":state", ":score")][1]
        assert total == state.score.total, key
        assert seq_mark == state.seq, key


# --------------------------------------------------------------------------------------------


def test_oom_with_noeviction_stops_cleanly_and_a_rerun_equals_a_clean_run(
        own_redis: Callable[..., OwnRedis], week: Path, tmp_path: Path) -> None:
    server = own_redis({"maxmemory-policy": "noeviction"})
    admin = server.admin()
    before = int(admin.info("memory")["used_memory"])
    expected = clean_run(server, week, tmp_path)
    footprint = int(admin.info("memory")["used_memory"]) - before
    assert footprint > 500_000
    # Room for about half of the week in DB 0: the run hits OOM midway.
    admin.config_set("maxmemory", str(int(admin.info("memory")["used_memory"])
                                      + footprint // 2))
    done = run_cli(*run_args(server.url, tmp_path, str(week)))
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "out of memory" in line and "nothing of this batch was written" in line
    db0 = redis.Redis(port=server.port, db=0)
    assert db0.zcard("vm:ranking") > 0          # really midway: earlier batches are there
    consistent(db0)
    assert only(dump(db0), ("ledger",)) != only(expected, ("ledger",))

    admin.config_set("maxmemory", "0")
    done = run_cli(*run_args(server.url, tmp_path, str(week)))
    assert done.returncode == 0, done.stderr
    got = dump(db0)
    assert only(got, RESULTS) == only(expected, RESULTS)
    assert got.keys() == expected.keys()


def test_restart_without_persistence_midrun_is_detected_and_nothing_more_written(
        own_redis: Callable[..., OwnRedis], week: Path, tmp_path: Path) -> None:
    server = own_redis()
    done = piped_run(server.url, tmp_path, week, fault=lambda: server.restart())
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "lost data" in line and "restarted without persistence" in line
    db0 = redis.Redis(port=server.port, db=0)
    assert db0.dbsize() == 0                     # refused: not a single key written after
    expected = clean_run(server, week, tmp_path)
    done = run_cli(*run_args(server.url, tmp_path, str(week)))
    assert done.returncode == 0, done.stderr
    assert only(dump(db0), RESULTS) == only(expected, RESULTS)


def test_restart_with_persistence_is_ridden_out_by_the_retries(
        own_redis: Callable[..., OwnRedis], week: Path, tmp_path: Path) -> None:
    server = own_redis({"appendonly": "yes", "appendfsync": "always"})
    expected = clean_run(server, week, tmp_path)

    def restart() -> None:
        # Down for 4 s in the background while the run goes on: far beyond the old 0.35 s.
        threading.Thread(target=lambda: server.restart(down_for=4.0)).start()

    done = piped_run(server.url, tmp_path, week, fault=restart,
                     extra_env={"VALEUR_REDIS_RETRY_S": "30"})
    assert done.returncode == 0, done.stderr
    db0 = redis.Redis(port=server.port, db=0)
    assert only(dump(db0), RESULTS) == only(expected, RESULTS)


def test_connection_resets_midrun_change_nothing(
        own_redis: Callable[..., OwnRedis], week: Path, tmp_path: Path) -> None:
    server = own_redis()
    expected = clean_run(server, week, tmp_path)
    admin = server.admin()
    stop = threading.Event()
    kills = [0]

    def reset_connections() -> None:
        while not stop.is_set():
            kills[0] += int(admin.client_kill_filter(_type="normal", skipme=True) or 0)
            time.sleep(0.05)

    resetter = threading.Thread(target=reset_connections)
    done = piped_run(server.url, tmp_path, week, fault=resetter.start)
    stop.set()
    resetter.join()
    assert done.returncode == 0, done.stderr
    assert kills[0] >= 1
    assert only(dump(redis.Redis(port=server.port, db=0)), RESULTS) == only(expected, RESULTS)


def test_eviction_policy_other_than_noeviction_is_refused(
        own_redis: Callable[..., OwnRedis], week: Path, tmp_path: Path) -> None:
    server = own_redis({"maxmemory-policy": "allkeys-lru", "maxmemory": "64mb"})
    done = run_cli(*run_args(server.url, tmp_path, str(week)))
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "maxmemory-policy allkeys-lru" in line and "noeviction" in line
    assert server.admin().dbsize() == 0


@pytest.mark.parametrize("password", ["pa/ss#wo?rd@x", "simple-secret-9"])
def test_wrong_or_missing_credentials_stop_at_once_with_the_password_masked(
        own_redis: Callable[..., OwnRedis], week: Path, tmp_path: Path, password: str) -> None:
    server = own_redis({"requirepass": "the-right-one"})
    began = time.monotonic()
    url = f"redis://:{password}@127.0.0.1:{server.port}/0"
    done = run_cli(*run_args(url, tmp_path, str(week)), extra_env={"VALEUR_REDIS_RETRY_S": "60"})
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "refused the credentials" in line and password not in done.stderr + done.stdout
    assert time.monotonic() - began < 20           # permanent: not retried for 60 s
    done = run_cli(*run_args(server.url, tmp_path, str(week)))
    assert "requires authentication" in one_error_line(done.stderr)
    # The password from the environment instead of the URL: the run works.
    done = run_cli(*run_args(server.url, tmp_path, str(week)),
                   extra_env={"VALEUR_REDIS_PASSWORD": "the-right-one"})
    assert done.returncode == 0, done.stderr


def test_script_error_is_permanent_and_one_line(
        own_redis: Callable[..., OwnRedis], week: Path, tmp_path: Path) -> None:
    server = own_redis()
    admin = server.admin()
    first = orjson.loads(week.read_bytes().split(b"\n", 1)[0])["customer"]
    admin.rpush(f"vm:{{c:{first}}}", "not a string")   # a foreign key of the wrong type
    began = time.monotonic()
    done = run_cli(*run_args(server.url, tmp_path, str(week)),
                   extra_env={"VALEUR_REDIS_RETRY_S": "60"})
    assert done.returncode == 2
    assert "Lua script" in one_error_line(done.stderr)
    assert time.monotonic() - began < 20


def test_runs_cached_store_rides_out_a_restart_before_its_first_reads(
        own_redis: Callable[..., OwnRedis]) -> None:
    """`run --store redis://` reads the store's customers and due index once, at its first
    load and due query: with the retries of every other read (they were bare calls, a restart
    there stopped the run with a raw ConnectionError)."""
    from valeur_monitor.engine.state import CustomerState
    from valeur_monitor.store.base import Commit
    from valeur_monitor.store.cached import CachedStore
    from valeur_monitor.store.connect import RedisOptions
    from valeur_monitor.store.redis import RedisStore

    server = own_redis()
    inner = RedisStore.from_url(server.url, options=RedisOptions(retry_for=30.0))
    cached = CachedStore(inner, pipelined=True)

    def down_for_a_second() -> threading.Thread:
        server.stop(graceful=False)
        back = threading.Thread(target=lambda: (time.sleep(1.0), server.start()))
        back.start()
        return back

    try:
        back = down_for_a_second()
        assert cached.load(["a"]) == {"a": CustomerState("a")}
        back.join()
        back = down_for_a_second()
        assert cached.due(10**13) == []
        back.join()
        state = CustomerState("a", seq=1)
        cached.commit(Commit(states={"a": state}, due={"a": 5}, watermark=1))
        cached.flush()
        assert inner.load(["a"])["a"].seq == 1 and inner.due(10) == ["a"]
    finally:
        cached.close()
