"""One `valeur-monitor worker`, Kafka -> Redis: sustained throughput next to a bare aiokafka
consume loop over the same topic, and produce -> score-visible-in-Redis latency at fixed rates.

Needs the local servers (`scripts/services start kafka redis`). Creates its own topics (deleted
at the end) and claims a free Redis logical DB the way the pytest fixtures do.

    .venv/bin/python -m bench.bench_worker                 # writes bench/results/worker.md
    .venv/bin/python -m bench.bench_worker --runs 1 --rates 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.simulate.malformed import RAW_KEY

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("valeur-monitor"))
HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("VALEUR_REDIS_PORT", "16379"))
KAFKA = f"{HOST}:{os.environ.get('VALEUR_KAFKA_PORT', '19092')}"
CLAIM = "valeur:test-db-claim:"
PARTITIONS = 4


# -- servers ----------------------------------------------------------------------------

@contextlib.contextmanager
def claimed_redis_db() -> Iterator[str]:
    """A logical DB nobody else uses (same claim protocol as tests/fixtures/servers.py)."""
    import redis

    admin = redis.Redis(host=HOST, port=REDIS_PORT)
    databases = int(admin.config_get("databases").get("databases", 16))
    claims = redis.Redis(host=HOST, port=REDIS_PORT, db=databases - 1)
    token = f"bench-{os.getpid()}-{uuid.uuid4().hex}"
    for db in range(1, databases - 1):
        if claims.set(f"{CLAIM}{db}", token, nx=True, ex=6 * 3600):
            break
    else:
        raise SystemExit("no free Redis DB to claim")
    try:
        yield f"redis://{HOST}:{REDIS_PORT}/{db}"
    finally:
        redis.Redis(host=HOST, port=REDIS_PORT, db=db).flushdb()
        if claims.get(f"{CLAIM}{db}") == token.encode():
            claims.delete(f"{CLAIM}{db}")


def flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


@contextlib.contextmanager
def topics(admin: Any) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    names = {"events": f"bench-events-{tag}", "score_updates": f"bench-scores-{tag}",
             "customer_alerts": f"bench-alerts-{tag}", "dead_letters": f"bench-dead-{tag}",
             "ledger": f"bench-ledger-{tag}"}
    admin.create_topics({n: {"num_partitions": PARTITIONS, "replication_factor": 1}
                         for n in names.values()}, wait_for_metadata=True)
    try:
        yield names
    finally:
        admin.delete_topics(list(names.values()), raise_errors=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Worker:
    """A worker subprocess; `status()` is its /readyz JSON."""

    def __init__(self, env: dict[str, str], log: Path, noop: bool = False) -> None:
        self.port = free_port()
        command = ([sys.executable, "-m", "bench.bench_worker", "--noop-worker"] if noop
                   else [CLI, "worker"])
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                command, env={**env, "VALEUR_WORKER__WEB_PORT": str(self.port)},
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def status(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/readyz", timeout=2) as r:
                return dict(orjson.loads(r.read()))
        except urllib.error.HTTPError as exc:
            return dict(orjson.loads(exc.read()))
        except OSError:
            return {}

    def wait(self, what: str, check: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"worker exited with {self.proc.returncode}")
            status = self.status()
            if status and check(status):
                return status
            time.sleep(0.05)
        raise SystemExit(f"timed out waiting for {what}")

    def cpu(self) -> float:
        """CPU seconds the worker process used so far (every thread, user + system)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def noop_faust_worker() -> None:
    """`--noop-worker`: the same faust consumption as the worker (noack_take, ack after the
    batch) with no processing at all, to separate faust's own cost from ours."""
    import faust

    from valeur_monitor.settings import load_settings

    settings = load_settings()
    w = settings.worker
    # the parent passes its broker in the settings (this process's VALEUR_KAFKA_PORT is gone)
    broker = settings.kafka.bootstrap_servers
    app = faust.App(w.app_id, broker=f"kafka://{broker}", store="memory://",
                    datadir=str(w.datadir), key_serializer="raw", value_serializer="raw",
                    topic_allow_declare=False, topic_disable_leader=True,
                    consumer_auto_offset_reset="earliest", web_port=w.web_port,
                    broker_session_timeout=w.session_timeout)
    topic = app.topic(os.environ["VALEUR_TOPICS__EVENTS"], key_serializer="raw",
                      value_serializer="raw")
    state: dict[str, Any] = {"status": "ready", "events": 0, "batches": 0,
                             "first_batch": None, "last_batch": None,
                             "seconds": {"process": 0.0}}

    @app.agent(topic)
    async def consume(stream: Any) -> None:
        async for events in stream.noack_take(w.batch_size, within=w.flush_interval):
            state["first_batch"] = state["first_batch"] or time.time()
            state["events"] += len(events)
            state["batches"] += 1
            for event in events:
                await stream.ack(event)
            state["last_batch"] = time.time()

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        return web.json(state)

    faust.Worker(app, loglevel=w.loglevel).execute_from_commandline()


def worker_env(names: dict[str, str], redis_url: str, rules: Path, datadir: Path,
               **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env.update({"VALEUR_KAFKA__BOOTSTRAP_SERVERS": KAFKA, "VALEUR_REDIS_URL": redis_url,
                "VALEUR_RULES": str(rules), "VALEUR_WORKER__CLOCK": "event",
                "VALEUR_WORKER__APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
                "VALEUR_WORKER__DATADIR": str(datadir), "VALEUR_WORKER__LOGLEVEL": "warning"})
    env.update({f"VALEUR_TOPICS__{role.upper()}": name for role, name in names.items()})
    env.update(extra)
    return env


# -- inputs ----------------------------------------------------------------------------

def simulated_lines(customers: int, days: int) -> list[bytes]:
    config = SimulationConfig(seed=5, customers=customers, days=days)
    return [r[RAW_KEY].encode() if RAW_KEY in r else orjson.dumps(r) for r in simulate(config)]


def produce_all(topic: str, lines: list[bytes]) -> float:
    from valeur_monitor.kafka.produce import finish, open_producer, produce_lines

    producer = open_producer({"bootstrap_servers": [KAFKA]})
    report = finish(producer, produce_lines(producer, topic, lines))
    if report.failed:
        raise SystemExit(f"{report.failed} records failed: {report.errors}")
    return report.rate


def zero_lateness_rules(tmp: Path) -> Path:
    """The shipped rules with `lateness: 0s`, so an event's score is written by the batch that
    carries it (with the shipped 5 minutes, it would be buffered 5 minutes of event time)."""
    target = tmp / "rules-lateness-0"
    shutil.copytree(ROOT / "rules", target, ignore=shutil.ignore_patterns("tests"))
    settings = target / "settings.yml"
    settings.write_text(settings.read_text().replace("lateness: 5m", "lateness: 0s", 1))
    return target


# -- measures ----------------------------------------------------------------------------

async def _bare(topic: str, total: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        seen = 0
        began = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(b) for b in batches.values())
        return total / (time.perf_counter() - began)
    finally:
        await consumer.stop()


def bare_loop(topic: str, total: int) -> float:
    """Baseline: aiokafka getmany() until every record is read (no decoding, no commit)."""
    return asyncio.run(_bare(topic, total))


def worker_throughput(env: dict[str, str], total: int, log: Path,
                      noop: bool = False) -> tuple[float, dict[str, Any]]:
    """Events/s of one worker from its first batch to its last commit (worker's own clock)."""
    worker = Worker(env, log, noop)
    try:
        status = worker.wait("all events", lambda s: s.get("events", 0) >= total, 600)
        status["cpu"] = worker.cpu()    # start-up included
        return total / (status["last_batch"] - status["first_batch"]), status
    finally:
        worker.stop()


# the poller's one command per poll: which of these keys exist (a pipeline of one EXISTS per
# probe cost ~1.4 ms of the bench's CPU per poll of 100 probes, every 2 ms)
EXISTING = "local out = {} for i, k in ipairs(KEYS) do out[i] = redis.call('EXISTS', k) end " \
           "return out"


def latency(env: dict[str, str], redis_url: str, topic: str, lines: list[bytes], rate: int,
            seconds: float, log: Path, probe_every: int = 10,
            legacy: bool = False) -> dict[str, Any]:
    """Produce at `rate`/s; every `probe_every`-th record is a probe: a survey for a fresh
    customer whose score key appears in Redis when its batch is committed. Latency = first
    time a poller (every ~2 ms) sees the key minus the time just before the probe is sent.

    The load generator shares the machine's two cores with the worker, Kafka and Redis, so it
    must cost little: records are sent with aiokafka, paced every ~1 ms (≈ 19 µs of CPU a
    record); the poller (its own process) asks Redis about all pending probes in one script
    call.
    `legacy`: the generator of earlier rounds (kafka-python, one send per record, ≈ 100 µs of
    CPU each, and one EXISTS per probe and poll: ≈ 0.8 of a core at 5k/s)."""
    import multiprocessing

    # the worker notes each batch's stage times (valeur_monitor/streaming/stages.py)
    worker = Worker({**env, "VALEUR_STAGES": "1"}, log)
    context = multiprocessing.get_context("spawn")
    # A pipe, written at once by the generator (a multiprocessing.Queue hands each mark to a
    # feeder thread that waits for the generator's GIL; the poller cannot look for a probe
    # before its mark arrives).
    marks_in, marks = context.Pipe(duplex=False)
    ready: Any = context.Event()
    results: Any = context.Queue()
    poller = context.Process(target=poll_probes, args=(redis_url, marks_in, results, legacy, ready),
                             daemon=True)

    def mark(customer: str) -> None:
        marks.send((customer, time.time()))

    try:
        worker.wait("ready", lambda s: s.get("status") == "ready", 120)
        poller.start()
        # Spawning it takes ~0.4 s (an interpreter, redis, the keys module): probes sent
        # meanwhile were seen late, ~2.5 % of them, and made the p99 (200-300 ms at 1k/s).
        if not ready.wait(60):
            raise SystemExit("the latency poller did not start")
        cpu_ready = worker.cpu()
        records = probed(lines, int(rate * seconds), probe_every)
        began = time.perf_counter()
        if legacy:
            produce_paced_legacy(topic, records, rate, mark)
        else:
            asyncio.run(produce_paced(topic, records, rate, mark))
        produced = int(rate * seconds) / (time.perf_counter() - began)   # the rate achieved
        marks.send(None)
        seen, polls, lost = results.get(timeout=60)
        poller.join(10)
        # What its commits wrote, per event: script calls from the store's epoch counter (any
        # version of the worker), states from /readyz (none before the eighth wave).
        status = worker.status()
        events = max(1, status.get("events", 0))
        counts = {"commits": script_calls(redis_url) / events,
                  "cpu_us": 1e6 * (worker.cpu() - cpu_ready) / events,
                  "batch": events / max(1, status.get("batches", 0))}
        if "states" in status:
            counts["states"] = status["states"] / events
        stages = status.get("stages", {})
    finally:
        if poller.is_alive():
            poller.kill()
        worker.stop()
    seen.sort()
    gaps = sorted(b - a for a, b in itertools.pairwise(polls)) or [0.0]
    return {"probes": len(seen), "lost": lost, "rate": produced,
            "cpu_us_per_event": counts["cpu_us"],
            "commits_per_event": counts.get("commits", -1.0),
            "states_per_event": counts.get("states", -1.0),
            "records_per_batch": counts["batch"],
            # what a batch cycle costs: nearly the same whatever it holds (docs/benchmarks.md
            # "Worker, ninth wave"), so CPU per event at low rates is this over the batch size
            "cpu_ms_per_batch": counts["cpu_us"] * counts["batch"] / 1000,
            "poll_p50_ms": 1000 * gaps[len(gaps) // 2],
            "poll_p99_ms": 1000 * gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))],
            "p50_ms": 1000 * seen[len(seen) // 2],
            "p99_ms": 1000 * seen[min(len(seen) - 1, int(len(seen) * 0.99))],
            "max_ms": 1000 * seen[-1],
            # per stage: the age of each batch's oldest record there (ms, p50/p90/p99)
            "stages": stages}


def script_calls(url: str) -> int:
    """The store's commit counter (one per commit script call) since the DB was flushed."""
    import redis

    from valeur_monitor.store.keys import DEFAULT_PREFIX, Keys

    client = redis.Redis.from_url(url)
    try:
        return int(client.hget(Keys(DEFAULT_PREFIX).epoch, "commits") or 0)
    finally:
        client.close()


def poll_probes(redis_url: str, marks: Any, results: Any, legacy: bool, ready: Any) -> None:
    """The latency poller, in its own process (a thread of the generator's process waited for
    its GIL: 4-14 ms between polls, p99 30-160 ms, on a loaded machine): every ~2 ms, which of
    the probes sent so far have their score key; then (seen latencies, poll times, lost)."""
    import redis

    from valeur_monitor.store.keys import Keys

    keys = Keys()
    client = redis.Redis.from_url(redis_url)
    existing = client.register_script(EXISTING)
    client.ping()
    ready.set()
    pending: dict[str, float] = {}
    seen: list[float] = []
    polls: list[float] = []     # when each poll got its answer: a probe is seen up to one
    ended = None                # interval after its commit (reported, not subtracted)
    while True:
        while marks.poll():
            item = marks.recv()
            if item is None:
                ended = time.time()
            else:
                pending[item[0]] = item[1]
        probes = list(pending.items())
        if probes:
            if legacy:
                pipe = client.pipeline(transaction=False)
                for customer, _ in probes:
                    pipe.exists(keys.value(customer))
                found = pipe.execute()
            else:
                found = existing(keys=[keys.value(c) for c, _ in probes])
            now = time.time()
            polls.append(now)
            for (customer, sent), hit in zip(probes, found, strict=True):
                if hit:
                    seen.append(now - sent)
                    del pending[customer]
        if ended is not None and (not pending or time.time() > ended + 30):
            break
        time.sleep(0.002)
    results.put((seen, polls, len(pending)))


def probed(lines: list[bytes], count: int,
           probe_every: int) -> Iterator[tuple[bytes | None, bytes, str | None]]:
    """(key, value, probe customer or None) of `count` records: the simulated lines in a loop,
    every `probe_every`-th one replaced by a probe dated like the line before it."""
    from valeur_monitor.kafka.produce import customer_key

    source = iter(lines * (count // len(lines) + 1))
    probe_time = ""
    for i in range(count):
        line = next(source)
        if i % probe_every == 0:
            customer = f"probe-{i}"
            record = {"id": f"probe-{i}", "type": "survey.answered",
                      "time": probe_time or "2026-11-02T09:00:00+01:00",
                      "customer": customer, "data": {"score": 5}}
            yield customer.encode(), orjson.dumps(record), customer
        else:
            yield customer_key(line), line, None
            probe_time = orjson.loads(line)["time"] if b'"time"' in line else probe_time


async def produce_paced(topic: str, records: Iterator[tuple[bytes | None, bytes, str | None]],
                        rate: int, mark: Any) -> None:
    """Send `records` at `rate`/s: every ~1 ms, the records due by then (aiokafka appends
    them to the partition's open batch, sent as soon as the previous one is acknowledged)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=0)
    await producer.start()
    try:
        acks: list[Any] = []
        source = iter(records)
        began = time.perf_counter()
        sent, more = 0, True
        while more:
            due = int((time.perf_counter() - began) * rate) + 1
            if due <= sent:
                await asyncio.sleep(0.001)
                continue
            while sent < due:
                item = next(source, None)
                if item is None:
                    more = False
                    break
                key, value, probe = item
                if probe is not None:
                    mark(probe)
                acks.append(await producer.send(topic, value, key=key))
                sent += 1
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def produce_paced_legacy(topic: str,
                         records: Iterator[tuple[bytes | None, bytes, str | None]],
                         rate: int, mark: Any) -> None:
    """The earlier generator: kafka-python, one `send` per record (see `latency`)."""
    from kafka import KafkaProducer

    from valeur_monitor.kafka.produce import RateLimiter

    producer = KafkaProducer(bootstrap_servers=[KAFKA], acks="all", linger_ms=0)
    limiter = RateLimiter(rate)
    for key, value, probe in records:
        limiter.wait()
        if probe is not None:
            mark(probe)
        producer.send(topic, key=key, value=value)
    producer.flush(30)
    producer.close()


# -- report ----------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3,
                        help="throughput runs (0: measure latency only, no table written)")
    parser.add_argument("--rates", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--flush-interval", type=float, default=None)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "worker.md"))
    parser.add_argument("--generators", nargs="*", default=["aiokafka"],
                        choices=["aiokafka", "kafka-python"],
                        help="load generators of the latency runs (kafka-python: the earlier, "
                             "costlier one, to compare with earlier figures)")
    parser.add_argument("--fetch-on-loop", choices=["true", "false"], default=None,
                        help="worker.fetch_on_loop for the worker (default: its setting)")
    parser.add_argument("--noop-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_worker:
        noop_faust_worker()
        return
    extra = {}
    if args.fetch_on_loop:
        extra["VALEUR_WORKER__FETCH_ON_LOOP"] = args.fetch_on_loop
    if args.batch_size:
        extra["VALEUR_WORKER__BATCH_SIZE"] = str(args.batch_size)
    if args.flush_interval:
        extra["VALEUR_WORKER__FLUSH_INTERVAL"] = str(args.flush_interval)

    from kafka import KafkaAdminClient

    lines = simulated_lines(args.customers, args.days)
    admin = KafkaAdminClient(bootstrap_servers=[KAFKA])
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    log = tmp / "workers.log"
    with claimed_redis_db() as redis_url, topics(admin) as names:
        produced = produce_all(names["events"], lines)
        print(f"{len(lines):,} events produced to {PARTITIONS} partitions "
              f"({produced:,.0f}/s with kafka-python)", flush=True)
        bare, noop, worker, statuses, loads = [], [], [], [], []
        for run in range(args.runs):   # interleaved so machine noise hits all alike
            bare.append(bare_loop(names["events"], len(lines)))
            env = worker_env(names, redis_url, ROOT / "rules", tmp / f"noop-{run}", **extra)
            noop.append(worker_throughput(env, len(lines), log, noop=True)[0])
            flush(redis_url)
            env = worker_env(names, redis_url, ROOT / "rules", tmp / f"data-{run}", **extra)
            rate, status = worker_throughput(env, len(lines), log)
            worker.append(rate)
            statuses.append(status)
            loads.append(os.getloadavg()[0])
            print(f"run {run + 1}: bare {bare[-1]:,.0f}/s, faust no-op {noop[-1]:,.0f}/s, "
                  f"worker {rate:,.0f}/s "
                  f"(batches {status['batches']}, store commits {status.get('commits')}, "
                  f"states written {status.get('states')}, worker CPU {status['cpu']:.2f} s "
                  f"with start-up, seconds {status['seconds']})",
                  flush=True)
        lat_rules = zero_lateness_rules(tmp)
        latencies = {}
        for rate in args.rates:
            for generator in args.generators:
                with topics(admin) as lat_names:
                    flush(redis_url)
                    env = worker_env(lat_names, redis_url, lat_rules,
                                     tmp / f"data-lat-{rate}-{generator}", **extra)
                    latencies[rate, generator] = latency(
                        env, redis_url, lat_names["events"], lines, rate, args.seconds, log,
                        legacy=generator == "kafka-python")
                    print(f"{rate}/s ({generator}): {latencies[rate, generator]}", flush=True)
    admin.close()

    if not worker:      # --runs 0: latency only
        for (rate, generator), lat in latencies.items():
            print(f"{rate:,} events/s ({generator}, {lat['rate']:,.0f}/s sent): "
                  f"p50 {lat['p50_ms']:.1f} ms, "
                  f"p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms "
                  f"({lat['probes']:,} probes, {lat['lost']} lost; poller every "
                  f"{lat['poll_p50_ms']:.1f} ms, p99 {lat['poll_p99_ms']:.1f}; per event: "
                  f"worker CPU {lat['cpu_us_per_event']:.1f} µs, "
                  f"{lat['commits_per_event']:.3f} store commits, "
                  f"{lat['states_per_event']:.3f} states written; "
                  f"{lat['records_per_batch']:.1f} records and "
                  f"{lat['cpu_ms_per_batch']:.2f} ms of worker CPU per batch)")
            if lat["stages"]:
                print("  age of a batch's oldest record at each stage, ms (p50 / p90 / p99): "
                      + "; ".join(f"{k} " + " / ".join(f"{v:g}" for v in q.values())
                                  for k, q in lat["stages"].items()))
        shutil.rmtree(tmp, ignore_errors=True)
        return
    b, n, w = statistics.median(bare), statistics.median(noop), statistics.median(worker)
    from valeur_monitor.settings import WorkerSettings

    defaults = WorkerSettings()
    settings = (f"batch_size {extra.get('VALEUR_WORKER__BATCH_SIZE', defaults.batch_size)}, "
                f"flush_interval "
                f"{extra.get('VALEUR_WORKER__FLUSH_INTERVAL', defaults.flush_interval)} s")
    split = statistics.median(
        [s["seconds"]["process"] / max(1e-9, sum(s["seconds"].values())) for s in statuses])
    lines_md = [
        "# Worker benchmark (`bench/bench_worker.py`)",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        "Kafka 3.9.1 (one KRaft node) and Redis on the same machine; other test sessions may "
        "have been running. Compare ratios, not absolutes.",
        "",
        f"Input: {len(lines):,} simulated events ({args.customers:,} customers, {args.days} "
        f"days) in a topic of {PARTITIONS} partitions; one worker owns all of them; event "
        f"clock; {settings}.",
        "",
        f"| throughput (median of {args.runs} runs) | events/s | ratio to bare loop |",
        "|---|---|---|",
        f"| bare aiokafka `getmany()` loop (no decoding, no commit) | {b:,.0f} | 1.00 |",
        f"| faust agent, same consumption (`noack_take` + ack), no processing | {n:,.0f} "
        f"| {n / b:.3f} |",
        f"| `valeur-monitor worker` (batch consumer): Kafka -> rules -> Redis, outputs "
        f"published | {w:,.0f} | {w / b:.3f} |",
        "",
        f"Runs: bare {', '.join(f'{x:,.0f}' for x in bare)}; faust no-op "
        f"{', '.join(f'{x:,.0f}' for x in noop)}; worker "
        f"{', '.join(f'{x:,.0f}' for x in worker)} events/s; worker / faust no-op: "
        f"{', '.join(f'{w_ / n_:.2f}' for w_, n_ in zip(worker, noop, strict=True))} "
        f"(median {statistics.median(w_ / n_ for w_, n_ in zip(worker, noop, strict=True)):.2f})."
        f" Load average (1 min) after each run: {', '.join(f'{x:.1f}' for x in loads)}. "
        f"Worker time processing (decode, engine, encoding the commit; states kept in memory): "
        f"{split:.0%} of the time spent in its three steps; the rest is publishing and the "
        "Redis commit, which overlap the processing of the next batch (pipelined).",
        "",
        "| produce -> score visible in Redis | generator (rate achieved) | probes | p50 ms "
        "| p99 ms | max ms | poller interval p50 / p99 ms | records / batch "
        "| worker CPU per event µs / per batch ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (rate, generator), lat in latencies.items():
        lines_md.append(f"| {rate:,} events/s for {args.seconds:.0f} s | {generator} "
                        f"({lat['rate']:,.0f}/s) "
                        f"| {lat['probes']:,} "
                        f"({lat['lost']} lost) | {lat['p50_ms']:.1f} | {lat['p99_ms']:.1f} "
                        f"| {lat['max_ms']:.1f} "
                        f"| {lat['poll_p50_ms']:.1f} / {lat['poll_p99_ms']:.1f} "
                        f"| {lat['records_per_batch']:.1f} "
                        f"| {lat['cpu_us_per_event']:.0f} / {lat['cpu_ms_per_batch']:.2f} |")
    lines_md += [
        "",
        f"Rates above the sustained throughput (~{w:,.0f}/s here) build a backlog during the "
        f"{args.seconds:.0f} s: their latency is queueing, it grows with the run length.",
        "",
        "Latency: every 10th record is a probe (a survey for a fresh customer); the records are "
        "sent with aiokafka, paced every ~1 ms (acks=all, `linger_ms=0`; ≈ 19 µs of CPU a "
        "record; generator `kafka-python`: the earlier rounds' one, ≈ 100 µs a record on the "
        "worker's two cores); a poller (its own process) checks Redis every ~2 ms for the "
        "probes' score keys "
        "(one script call; the intervals it actually achieved are in the table: a probe is "
        "seen up to one interval after its commit). Rules: the shipped rules with "
        "`lateness: 0s` (with the shipped 5 minutes an event takes effect only once stream "
        "time passes it).",
        "",
        f"Command: `.venv/bin/python -m bench.bench_worker --runs {args.runs}`",
    ]
    Path(args.out).write_text("\n".join(lines_md) + "\n")
    print("\n".join(lines_md))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
