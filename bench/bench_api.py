"""API customer lookup on Redis holding many customers, vs a bare redis-py read of the same keys.

    python -m bench.bench_api [--customers 1000000] [--requests 3000] [--threads 8]

Starts its OWN redis-server (free port, temp dir, no persistence; never the shared one), fills
it with a fast pipelined loader (templates from a simulated week, copied under new customer
ids: the same keys and value sizes the Redis store writes, each ledger cut to `--ledger`
entries to bound memory), then starts `valeur-monitor serve` on it (one uvicorn process) and
measures, interleaved over `--runs` rounds, medians of:

* API: GET /v1/customers/{id} (random ids) with httpx: p50/p99 latency of sequential requests,
  and requests/s with `--threads` client threads (the API reads the four keys in one pipeline);
* bare: the same customer's keys (HGETALL score, HGETALL reasons, LRANGE ledger, GET state) in
  one redis-py pipeline: the same figures.

Writes bench/results/api.md. The machine is shared: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.store.keys import LAYOUT, Keys
from valeur_monitor.store.redis import RedisStore

RESULTS = Path(__file__).parent / "results" / "api.md"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def templates(url: str, ledger: int) -> list[dict[str, Any]]:
    """Key values of simulated customers, as the Redis store wrote them."""
    rules = load_rules([str(ROOT / "rules")])
    store = RedisStore.from_url(url, ledger_cap=ledger, prefix="tpl:")
    processor = Processor(rules, store)
    lines = [orjson.dumps(e) for e in simulate(SimulationConfig(seed=1, customers=300, days=14))]
    for i in range(0, len(lines), 2000):
        processor.process(lines[i:i + 2000])
    client: Any = store.client
    keys = Keys("tpl:")
    out = []
    for customer in client.zrange(keys.ranking, 0, -1):
        c = customer.decode()
        value = client.get(keys.value(c)) or b""
        if len(value) > 2000:
            continue        # the larger values would take 1 M customers past a few GB
        out.append({"value": value, "total": float(client.zscore(keys.ranking, c))})
    for key in client.scan_iter(match="tpl:*", count=10_000):
        client.delete(key)
    store.close()
    return out


def fill(client: Any, n: int, tpl: list[dict[str, Any]], chunk: int = 2000) -> float:
    keys = Keys()
    began = time.perf_counter()
    for start in range(0, n, chunk):
        pipe = client.pipeline(transaction=False)
        ranking = {}
        for i in range(start, min(n, start + chunk)):
            c, t = f"cust-{i:07d}", tpl[i % len(tpl)]
            pipe.set(keys.value(c), t["value"])
            ranking[c] = t["total"]
        pipe.zadd(keys.ranking, ranking)
        pipe.hset(keys.epoch, "layout", str(LAYOUT))
        pipe.execute()
    return time.perf_counter() - began


def measure(call: Callable[[str], None], ids: list[str], threads: int) -> dict[str, float]:
    lat = []
    for c in ids:
        began = time.perf_counter()
        call(c)
        lat.append(time.perf_counter() - began)
    lat.sort()
    done = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + 3.0

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        count = 0
        while time.perf_counter() < stop:
            call(rnd.choice(ids))
            count += 1
        with lock:
            done[0] += count

    began = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return {"p50": lat[len(lat) // 2] * 1000, "p99": lat[int(len(lat) * 0.99)] * 1000,
            "rps": done[0] / (time.perf_counter() - began)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ledger", type=int, default=6, help="ledger entries kept per customer")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vmbench-api-"))
    server, port = start_redis(folder)
    api = None
    try:
        url = f"redis://127.0.0.1:{port}/0"
        client: Any = redis.Redis(port=port)
        tpl = templates(url, args.ledger)
        load_s = fill(client, args.customers, tpl)
        memory = int(client.info("memory")["used_memory"])
        print(f"loaded {args.customers:,} customers in {load_s:.1f}s "
              f"({memory / args.customers:.0f} B/customer)", flush=True)
        api_port = free_port()
        api = subprocess.Popen([sys.executable, "-m", "valeur_monitor.cli.main", "serve",
                                "--redis", url, "--port", str(api_port)],
                               stderr=subprocess.DEVNULL, cwd=ROOT)
        http = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10)
        for _ in range(200):
            try:
                if http.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        rnd = random.Random(7)
        ids = [f"cust-{rnd.randrange(args.customers):07d}" for _ in range(args.requests)]
        keys = Keys()
        local = threading.local()

        def via_api(c: str) -> None:
            session = getattr(local, "http", None)
            if session is None:
                session = local.http = httpx.Client(base_url=f"http://127.0.0.1:{api_port}")
            response = session.get(f"/v1/customers/{c}")
            assert response.status_code == 200, response.text

        def bare(c: str) -> None:
            assert client.get(keys.value(c))

        rows: dict[str, list[dict[str, float]]] = {"api": [], "bare": []}
        for _ in range(args.runs):
            rows["bare"].append(measure(bare, ids, args.threads))
            rows["api"].append(measure(via_api, ids, args.threads))
        med = {k: {m: statistics.median(r[m] for r in v) for m in ("p50", "p99", "rps")}
               for k, v in rows.items()}
        table = report(args, med, load_s, memory)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(table)
        print(table)
    finally:
        if api is not None:
            api.terminate()
            api.wait(20)
        server.terminate()
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def report(args: argparse.Namespace, med: dict[str, dict[str, float]], load_s: float,
           memory: int) -> str:
    a, b = med["api"], med["bare"]
    return "\n".join([
        f"Customer lookup on Redis holding {args.customers:,} customers ({args.ledger} ledger "
        f"entries each, {memory / args.customers:.0f} B/customer; loaded in {load_s:.0f} s by "
        f"the pipelined loader). Medians of {args.runs} interleaved runs; {args.requests} "
        f"sequential requests for latency, {args.threads} client threads for 3 s for "
        f"throughput; shared 2-core machine (client, API and Redis on the same cores).",
        "",
        "| path | p50 (ms) | p99 (ms) | requests/s |",
        "|---|---:|---:|---:|",
        f"| `GET /v1/customers/{{id}}` (serve, 1 uvicorn process) | {a['p50']:.2f} | "
        f"{a['p99']:.2f} | {a['rps']:.0f} |",
        f"| bare redis-py pipeline of the same 4 keys | {b['p50']:.2f} | {b['p99']:.2f} | "
        f"{b['rps']:.0f} |",
        f"| **ratio API / bare** | **{a['p50'] / b['p50']:.1f}x** | "
        f"**{a['p99'] / b['p99']:.1f}x** | **{a['rps'] / b['rps']:.2f}x** |",
        ""])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
