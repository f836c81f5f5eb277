"""`make chaos`, Redis part: faults of the store under two live workers, on our OWN
redis-server (never the shared one). After a restart with persistence or connection resets the
workers ride it out; after OOM (noeviction) they stop with one line, nothing half-applied, and
restarted after `maxmemory` is raised they finish the stream; after a restart without
persistence they stop (data lost) without writing. Whenever the stream completes, Redis, the
score-updates topic, the alerts and the dead letters equal the embedded run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.chaos.test_chaos import (
    DAY_MS,
    PARTITIONS,
    RULES,
    Group,
    admin_for,
    embedded,
    last_time,
    make_group,
    simulate_file,
)
from tests.fixtures.own_redis import OwnRedis
from tests.integration.streaming_support import (
    compare_stores,
    latest_by_key,
    read_topic,
    run_cli,
    score_json,
    wait_consumed,
    wait_for,
)
from valeur_monitor.engine.event import format_time
from valeur_monitor.store.redis import RedisStore

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
__all__ = ["admin_for"]   # the fixture, imported to be usable here

EXIT_FATAL = 70


def check_store_and_topics(group: Group, ref: Any) -> dict[str, int]:
    """Redis, score-updates and alerts against the embedded run (what a store fault could
    change; dead letters are decided before the store and checked by test_chaos.py)."""
    cap = RULES.settings.ledger_cap
    actual = RedisStore.from_url(group.redis_url, ledger_cap=cap)
    problems = compare_stores(ref.store, actual, cap)
    assert not problems, f"{len(problems)} difference(s):\n" + "\n".join(problems[:10])
    latest = latest_by_key(read_topic(group.bootstrap, group.topics["scores"], PARTITIONS))
    scored = [c for c in actual.customers() if actual.ledger(c, 1)]
    assert set(latest) == set(scored)
    for customer in scored:
        latest[customer].pop("rules_version", None)
    assert [c for c in scored if latest[c] != score_json(actual, c)] == []
    alerts = read_topic(group.bootstrap, group.topics["alerts"], 1)
    got = {(a["customer"], a["id"], a["time"]) for a in (orjson.loads(r.value) for r in alerts)}
    assert got == ref.alerts
    actual.close()
    return {"customers": len(scored), "alerts": len(got), "score_updates_keys": len(latest)}


def progress(group: Group) -> int:
    return sum(int(w.status().get("events", 0) or 0) for w in group.workers
               if w.proc is not None and w.proc.poll() is None)


def wait_exits(group: Group, words: str, timeout: float = 120) -> None:
    """Every live worker stopped with EXIT_FATAL and one log line containing `words`."""
    live = [w for w in group.workers if w.proc is not None]
    for worker in live:
        assert worker.proc is not None
        worker.proc.wait(timeout)
        assert worker.proc.returncode == EXIT_FATAL, worker.log_tail()
        log = worker.log_path.read_text(errors="replace")
        assert words in log, worker.log_tail()
        assert "Traceback" not in log.split(words, 1)[1][:2000]


@pytest.mark.parametrize("fault", ["restart", "resets", "oom", "lost"])
def test_redis_fault_under_two_workers(fault: str, kafka_bootstrap: str, tmp_path: Path,
                                       admin_for: Any,
                                       own_redis: Callable[..., OwnRedis]) -> None:
    config = {"appendonly": "yes", "appendfsync": "always"} if fault in ("restart", "oom") \
        else {}
    server = own_redis(config)
    path = tmp_path / "events.jsonl"
    count = simulate_file(path, customers=800, days=7)
    until = last_time(path) + DAY_MS
    ref = embedded(RULES, path, until)
    group = make_group(kafka_bootstrap, admin_for(kafka_bootstrap), server.url, tmp_path,
                       "event")
    group.env["VALEUR_REDIS_RETRY_S"] = "60"
    assert group.env["VALEUR_TOPICS__LEDGER"] == group.topics["ledger"]  # made by make_group
    admin = server.admin()
    try:
        for name in ("a", "b"):
            group.start(name).wait_ready(120)
        if fault == "oom":   # room for a few batches only
            admin.config_set("maxmemory", str(int(admin.info("memory")["used_memory"])
                                              + 300_000))
        run_cli(["produce", str(path), "--no-progress"], group.env)
        began = time.monotonic()
        if fault != "oom":
            wait_for("a third processed", lambda: progress(group) >= count // 3, 300, 0.1)
        note = ""
        if fault == "restart":
            server.restart(down_for=5.0)
            note = "Redis down 5 s"
        elif fault == "resets":
            stop = threading.Event()
            kills = [0]

            def reset() -> None:
                while not stop.wait(0.05):
                    kills[0] += int(admin.client_kill_filter(_type="normal", skipme=True) or 0)

            thread = threading.Thread(target=reset)
            thread.start()
            time.sleep(8)
            stop.set()
            thread.join()
            assert kills[0] > 0
            note = f"{kills[0]} connections reset in 8 s"
        elif fault == "oom":
            wait_exits(group, "out of memory")
            # Nothing half-applied: every state has its ranking entry.
            states = sum(1 for _ in admin.scan_iter(match="vm:{c:*}", count=1000))
            assert states == admin.zcard("vm:ranking")
            admin.config_set("maxmemory", "0")
            for name in ("a2", "b2"):       # the supervisor restarts them
                group.start(name)
            note = f"both workers stopped on OOM with {states} customers stored, restarted"
        elif fault == "lost":
            server.restart()                # no persistence: empty
            # A worker that already finished its partitions commits nothing more and cannot
            # notice: records for every partition make each one commit (and be refused).
            run_cli(["produce", str(path), "--no-progress"], group.env)
            wait_exits(group, "lost data")
            assert admin.dbsize() == 0      # refused: nothing written after the restart
            print(f"\n[redis lost] both workers stopped (exit {EXIT_FATAL}); 0 keys written")
            return
        wait_consumed(admin_for(group.bootstrap), group.env["VALEUR_WORKER__APP_ID"],
                      group.topics["events"], PARTITIONS, 600,
                      [w for w in group.workers if w.proc and w.proc.poll() is None])
        group.scrape()
        group.stop_all()
        run_cli(["advance", "--until", format_time(until)], group.env)
        figures = check_store_and_topics(group, ref)
    finally:
        group.stop_all()
    print(f"\n[redis {fault}] {count:,} events; {note}; {figures}; "
          f"{time.monotonic() - began:.0f}s")
