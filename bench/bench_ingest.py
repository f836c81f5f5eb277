"""Ingest server throughput and latency: signed Zendesk webhooks -> `valeur-monitor ingest` ->
Kafka acknowledgement (acks=all), next to a bare endpoint on the same stack (FastAPI on uvicorn,
one POST route that reads the body and answers 200).

Reports requests/s and p50/p99 latency (the 202 is sent after Kafka's acknowledgement, so the
latency is "to Kafka ack") at a fixed concurrency, medians of several runs, and the ratios to
the bare endpoint measured in the same run. Needs the local Kafka (`scripts/services start kafka`).

    .venv/bin/python -m bench.bench_ingest                 # writes bench/results/ingest.md
    .venv/bin/python -m bench.bench_ingest --requests 500 --runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from valeur_monitor.engine.event import format_time
from valeur_monitor.ingest.auth import zendesk_headers

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("valeur-monitor"))
KAFKA = f"127.0.0.1:{os.environ.get('VALEUR_KAFKA_PORT', '19092')}"
SECRET = "bench-signing-secret"
FIXTURE = ROOT / "tests" / "data" / "sources" / "zendesk-webhooks.jsonl"


def bare_app() -> FastAPI:
    """The baseline: the same server stack, no auth, no mapping, no Kafka."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/ingest/zendesk")
    async def receive(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)

    return app


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
    raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")


def payloads(n: int) -> list[bytes]:
    """n distinct signed-to-be webhook bodies (the lifecycle's payloads with fresh ids)."""
    base = [orjson.loads(line) for line in FIXTURE.read_bytes().splitlines()]
    out = []
    for i in range(n):
        body = dict(base[i % len(base)])
        body["id"] = f"bench-{i:08d}"
        out.append(orjson.dumps(body))
    return out


async def load(port: int, bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    stamp = format_time(int(time.time()) * 1000)
    signed = [(b, zendesk_headers(SECRET, b, stamp)) for b in bodies]
    latencies: list[float] = []
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in signed:
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=30) as client:
        async def worker() -> None:
            while not queue.empty():
                body, headers = queue.get_nowait()
                began = time.perf_counter()
                for attempt in range(3):
                    try:
                        reply = await client.post("/ingest/zendesk", content=body,
                                                  headers=headers)
                        break
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        # a keep-alive connection the server closed: resend, as a sender
                        # would (same payload, same event id)
                        if attempt == 2:
                            raise
                latencies.append(time.perf_counter() - began)
                if reply.status_code not in (200, 202):
                    raise SystemExit(f"unexpected {reply.status_code}: {reply.text}")

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return len(bodies) / elapsed, latencies


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(ports: dict[str, int], n: int, concurrency: int,
            runs: int) -> dict[str, dict[str, float]]:
    """Runs alternate between the endpoints, so both see the same load on a shared machine."""
    for port in ports.values():
        asyncio.run(load(port, payloads(min(200, n)), concurrency))      # warm-up
    samples: dict[str, dict[str, list[float]]] = {
        name: {"rate": [], "p50": [], "p99": []} for name in ports}
    for _ in range(runs):
        for name, port in ports.items():
            rate, lat = asyncio.run(load(port, payloads(n), concurrency))
            samples[name]["rate"].append(rate)
            samples[name]["p50"].append(p(lat, 0.50) * 1000)
            samples[name]["p99"].append(p(lat, 0.99) * 1000)
    return {name: {k: statistics.median(v) for k, v in got.items()}
            for name, got in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ingest.md"))
    args = parser.parse_args()
    from kafka import KafkaAdminClient

    topic = f"bench-ingest-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=30000)
    admin.create_topics({topic: {"num_partitions": 4, "replication_factor": 1},
                         f"{topic}-dead": {"num_partitions": 1, "replication_factor": 1}},
                        wait_for_metadata=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env.update({"VALEUR_KAFKA__BOOTSTRAP_SERVERS": KAFKA, "VALEUR_TOPICS__EVENTS": topic,
                "VALEUR_TOPICS__DEAD_LETTERS": f"{topic}-dead",
                "VALEUR_INGEST__SECRETS__ZENDESK": SECRET,
                "VALEUR_INGEST__IDENTITIES": str(FIXTURE.with_name("identities.csv"))})
    bare_port, ingest_port = free_port(), free_port()
    servers = []
    try:
        servers.append(start([sys.executable, "-m", "uvicorn", "--factory",
                              "bench.bench_ingest:bare_app", "--port", str(bare_port),
                              "--no-access-log", "--log-level", "warning"],
                             {**env, "PYTHONPATH": str(ROOT)}, tmp / "bare.log", bare_port))
        servers.append(start([CLI, "ingest", "--port", str(ingest_port)], env,
                             tmp / "ingest.log", ingest_port))
        results = measure({"bare": bare_port, "ingest": ingest_port}, args.requests,
                          args.concurrency, args.runs)
    finally:
        for server in servers:
            server.terminate()
            server.wait(15)
        admin.delete_topics([topic, f"{topic}-dead"])
        admin.close()
    bare_r, ing = results["bare"], results["ingest"]
    lines = [
        f"Ingest server, {args.requests} signed Zendesk webhooks per run, concurrency "
        f"{args.concurrency}, median of {args.runs} interleaved runs; {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other work (compare ratios).",
        "",
        "| endpoint | requests/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
        f"| bare FastAPI/uvicorn POST → 200 | {bare_r['rate']:,.0f} | {bare_r['p50']:.1f} "
        f"| {bare_r['p99']:.1f} |",
        f"| `ingest` /ingest/zendesk → verify, map, Kafka ack (acks=all) → 202 | "
        f"{ing['rate']:,.0f} | {ing['p50']:.1f} | {ing['p99']:.1f} |",
        f"| ratio ingest / bare | {ing['rate'] / bare_r['rate']:.2f}× | "
        f"{ing['p50'] / bare_r['p50']:.1f}× | {ing['p99'] / bare_r['p99']:.1f}× |",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
