"""End to end: an embedded run scraped by the real Prometheus; every dashboard query, alert
expression and recording rule is evaluated against what Prometheus scraped from it.

Method (docs/observability.md, "The end-to-end test"):

* A thread feeds simulated events (2,000 customers x 2 days, 2 % malformed lines) batch by batch
  through ``EmbeddedRunner`` with the ``record_batch`` hook; ``serve()`` exposes ``/metrics`` on
  a free port; a file_sd target file gives it ``job="valeur-monitor"`` and a label unique to this
  run (``e2e_run``). The first half of the events is fed before the target is written (so every
  series exists from the first scrape), the rest at a steady pace for longer than the test runs.
* Every PromQL expression is parsed (a small parser below, checked against Prometheus on every
  expression) and the run label is added to each vector selector, so only this run's samples
  count: data left in the shared Prometheus by earlier runs cannot make a check pass.
* Dashboards: each target's ``expr`` (Grafana variables substituted) must evaluate successfully
  unrestricted and give a non-empty result restricted to this run; each metric it reads, and
  each of its label matchers on its own, must match series of this run.
* Alerts (usually not firing, so their own result is legitimately empty): the expression must
  evaluate without error, its rule must be healthy in ``/api/v1/rules``, and its *signals* must
  be non-empty for this run: the expression with each threshold comparison replaced by its
  operands, offsets dropped and subqueries replaced by their inner expression (see ``signals``).
  ``A or B`` needs data in at least one alternative that reads metrics; ``A and B`` in both;
  ``A unless B`` in ``A``. Every selector's metric and label matchers must match series of the
  run, and selectors outside ``or``/``unless`` alternatives must match as a whole.
* Recording rules: healthy in ``/api/v1/rules``, their expression has signals for this run (as
  above), and ``/api/v1/query`` on the record name returns a series (waiting, bounded, for the
  group's next evaluation when the record has no series yet; groups run every 30 s / 1 min).
* ``GET /metrics`` holds no customer id of the simulated events and ``promtool check metrics``
  is clean.

Every wait has a deadline. Duration: about 10 s until the checks run (file_sd discovery, three
scrapes), then up to one interval of the slowest recording group (1 min): a record over an
instant vector (e.g. ``valeur:customers_at_risk:sum``) only has a series once its group has
evaluated while a target was up (a run less than a minute ago may have left that series; the
signal checks are what prove the rules work on this run's own data).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.metrics import serve
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.observe import OpenPromises, metrics_for, record_batch
from valeur_monitor.simulate import RAW_KEY, SimulationConfig, simulate
from valeur_monitor.store.memory import MemoryStore

from .streaming_support import Worker, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MON = ROOT / "deploy" / "monitoring"
DASHBOARDS = sorted((MON / "dashboards").glob("*.json"))
ALERT_FILES = sorted((MON / "alerts").glob("*.yml"))
RECORDING_FILES = sorted((MON / "recording").glob("*.yml"))
_SERVICES = ROOT / os.environ.get("VALEUR_SERVICES_DIR", ".services")   # absolute wins
TARGETS_DIR = _SERVICES / "prometheus" / "targets"

JOB = "valeur-monitor"
RUN_LABEL = "e2e_run"
SIMULATION = SimulationConfig(seed=20261102, customers=2000, days=2, bad_rate=0.02)
WARMUP_SHARE = 0.5        # fed before Prometheus sees the target
FEED_SECONDS = 120.0      # the rest, at a steady pace: longer than the test can last
WORKER_PARTITIONS = 4     # events topic of the two workers
BATCH_EVERY_S = 0.25
SCRAPE_INTERVAL_S = 2.0   # scripts/services: scrape and evaluation interval
RATE_INTERVAL = "20s"     # $__rate_interval: 10 scrapes of 2 s (Grafana's minimum is 4)
MIN_SCRAPES = 3           # successful scrapes in RATE_INTERVAL before the first check
GRAFANA_VARS = {"$__rate_interval": RATE_INTERVAL, "$__interval": "2s", "$__range": "1m",
                "$team": ".*", "$channel": ".*"}   # team/channel: Grafana's "All" value
INGEST_SLACK_S = 2.0      # evaluate this far in the past: every sample up to then is stored
TARGET_UP_TIMEOUT_S = 30.0   # file_sd refresh (5 s) + discovery batching (5 s) + a scrape
CHECKS_TIMEOUT_S = 30.0      # after the target is up: rate windows filled, checks retried
RECORDING_SLACK_S = 15.0     # beyond one interval of the slowest recording group



# ---------------------------------------------------------------------------------------------
# A small PromQL parser: enough to add a label matcher to every vector selector and to strip
# thresholds. Faithful rendering is checked against Prometheus on every expression (`_faithful`).

@dataclass(frozen=True)
class Num:
    text: str


@dataclass(frozen=True)
class Str:
    text: str


@dataclass(frozen=True)
class Sel:
    name: str | None
    matchers: tuple[tuple[str, str, str], ...] = ()   # (label, op, quoted value)


@dataclass(frozen=True)
class Rng:          # matrix selector: sel[range]
    expr: Any
    range: str


@dataclass(frozen=True)
class Sub:          # subquery: expr[range:step]
    expr: Any
    range: str
    step: str


@dataclass(frozen=True)
class Offset:
    expr: Any
    offset: str


@dataclass(frozen=True)
class At:
    expr: Any
    at: str


@dataclass(frozen=True)
class Paren:
    expr: Any


@dataclass(frozen=True)
class Unary:
    op: str
    expr: Any


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Agg:
    op: str
    args: tuple[Any, ...]
    grouping: str   # "", "by (a, b)" or "without (a)"


@dataclass(frozen=True)
class Bin:
    op: str
    lhs: Any
    rhs: Any
    bool_: bool = False
    matching: str = ""   # "on (a)" / "ignoring (a)" / ""
    group: str = ""      # "group_left (b)" / "group_right ()" / ""


Node = Num | Str | Sel | Rng | Sub | Offset | At | Paren | Unary | Call | Agg | Bin

PRECEDENCE = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, "<=": 3, "<": 3, ">=": 3,
              ">": 3, "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6}
COMPARISONS = frozenset({"==", "!=", "<=", "<", ">=", ">"})
AGGREGATORS = frozenset({"sum", "avg", "count", "min", "max", "group", "stddev", "stdvar",
                         "topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio"})
_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<dur>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
  | (?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_:]*)
  | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=,(){}\[\]:@])
""", re.VERBOSE)


class PromQLError(ValueError):
    pass


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise PromQLError(f"cannot tokenize at {pos}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def parse(self) -> Node:
        node = self.expr(1)
        if self.i != len(self.tokens):
            raise PromQLError(f"unexpected {self.peek()[1]!r} in {self.text!r}")
        return node

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else ("eof", "")

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        k, v = self.peek()
        if (value is not None and v != value) or (kind is not None and k != kind) or k == "eof":
            raise PromQLError(f"expected {value or kind}, got {v!r} in {self.text!r}")
        self.i += 1
        return v

    def binary_op(self) -> str | None:
        kind, value = self.peek()
        if (kind == "op" and value in PRECEDENCE) or (kind == "ident" and value in PRECEDENCE):
            return value
        return None

    def expr(self, min_prec: int) -> Node:
        lhs = self.unary()
        while (op := self.binary_op()) is not None and PRECEDENCE[op] >= min_prec:
            self.take()
            is_bool = self.peek()[1] == "bool" and bool(self.take())
            matching = group = ""
            if self.peek()[1] in ("on", "ignoring"):
                matching = f"{self.take()} {self.labels()}"
            if self.peek()[1] in ("group_left", "group_right"):
                word = self.take()
                group = f"{word} {self.labels()}" if self.peek()[1] == "(" else f"{word} ()"
            rhs = self.expr(PRECEDENCE[op] + (0 if op == "^" else 1))
            lhs = Bin(op, lhs, rhs, is_bool, matching, group)
        return lhs

    def unary(self) -> Node:
        if self.peek()[1] in ("-", "+"):
            op = self.take()
            return Unary(op, self.expr(PRECEDENCE["^"]))   # -a^b is -(a^b); -a*b is (-a)*b
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            value = self.peek()[1]
            if value == "[":
                self.take()
                rng = self.take(kind="dur")
                if self.peek()[1] == ":":
                    self.take()
                    step = self.take(kind="dur") if self.peek()[0] == "dur" else ""
                    node = Sub(node, rng, step)
                else:
                    node = Rng(node, rng)
                self.take("]")
            elif value == "offset":
                self.take()
                sign = self.take() if self.peek()[1] == "-" else ""
                node = Offset(node, sign + self.take(kind="dur"))
            elif value == "@":
                self.take()
                if self.peek()[1] in ("start", "end"):
                    word = self.take()
                    self.take("(")
                    self.take(")")
                    node = At(node, f"{word}()")
                else:
                    sign = self.take() if self.peek()[1] in ("-", "+") else ""
                    node = At(node, sign + self.take(kind="num"))
            else:
                return node

    def primary(self) -> Node:
        kind, value = self.peek()
        if kind in ("num", "dur"):
            return Num(self.take())
        if kind == "str":
            return Str(self.take())
        if value == "(":
            self.take()
            inner = self.expr(1)
            self.take(")")
            return Paren(inner)
        if value == "{":
            return Sel(None, self.matchers())
        if kind != "ident":
            raise PromQLError(f"unexpected {value!r} in {self.text!r}")
        self.take()
        after = self.peek()[1]
        if value in AGGREGATORS and after in ("(", "by", "without"):
            grouping = self.grouping()
            args = self.args()
            grouping = grouping or self.grouping()
            return Agg(value, args, grouping)
        if after == "(":
            return Call(value, self.args())
        if value.lower() in ("inf", "nan"):
            return Num(value)
        return Sel(value, self.matchers() if after == "{" else ())

    def grouping(self) -> str:
        if self.peek()[1] in ("by", "without"):
            word = self.take()
            return f"{word} {self.labels()}"
        return ""

    def labels(self) -> str:
        self.take("(")
        names: list[str] = []
        while self.peek()[1] != ")":
            names.append(self.take(kind="ident"))
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return f"({', '.join(names)})"

    def args(self) -> tuple[Node, ...]:
        self.take("(")
        args: list[Node] = []
        while self.peek()[1] != ")":
            args.append(self.expr(1))
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return tuple(args)

    def matchers(self) -> tuple[tuple[str, str, str], ...]:
        self.take("{")
        out: list[tuple[str, str, str]] = []
        while self.peek()[1] != "}":
            label = self.take(kind="ident")
            op = self.take(kind="op")
            if op not in ("=", "!=", "=~", "!~"):
                raise PromQLError(f"bad matcher operator {op!r} in {self.text!r}")
            out.append((label, op, self.take(kind="str")))
            if self.peek()[1] == ",":
                self.take()
        self.take("}")
        return tuple(out)


def parse(text: str) -> Node:
    return Parser(text).parse()


def render(node: Node) -> str:
    """PromQL text; every binary operand is parenthesised, so the tree's grouping is explicit."""
    match node:
        case Num(text) | Str(text):
            return text
        case Sel(name, matchers):
            inner = ", ".join(f"{label}{op}{value}" for label, op, value in matchers)
            return f"{name or ''}{{{inner}}}" if matchers or not name else name
        case Rng(expr, rng):
            return f"{render(expr)}[{rng}]"
        case Sub(expr, rng, step):
            return f"{render(expr)}[{rng}:{step}]"
        case Offset(expr, offset):
            return f"{render(expr)} offset {offset}"
        case At(expr, at):
            return f"{render(expr)} @ {at}"
        case Paren(expr):
            return f"({render(expr)})"
        case Unary(op, expr):
            return f"{op}({render(expr)})"
        case Call(func, args):
            return f"{func}({', '.join(render(a) for a in args)})"
        case Agg(op, args, grouping):
            by = f" {grouping} " if grouping else ""
            return f"{op}{by}({', '.join(render(a) for a in args)})"
        case Bin(op, lhs, rhs, is_bool, matching, group):
            mods = " ".join(m for m in ("bool" if is_bool else "", matching, group) if m)
            return f"({render(lhs)}) {op}{' ' + mods if mods else ''} ({render(rhs)})"
    raise TypeError(node)


def transform(node: Node, fn: Callable[[Node], Node | None]) -> Node:
    """Bottom-up rewrite: `fn` returns a replacement or None (keep, after rewriting children)."""
    match node:
        case Rng() | Sub() | Offset() | At() | Paren() | Unary():
            node = replace(node, expr=transform(node.expr, fn))
        case Call() | Agg():
            node = replace(node, args=tuple(transform(a, fn) for a in node.args))
        case Bin():
            node = replace(node, lhs=transform(node.lhs, fn), rhs=transform(node.rhs, fn))
    new = fn(node)
    return node if new is None else new


def selectors(node: Node, optional: bool = False) -> Iterator[tuple[Sel, bool]]:
    """Every vector selector, with True when it sits in an `or` alternative or an `unless`
    exclusion (legitimately empty as long as the expression's signals have data)."""
    match node:
        case Sel():
            yield node, optional
        case Rng() | Sub() | Offset() | At() | Paren() | Unary():
            yield from selectors(node.expr, optional)
        case Call() | Agg():
            for arg in node.args:
                yield from selectors(arg, optional)
        case Bin():
            yield from selectors(node.lhs, optional or node.op == "or")
            yield from selectors(node.rhs, optional or node.op in ("or", "unless"))


def reads_metrics(node: Node) -> bool:
    return any(True for _ in selectors(node))


def with_run(node: Node, run: str) -> Node:
    """Adds `e2e_run="<run>"` to every vector selector."""
    matcher = (RUN_LABEL, "=", json.dumps(run))
    return transform(node, lambda n: Sel(n.name, (*n.matchers, matcher))
                     if isinstance(n, Sel) else None)


def strip(node: Node) -> Node:
    """The data an expression reads, without its thresholds: non-empty iff every input the
    expression needs has series (for `or`: at least one alternative that reads metrics).

    comparison (not `bool`) -> its metric-reading operand, or `lhs and rhs` when both read
    metrics; `unless` -> its left side; `or` -> the union of alternatives that read metrics;
    offsets dropped; `f(expr[range:step])` -> `expr`; `absent(x)` -> `x`.
    """
    match node:
        case Bin(op, lhs, rhs, is_bool, matching, _) if (op in COMPARISONS and not is_bool) \
                or op in ("and", "or", "unless"):
            left, right = reads_metrics(lhs), reads_metrics(rhs)
            if op == "unless" or (left and not right):
                return strip(lhs)
            if right and not left:
                return strip(rhs)
            if op == "or":
                return Bin("or", strip(lhs), strip(rhs))
            return Bin("and", strip(lhs), strip(rhs), matching=matching)
        case Bin():
            return replace(node, lhs=strip(node.lhs), rhs=strip(node.rhs))
        case Offset(expr) | At(expr):
            return strip(expr)
        case Call("absent" | "absent_over_time", (arg,)):
            return strip(arg.expr if isinstance(arg, Rng) else arg)
        case Call(_, args) if any(isinstance(_unwrap(a), Sub) for a in args):
            (sub,) = [_unwrap(a) for a in args if isinstance(_unwrap(a), Sub)]
            return strip(sub.expr)
        case Call() | Agg():
            return replace(node, args=tuple(strip(a) for a in node.args))
        case Rng(expr, rng):
            return Rng(strip(expr), rng)
        case Paren(expr) | Unary(_, expr):
            return replace(node, expr=strip(expr))
    return node


def _unwrap(node: Node) -> Node:
    while isinstance(node, Offset | At):
        node = node.expr
    return node


def signals(node: Node) -> list[tuple[str, Node]]:
    """(what, expression) pairs that must all return data for the alert to be able to fire."""
    match node:
        case Paren(expr):
            return signals(expr)
        case Bin("and", lhs, rhs):
            return signals(lhs) + signals(rhs)
        case Bin("unless", lhs, _):
            return signals(lhs)
        case Bin(op, lhs, rhs, False) if op in COMPARISONS:
            out = [(f"{side} of `{op}`", strip(part)) for side, part in
                   (("left side", lhs), ("right side", rhs)) if reads_metrics(part)]
            if len(out) == 2:
                out.append((f"both sides of `{op}`, matched", strip(node)))
            return out
    return [("expression", strip(node))] if reads_metrics(node) else []


# ---------------------------------------------------------------------------------------------
# Prometheus HTTP API


class Prometheus:
    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self._cache: dict[tuple[str, float], tuple[dict[str, Any] | None, str | None]] = {}

    def call(self, path: str, params: dict[str, str] | None = None, method: str = "GET",
             timeout: float = 15.0) -> Any:
        data = urllib.parse.urlencode(params or {}).encode()
        url = f"{self.base}{path}"
        if method == "GET" and data:
            url, data = f"{url}?{data.decode()}", b""
        request = urllib.request.Request(url, data=data or None, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:   # 400/422/503 carry a JSON error body
            body = exc.read()
            if not body.startswith(b"{"):
                return {"status": "error", "error": f"HTTP {exc.code}: {body[:200]!r}"}
        return json.loads(body) if body.startswith((b"{", b"[")) else body.decode()

    def query(self, expr: str, at: float) -> tuple[dict[str, Any] | None, str | None]:
        """(data, None) or (None, error) of an instant query at `at` (cached per time);
        data is {"resultType": ..., "result": ...}."""
        key = (expr, at)
        if key not in self._cache:
            reply = self.call("/api/v1/query", {"query": expr, "time": f"{at:.3f}"}, "POST")
            if not isinstance(reply, dict) or reply.get("status") != "success":
                error = (f"{reply.get('errorType', '')}: {reply.get('error')}"
                         if isinstance(reply, dict) else repr(reply))
                self._cache[key] = (None, error)
            else:
                self._cache[key] = (reply["data"], None)
        return self._cache[key]

    def nonempty(self, expr: str, at: float) -> str | None:
        """None when `expr` evaluates to a non-empty result, else why not."""
        data, error = self.query(expr, at)
        if data is None:
            return f"error {error}"
        if data["resultType"] in ("vector", "matrix") and not data["result"]:
            return "empty result"
        return None


def _normal(data: dict[str, Any] | None) -> Any:
    if data is not None and data["resultType"] in ("vector", "matrix"):
        return sorted((sorted(r["metric"].items()), r.get("value", r.get("values")))
                      for r in data["result"])
    return data and data["result"]


# ---------------------------------------------------------------------------------------------
# the run: simulated events -> EmbeddedRunner -> Metrics -> /metrics -> Prometheus


@dataclass
class Run:
    run_id: str
    port: int
    customers: set[str]
    target_file: Path
    feeder: Feeder
    metrics_url: str = ""
    pair: WorkerPair | None = None


@dataclass
class Feeder:
    runner: EmbeddedRunner
    lines: list[bytes]
    per_batch: int
    stop: threading.Event = field(default_factory=threading.Event)
    fed: int = 0
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="e2e-feeder", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        next_at = time.monotonic()
        try:
            while self.fed < len(self.lines):
                next_at += BATCH_EVERY_S
                if self.stop.wait(max(0.0, next_at - time.monotonic())):
                    return
                batch = self.lines[self.fed:self.fed + self.per_batch]
                self.runner.feed(batch)
                self.fed += len(batch)
        except BaseException as exc:   # surfaced by the test
            self.error = exc


def _line(record: dict[str, Any]) -> bytes:
    return record[RAW_KEY].encode() if RAW_KEY in record else orjson.dumps(record)


@dataclass
class WorkerPair:
    """Two real `valeur-monitor worker` processes (one group) fed the same simulated events
    through Kafka, scraped under the same run label as the embedded run."""

    workers: list[Worker]
    redis_url: str
    bootstrap: str
    events: str
    group: str
    lines: list[bytes]
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def feed(self) -> None:
        """Half of the events at once, the rest at a steady pace (like the embedded feeder)."""
        from kafka import KafkaProducer

        from valeur_monitor.kafka.produce import records

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20)
        try:
            keyed = list(records(self.lines))
            warm = int(len(keyed) * WARMUP_SHARE)
            step = max(1, round((len(keyed) - warm) * BATCH_EVERY_S / FEED_SECONDS))
            next_at = time.monotonic()
            while self.sent < len(keyed):
                chunk = keyed[self.sent:warm] if self.sent < warm else \
                    keyed[self.sent:self.sent + step]
                for key, value in chunk:
                    producer.send(self.events, key=key, value=value)
                producer.flush()
                self.sent += len(chunk)
                next_at += BATCH_EVERY_S
                if self.stop.wait(max(0.0, next_at - time.monotonic())):
                    return
        except BaseException as exc:   # surfaced by the test
            self.error = exc
        finally:
            producer.close()

    @property
    def targets(self) -> list[str]:
        return [f"127.0.0.1:{w.port}" for w in self.workers]


@pytest.fixture
def worker_pair(kafka_bootstrap: str, kafka_topic: Any, redis_db_url: str,
                tmp_path: Path) -> Iterator[WorkerPair]:
    events = kafka_topic(prefix="e2e-events", partitions=WORKER_PARTITIONS)
    names = {"VALEUR_TOPICS__EVENTS": events,
             "VALEUR_TOPICS__SCORE_UPDATES": kafka_topic(
                 prefix="e2e-scores", partitions=WORKER_PARTITIONS,
                 configs={"cleanup.policy": "compact"}),
             "VALEUR_TOPICS__CUSTOMER_ALERTS": kafka_topic(prefix="e2e-alerts", partitions=1),
             "VALEUR_TOPICS__DEAD_LETTERS": kafka_topic(prefix="e2e-dead", partitions=1),
             "VALEUR_TOPICS__LEDGER": kafka_topic(prefix="e2e-ledger",
                                                  partitions=WORKER_PARTITIONS)}
    group = f"e2e-{events.rsplit('-', 1)[1]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env.update(names)
    env.update({"VALEUR_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
                "VALEUR_REDIS_URL": redis_db_url, "VALEUR_RULES": str(ROOT / "rules"),
                "VALEUR_WORKER__APP_ID": group, "VALEUR_WORKER__CLOCK": "event",
                "VALEUR_WORKER__SESSION_TIMEOUT": "10", "VALEUR_WORKER__LOGLEVEL": "warning",
                "PYTHONUNBUFFERED": "1"})
    workers = [Worker(f"w{i}", {**env, "VALEUR_WORKER__DATADIR": str(tmp_path / f"w{i}")},
                      tmp_path / f"w{i}.log") for i in range(2)]
    pair = WorkerPair(workers, redis_db_url, kafka_bootstrap, events, group,
                      [_line(r) for r in simulate(SIMULATION)])
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready(120)
        pair.thread = threading.Thread(target=pair.feed, name="e2e-producer", daemon=True)
        pair.thread.start()
        yield pair
    finally:
        pair.stop.set()
        if pair.thread is not None:
            pair.thread.join(timeout=30)
        for worker in workers:
            worker.stop(timeout=20)


@pytest.fixture
def embedded_run(prometheus_url: str, worker_pair: WorkerPair) -> Iterator[Run]:
    records = list(simulate(SIMULATION))
    customers = {r["customer"] for r in records if isinstance(r.get("customer"), str)}
    lines = [_line(r) for r in records]
    rules = load_rules([str(ROOT / "rules")])
    metrics = metrics_for(rules)
    promises = OpenPromises()
    runner = EmbeddedRunner(rules, MemoryStore(), on_batch=[
        lambda result, seconds: record_batch(metrics, result, seconds, promises)])
    warm = int(len(lines) * WARMUP_SHARE)
    for start in range(0, warm, 1000):
        runner.feed(lines[start:min(start + 1000, warm)])
    per_batch = max(1, round((len(lines) - warm) * BATCH_EVERY_S / FEED_SECONDS))
    feeder = Feeder(runner, lines, per_batch, fed=warm)
    run_id = uuid.uuid4().hex[:16]
    TARGETS_DIR.mkdir(parents=True, exist_ok=True)
    target = TARGETS_DIR / f"e2e-{run_id}.json"
    server, server_thread = serve(metrics, "127.0.0.1", 0)
    port = server.server_port
    run = Run(run_id, port, customers, target, feeder, f"http://127.0.0.1:{port}/metrics",
              worker_pair)
    try:
        feeder.start()
        # the embedded run and the two workers: one run label, three instances
        spec = [{"targets": [f"127.0.0.1:{port}", *worker_pair.targets],
                 "labels": {"job": JOB, RUN_LABEL: run_id}}]
        partial = target.with_suffix(".tmp")   # not matched by the *.json glob
        partial.write_text(json.dumps(spec), encoding="utf-8")
        os.replace(partial, target)
        yield run
    finally:
        target.unlink(missing_ok=True)
        target.with_suffix(".tmp").unlink(missing_ok=True)
        feeder.stop.set()
        if feeder.thread is not None:
            feeder.thread.join(timeout=30)
        server.shutdown()
        server.server_close()
        server_thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------
# the checks


def substitute(expr: str) -> str:
    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}", r"$\1", expr)   # ${var} and ${var:fmt} -> $var
    for var, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    if "$" in expr:
        raise AssertionError(f"unknown Grafana variable in {expr!r}")
    return expr


def dashboard_targets() -> list[tuple[str, str]]:
    """(where, expr) of every panel target, nested panels of collapsed rows included."""
    out: list[tuple[str, str]] = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        stack = list(board.get("panels", []))
        while stack:
            panel = stack.pop(0)
            stack.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    where = (f"dashboard {board['uid']} panel {panel['id']} "
                             f"{panel.get('title', '')!r} ref {target.get('refId')}")
                    out.append((where, target["expr"]))
    return out


def dashboard_variables() -> list[tuple[str, str, str]]:
    """(where, metric, label) of every `label_values(metric, label)` template variable."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        for var in board.get("templating", {}).get("list", []):
            query = var.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            if var.get("type") == "query" and isinstance(text, str):
                m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", text)
                assert m, f"dashboard {board['uid']} variable {var['name']}: {text!r}"
                out.append((f"dashboard {board['uid']} variable ${var['name']}", *m.groups()))
    return out


def rule_entries(files: list[Path], kind: str) -> list[tuple[str, str, str]]:
    """(group, name, expr) of every `alert` or `record` rule of the files."""
    out = []
    for path in files:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if kind in rule:
                    out.append((group["name"], rule[kind], rule["expr"]))
    return out


class Checker:
    def __init__(self, prom: Prometheus, run_id: str) -> None:
        self.prom = prom
        self.run_id = run_id
        self.run = Sel(None, ((RUN_LABEL, "=", json.dumps(run_id)),))

    def expression(self, where: str, expr: str, at: float, *, want_result: bool) -> list[str]:
        """Problems of one expression: parse fidelity, errors, emptiness for this run."""
        problems: list[str] = []
        original, error = self.prom.query(expr, at)
        if error is not None:
            return [f"{where}: evaluation error {error}\n    {expr}"]
        try:
            tree = parse(expr)
        except PromQLError as exc:
            return [f"{where}: the test's PromQL parser failed: {exc}"]
        mine, error = self.prom.query(render(tree), at)
        if error is not None or _normal(mine) != _normal(original):
            return [f"{where}: the test's parser misreads the expression (re-rendered: "
                    f"{render(tree)}; {error or 'different result'})"]
        ours = with_run(tree, self.run_id)
        if want_result:
            why = self.prom.nonempty(render(ours), at)
            if why:
                problems.append(f"{where}: {why} for this run\n    {render(ours)}")
        else:
            for what, signal in signals(ours):
                why = self.prom.nonempty(render(signal), at)
                if why:
                    problems.append(f"{where}: {what}: {why} for this run "
                                    f"(threshold stripped)\n    {render(signal)}")
        problems += self.selectors(where, ours, at)
        return problems

    def selectors(self, where: str, tree: Node, at: float) -> list[str]:
        """Each selector's metric and each label matcher alone match series of this run;
        selectors outside `or`/`unless` alternatives also match as a whole."""
        problems: list[str] = []
        seen: set[tuple[Sel, bool]] = set()
        for sel, optional in selectors(tree):
            if (sel, optional) in seen:
                continue
            seen.add((sel, optional))
            own = tuple(m for m in sel.matchers if m[0] != RUN_LABEL)
            name = sel.name or ""
            base = Sel(sel.name, self.run.matchers)
            if name and self.prom.nonempty(f"group({render(base)})", at):
                problems.append(f"{where}: metric {name} has no series from this run")
                continue
            bad = [m for m in own
                   if self.prom.nonempty(f"group({render(Sel(sel.name, (m, *base.matchers)))})",
                                         at)]
            for label, op, value in bad:
                problems.append(f"{where}: no series {name}{{{label}{op}{value}}} from this run")
            if not bad and not optional and self.prom.nonempty(f"group({render(sel)})", at):
                problems.append(f"{where}: no series {render(sel)} (all matchers together)")
        return problems


def rules_api(prom: Prometheus) -> dict[tuple[str, str], dict[str, Any]]:
    reply = prom.call("/api/v1/rules")
    assert reply.get("status") == "success", reply
    return {(g["name"], r["name"]): {**r, "group": g} for g in reply["data"]["groups"]
            for r in g["rules"]}


def rule_health(loaded: dict[tuple[str, str], dict[str, Any]],
                expected: list[tuple[str, str, str]]) -> list[str]:
    problems = []
    for group, name, _ in expected:
        rule = loaded.get((group, name))
        if rule is None:
            problems.append(f"rule {group}/{name}: not loaded by Prometheus")
        elif rule.get("health") != "ok" or rule.get("lastError"):
            problems.append(f"rule {group}/{name}: health {rule.get('health')!r}, "
                            f"last error {rule.get('lastError')!r}")
    return problems


def wait_for_target(prom: Prometheus, run_id: str, deadline: float) -> dict[str, Any]:
    last: dict[str, Any] | None = None
    while True:
        reply = prom.call("/api/v1/targets", {"state": "active"})
        for target in reply.get("data", {}).get("activeTargets", []):
            if target.get("labels", {}).get(RUN_LABEL) == run_id:
                last = target
                if target.get("health") == "up":
                    return target
        if time.monotonic() > deadline:
            pytest.fail(f"Prometheus did not report the target up within {TARGET_UP_TIMEOUT_S}s; "
                        f"last state: {last!r}", pytrace=False)
        time.sleep(0.5)


def wait_for_scrapes(prom: Prometheus, run_id: str, deadline: float) -> None:
    expr = f'sum_over_time(up{{{RUN_LABEL}="{run_id}"}}[{RATE_INTERVAL}])'
    while True:
        data, _ = prom.query(expr, time.time() - INGEST_SLACK_S)
        result = data["result"] if data else None
        if result and float(result[0]["value"][1]) >= MIN_SCRAPES:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"fewer than {MIN_SCRAPES} successful scrapes in {RATE_INTERVAL}: "
                        f"{expr} = {result!r}", pytrace=False)
        time.sleep(0.5)


def check_exposition(run: Run, promtool: str) -> list[str]:
    with urllib.request.urlopen(run.metrics_url, timeout=10) as response:
        text = response.read().decode()
    problems = []
    leaked = sorted(c for c in run.customers if c in text)
    if leaked:
        problems.append(f"/metrics exposes {len(leaked)} customer id(s), e.g. {leaked[:5]}")
    if not any(line.startswith("valeur_events_received_total{") for line in text.splitlines()):
        problems.append("/metrics has no valeur_events_received_total sample")
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60, check=False)
    if proc.returncode != 0 or proc.stdout.strip() or proc.stderr.strip():
        problems.append(f"promtool check metrics (exit {proc.returncode}):\n"
                        f"{proc.stdout}{proc.stderr}")
    return problems


def exposition_problems(url: str, customers: set[str], promtool: str) -> list[str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    problems = []
    leaked = sorted(c for c in customers if c in text)
    if leaked:
        problems.append(f"{url} exposes {len(leaked)} customer id(s), e.g. {leaked[:5]}")
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60, check=False)
    if proc.returncode != 0 or proc.stdout.strip() or proc.stderr.strip():
        problems.append(f"promtool check metrics {url} (exit {proc.returncode}):\n"
                        f"{proc.stdout}{proc.stderr}")
    return problems


def gauge_values(text: str, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels[label]] = sample.value
    return out


def check_workers(run: Run, prom: Prometheus, promtool: str) -> list[str]:
    """The two workers: consumer lag of every partition scraped; once the feed stops and the
    backlog is consumed, both export exactly the store-wide open promises and score bands
    (read from Redis at scrape time: no double count, whatever the rebalances)."""
    from valeur_monitor.metrics import DEFAULT_BAND_EDGES
    from valeur_monitor.store.census import census_for
    from valeur_monitor.store.redis import RedisStore

    pair = run.pair
    assert pair is not None
    problems: list[str] = []
    at = time.time() - INGEST_SLACK_S
    lag = f'valeur_consumer_lag_records{{{RUN_LABEL}="{run.run_id}"}}'
    data, error = prom.query(f"count by (instance) ({lag})", at)
    instances = {r["metric"]["instance"] for r in (data or {}).get("result", [])}
    if error or instances != set(pair.targets):
        problems.append(f"consumer lag scraped from {sorted(instances)}, expected the workers "
                        f"{pair.targets} ({error})")
    data, error = prom.query(f"count(count by (topic, partition) ({lag}))", at)
    covered = int(float(data["result"][0]["value"][1])) if data and data["result"] else 0
    if covered != WORKER_PARTITIONS:
        problems.append(f"consumer lag covers {covered} partitions, not {WORKER_PARTITIONS}")
    for url in (f"http://{t}/metrics" for t in pair.targets):
        problems += exposition_problems(url, run.customers, promtool)

    pair.stop.set()
    if pair.thread is not None:
        pair.thread.join(timeout=60)
    if pair.error is not None:
        return [*problems, f"the worker feed failed: {pair.error!r}"]

    def caught_up() -> bool:
        for worker in pair.workers:
            worker.check_alive()
        texts = [w.get("/metrics")[1] for w in pair.workers]
        lags = [gauge_values(t, "valeur_consumer_lag_records", "partition") for t in texts
                if isinstance(t, str)]
        owned = [p for part in lags for p in part]
        return sorted(owned) == [str(p) for p in range(WORKER_PARTITIONS)] and \
            all(v == 0 for part in lags for v in part.values())

    wait_for("the workers to consume everything fed", caught_up, 120, 0.5)
    store = RedisStore.from_url(pair.redis_url)
    census = census_for(store)

    def exported() -> list[tuple[dict[str, float], dict[str, float]]]:
        out = []
        for worker in pair.workers:
            text = worker.get("/metrics")[1]
            assert isinstance(text, str)
            opened = {r: n for r, n in gauge_values(text, "valeur_open_promises", "rule").items()
                      if n}
            out.append((opened, gauge_values(text, "valeur_customers", "band")))
        return out

    def agree() -> bool:
        want = ({r: float(n) for r, n in census.open_promises().items() if n},
                {b: float(n) for b, n in census.bands(DEFAULT_BAND_EDGES).items()})
        return all(got == want for got in exported())

    try:
        wait_for("both workers to export the store's open promises and bands", agree, 30, 1.0)
    except AssertionError as exc:
        problems.append(f"{exc}; store: {census.open_promises()} "
                        f"{census.bands(DEFAULT_BAND_EDGES)}; workers: {exported()}")
    bands = census.bands(DEFAULT_BAND_EDGES)
    if sum(bands.values()) == 0 or not census.open_promises():
        problems.append(f"the workers' store is empty: {bands}")
    store.close()
    return problems


def test_dashboards_alerts_and_recording_rules_work_on_a_scraped_embedded_run(
        embedded_run: Run, prometheus_url: str, promtool: str) -> None:
    began = time.monotonic()
    run = embedded_run
    prom = Prometheus(prometheus_url)
    reload = prom.call("/-/reload", method="POST")   # make sure the current rule files are used
    assert not isinstance(reload, dict), f"POST /-/reload failed: {reload}"
    panels, variables = dashboard_targets(), dashboard_variables()
    alerts = rule_entries(ALERT_FILES, "alert")
    records = rule_entries(RECORDING_FILES, "record")
    assert panels and alerts and records, "no dashboards, alerts or recording rules found"

    wait_for_target(prom, run.run_id, began + TARGET_UP_TIMEOUT_S)
    up_at = time.monotonic()
    wait_for_scrapes(prom, run.run_id, up_at + CHECKS_TIMEOUT_S)
    ready = time.monotonic()
    checker = Checker(prom, run.run_id)

    # Panels, variables, alert and recording expressions: retried until they all pass (series
    # that first appear late need two samples in a rate window) or the deadline.
    deadline = up_at + CHECKS_TIMEOUT_S
    while True:
        at = time.time() - INGEST_SLACK_S
        problems: list[str] = []
        for where, expr in panels:
            problems += checker.expression(where, substitute(expr), at, want_result=True)
        for where, metric, label in variables:
            reply = prom.call(f"/api/v1/label/{label}/values",
                              {"match[]": render(with_run(parse(metric), run.run_id)),
                               "start": f"{at - 60:.3f}", "end": f"{at:.3f}"})
            if reply.get("status") != "success" or not reply.get("data"):
                problems.append(f"{where}: label_values({metric}, {label}) is empty: {reply}")
        for group, name, expr in alerts:
            problems += checker.expression(f"alert {group}/{name}", expr, at, want_result=False)
        for group, name, expr in records:
            problems += checker.expression(f"recording rule {group}/{name}", expr, at,
                                           want_result=False)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(SCRAPE_INTERVAL_S)
    checks_done = time.monotonic()

    # Rule health and recorded series. A group evaluates every `interval` (alerts 2 s, recording
    # 30 s and 1 min) at a fixed phase; until its first evaluation a rule's health is "unknown"
    # (fresh Prometheus) and a record may have no series yet (no data in its 1 h window): wait,
    # bounded by one interval of the slowest group after this run's data was scraped.
    waited: list[str] = []
    while True:
        loaded = rules_api(prom)
        intervals = [float(loaded[(g, n)]["group"]["interval"]) for g, n, _ in alerts + records
                     if (g, n) in loaded]
        rules_deadline = max(deadline, ready + max(intervals, default=60.0) + RECORDING_SLACK_S)
        later = rule_health(loaded, alerts + records)
        for group, name, _ in records:
            why = prom.nonempty(name, time.time())
            if why:
                later.append(f"recording rule {group}/{name}: {why} for `{name}`")
        if not later or time.monotonic() > rules_deadline:
            break
        waited = waited or later
        time.sleep(SCRAPE_INTERVAL_S)
    problems += later
    rules_done = time.monotonic()

    problems += check_exposition(run, promtool)
    problems += check_workers(run, prom, promtool)
    if run.feeder.error is not None:
        problems.append(f"the feeder thread failed: {run.feeder.error!r}")
    elapsed = time.monotonic() - began
    summary = (f"{len(panels)} panel queries, {len(variables)} variables, {len(alerts)} alerts, "
               f"{len(records)} recording rules; target up after {up_at - began:.1f}s, queries "
               f"checked after {checks_done - began:.1f}s, rules after {rules_done - began:.1f}s"
               f", total {elapsed:.1f}s; "
               f"{run.feeder.fed} of {len(run.feeder.lines)} lines fed")
    print(summary)
    if waited:   # what phase 2 waited for (normal right after a Prometheus start)
        print(f"waited {rules_done - checks_done:.1f}s for:\n  " + "\n  ".join(waited))
    if problems:
        pytest.fail(f"{len(problems)} problem(s) ({summary}):\n- " + "\n- ".join(problems),
                    pytrace=False)


# ---------------------------------------------------------------------------------------------
# the parser's own checks (no server)


@pytest.mark.parametrize(("expr", "stripped"), [
    ("up == 0 or absent(up)", "(up) or (up)"),
    ("sum(x) >= 5", "sum(x)"),
    ("a > 3 * avg_over_time(sum by (t) (rate(a[1h]))[1d:10m] offset 1h)",
     "(a) and ((3) * (sum by (t) (rate(a[1h]))))"),
    ("(sum(rate(a[5m])) or vector(0)) - (b unless c)", "((sum(rate(a[5m])))) - ((b))"),
])
def test_strip_keeps_the_inputs_and_drops_the_thresholds(expr: str, stripped: str) -> None:
    assert render(strip(parse(expr))) == stripped


def test_parser_precedence_and_modifiers() -> None:
    tree = parse('a + b * c > bool on (x) group_left () d{l=~"v", m!="w",} or -e ^ 2')
    assert render(tree) == ('(((a) + ((b) * (c))) > bool on (x) group_left () (d{l=~"v", '
                            'm!="w"})) or (-((e) ^ (2)))')
    assert render(with_run(parse("sum by (a) (rate(m[5m] offset 1h))"), "r")) == \
        'sum by (a) (rate(m{e2e_run="r"}[5m] offset 1h))'
    assert [(s.name, o) for s, o in selectors(parse("a and b or c unless d"))] == \
        [("a", True), ("b", True), ("c", True), ("d", True)]
    assert [(s.name, o) for s, o in selectors(parse("a and (b unless c)"))] == \
        [("a", False), ("b", False), ("c", True)]
