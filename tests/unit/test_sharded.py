"""`run --workers N`: customers found without a full parse, outputs identical to one process."""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from valeur_monitor.cli.main import app
from valeur_monitor.cli.report import report_dict
from valeur_monitor.cli.run_cmd import run_files, state_as_of
from valeur_monitor.codec import decode
from valeur_monitor.engine.event import format_time, parse_time
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.errors import EventError
from valeur_monitor.runner.embedded import EmbeddedRunner, RunReport
from valeur_monitor.runner.inputs import open_input, read_batches
from valeur_monitor.runner.route import customer_key, owners, route
from valeur_monitor.runner.sharded import ShardedRunner, ShardError
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.sinks.files import DeadLetterWriter, LedgerWriter, ScoresWriter
from valeur_monitor.store.base import ScoreView
from valeur_monitor.store.memory import MemoryStore

names = st.text(alphabet=st.sampled_from('ab"\\é/ \u2028c'), min_size=0, max_size=6)
plain = st.text(alphabet="abc-0123", min_size=1, max_size=8)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    obj: dict[str, Any] = {"id": "e1", "type": "request.opened", "time": "2026-11-02T10:00:00Z"}
    if draw(st.booleans()):
        obj["customer"] = draw(st.one_of(plain, names, st.integers(-1000, 1000), st.none()))
    if draw(st.booleans()):
        obj["specversion"] = draw(st.sampled_from(["1.0", "0.3"]))
        obj["subject"] = draw(st.one_of(plain, names))
    if draw(st.booleans()):
        obj["data"] = {"customer": draw(plain), "note": draw(names)}
    items = list(obj.items())
    order = draw(st.permutations(range(len(items))))
    text = orjson.dumps({items[i][0]: items[i][1] for i in order})
    if draw(st.booleans()):
        text = text.replace(b'":', b'": ')  # spaced like other JSON writers
    return text


@settings(max_examples=300, deadline=None)
@given(records())
def test_the_router_finds_the_decoders_customer(line: bytes) -> None:
    try:
        event = decode(line)
    except EventError:
        return  # refused records may go to any shard: the same dead letter everywhere
    assert customer_key(line) == event.customer.encode()


def test_records_without_a_customer_go_to_shard_zero() -> None:
    assert route(b"not json", 4) == 0
    assert route(b'{"id": "x"}', 4) == 0
    assert route(b'{"customer": "\\ud800"}', 4) in range(4)  # a lone surrogate: no crash
    assert 0 <= route(b'{"customer":"c-1"}', 4) < 4


def _outputs(tmp: Path, events: Path, workers: int) -> dict[str, bytes]:
    folder = tmp / f"w{workers}"
    folder.mkdir()
    paths = {name: folder / name for name in ("ledger.jsonl", "scores.csv", "dead.jsonl")}
    report = run_files([str(events)], rules=["rules"], ledger=str(paths["ledger.jsonl"]),
                       scores=str(paths["scores.csv"]), dead_letters=str(paths["dead.jsonl"]),
                       progress=False, workers=workers)
    assert report.processed > 0
    summary = (f"{report.received} {report.processed} {report.duplicates} {report.late} "
               f"{report.entries} {report.customers} {sorted(report.outcomes.items())} "
               f"{sorted(report.dead_letters.items())} {[v.customer for v in report.worst]}")
    return {"summary": summary.encode(), **{n: p.read_bytes() for n, p in paths.items()}}


def test_sharded_run_writes_the_same_files_as_one_process(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=11, customers=150, days=7, bad_rate=0.01,
                                         disorder=0.05))
    one = _outputs(tmp_path, events, 1)
    assert one["dead.jsonl"] and one["ledger.jsonl"].count(b"\n") > 1000
    for workers in (2, 3):
        assert _outputs(tmp_path, events, workers) == one


def test_without_score_views_the_report_is_the_same(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=13, customers=200, days=4))
    reports = [run_files([str(events)], rules=["rules"], dead_letters=str(tmp_path / f"d{w}"),
                         progress=False, workers=w) for w in (1, 2, 3)]
    one = reports[0]
    assert len(one.worst) == 10 and one.customers > 150
    for report in reports[1:]:
        assert report.worst == one.worst and report.customers == one.customers
        assert report.created == one.created and report.destroyed == one.destroyed
    runner = ShardedRunner(load_rules(["rules"]), 2)
    runner.run([str(events)], worst=3)
    assert [v.customer for v in runner.report.worst] == [v.customer for v in one.worst[:3]]
    with pytest.raises(ValueError, match="views=True"):
        runner.score_views()


def test_workers_need_the_memory_store(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"")
    with pytest.raises(ValueError, match="--workers"):
        run_files([str(events)], rules=["rules"], store_url="redis://localhost:1/0",
                  progress=False, workers=2)


# -- the same outputs as one process on hostile input, batch by batch -------------------------
DAY = 86_400_000
NOW = parse_time("2026-11-29T10:00:00Z")   # the wall clock of both runs (it shows in details)


def _line(**fields: Any) -> bytes:
    return orjson.dumps(fields) + b"\n"


def _hostile(path: Path, start: datetime) -> None:
    """Simulated events with, every few hundred lines: exact duplicates, events far too late,
    events beyond the future bound (and within it, pulling the bound along), bad lines whose
    time is the latest of their batch, records without a customer, CloudEvents by subject."""
    sim = path.with_suffix(".sim")
    write_jsonl(sim, SimulationConfig(seed=5, customers=40, days=6, start=start, bad_rate=0.02,
                                      disorder=0.05))
    lines = sim.read_bytes().splitlines(keepends=True)
    out: list[bytes] = []
    first = parse_time(orjson.loads(lines[0])["time"])
    for i, line in enumerate(lines):
        out.append(line)
        if i % 97 == 0:
            out.append(line)                                   # duplicate (same id)
        if i % 131 == 5:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            now = parse_time(record["time"]) if isinstance(record, dict) else first
            cust = f"cust-{i % 40:05d}"
            out += [
                _line(id=f"late-{i}", type="contact.inbound", time=format_time(now - 30 * DAY),
                      customer=cust, channel="phone", data={"topic": "outage"}),
                _line(id=f"far-{i}", type="contact.inbound", time=format_time(now + 60 * DAY),
                      customer=cust, channel="phone", data={"topic": "outage"}),
                _line(id=f"near-{i}", type="contact.inbound", time=format_time(now + 5 * DAY),
                      customer=cust, channel="phone", data={"topic": "outage"}),
                _line(id=f"bad-{i}", type="no.such.type", time=format_time(now + 6 * DAY),
                      customer=cust),
                _line(id=f"anon-{i}", type="contact.inbound", time=format_time(now)),
                _line(specversion="1.0", id=f"ce-{i}", source="tests", type="contact.inbound",
                      time=format_time(now), subject=cust, data={"topic": "outage"}),
                b"{not json\n",
            ]
    path.write_bytes(b"".join(out))


def _summary(report: RunReport) -> bytes:
    figures = report_dict(report, "dead.jsonl")
    figures.pop("seconds")
    return orjson.dumps(figures)


def _files(folder: Path, report: RunReport, views: list[ScoreView]) -> dict[str, bytes]:
    rules = load_rules(["rules"])
    state_as_of(report, rules)
    writer = ScoresWriter(folder / "scores.jsonl", rules.version, as_of=report.as_of,
                          half_life=rules.settings.half_life)
    writer.write(views)
    writer.close()
    return {"summary": _summary(report),
            **{p.name: p.read_bytes() for p in sorted(folder.iterdir())}}


def _one_process(events: Path, folder: Path, batch: int, until: int | None,
                 ledger_name: str) -> dict[str, bytes]:
    dead_name = "dead.csv" if ledger_name.endswith(".csv") else "dead.jsonl"
    folder.mkdir()
    rules = load_rules(["rules"])
    runner = EmbeddedRunner(rules, MemoryStore(ledger_cap=rules.settings.ledger_cap),
                            ledger=LedgerWriter(folder / ledger_name),
                            dead_letters=DeadLetterWriter(folder / dead_name))
    runner.processor.clock = lambda: NOW
    with open_input(str(events)) as stream:
        for lines in read_batches(stream, batch):
            runner.feed(lines)
    report = runner.finish(until=until)
    return _files(folder, report, runner.score_views())


def _sharded(inputs: list[str], folder: Path, workers: int, batch: int, until: int | None,
             ledger_name: str, start_method: str | None = None) -> dict[str, bytes]:
    dead_name = "dead.csv" if ledger_name.endswith(".csv") else "dead.jsonl"
    folder.mkdir()
    runner = ShardedRunner(load_rules(["rules"]), workers,
                           ledger=LedgerWriter(folder / ledger_name),
                           dead_letters=DeadLetterWriter(folder / dead_name), batch=batch,
                           start_method=start_method, views=True, clock=lambda: NOW)
    report = runner.run(inputs, until=until)
    return _files(folder, report, runner.score_views())


@pytest.mark.parametrize("start", ["past", "future"])
def test_shards_decide_what_one_process_decides_batch_by_batch(tmp_path: Path,
                                                               start: str) -> None:
    """Dead letters (bad, too late, beyond the future bound), duplicates, stream time and the
    timers that fire at the end: the same files and figures for 2 and 3 shards. "future" data
    lies beyond the wall clock, so the future bound is anchored on the data itself."""
    when = datetime(2026, 11, 2, tzinfo=UTC) + timedelta(days=0 if start == "past" else 400)
    events = tmp_path / "events.jsonl"
    _hostile(events, when)
    until = parse_time(format_time(int(when.timestamp() * 1000) + 40 * DAY))
    one = _one_process(events, tmp_path / "one", 300, until, "ledger.csv")
    report = orjson.loads(one["summary"])
    refused = report["dead_letters"]
    assert refused["future_time"] > 0 and refused["too_late"] > 0 and refused["unknown_type"]
    assert report["duplicates"] > 0 and b",broken," in one["ledger.csv"]  # timers fired
    for workers in (2, 3):
        assert _sharded([str(events)], tmp_path / f"w{workers}", workers, 300, until,
                        "ledger.csv") == one


def test_several_files_and_gzip_keep_their_batches(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    write_jsonl(first, SimulationConfig(seed=3, customers=30, days=3, bad_rate=0.01))
    write_jsonl(second, SimulationConfig(seed=4, customers=30, days=3,
                                         start=datetime(2026, 11, 5, tzinfo=UTC)))
    one = tmp_path / "one"
    one.mkdir()
    rules = load_rules(["rules"])
    runner = EmbeddedRunner(rules, MemoryStore(ledger_cap=rules.settings.ledger_cap),
                            ledger=LedgerWriter(one / "ledger.jsonl"),
                            dead_letters=DeadLetterWriter(one / "dead.jsonl"))
    for name in (first, second):
        with open_input(str(name)) as stream:
            for lines in read_batches(stream, 500):
                runner.feed(lines)
    report = runner.finish()
    expected = _files(one, report, runner.score_views())
    assert _sharded([str(first), str(second)], tmp_path / "two", 2, 500, None,
                    "ledger.jsonl") == expected


def test_a_spawned_shard_rebuilds_rules_and_catalogue(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=8, customers=20, days=2, bad_rate=0.02))
    one = _one_process(events, tmp_path / "one", 400, None, "ledger.jsonl")
    assert _sharded([str(events)], tmp_path / "spawn", 2, 400, None, "ledger.jsonl",
                    start_method="spawn") == one


def test_an_empty_input_gives_an_empty_run(tmp_path: Path) -> None:
    events = tmp_path / "empty.jsonl"
    events.write_bytes(b"")
    one = _one_process(events, tmp_path / "one", 100, None, "ledger.jsonl")
    assert _sharded([str(events)], tmp_path / "two", 2, 100, None, "ledger.jsonl") == one


def test_the_timeline_shows_every_shard_from_start_to_summary(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=9, customers=60, days=2))
    runner = ShardedRunner(load_rules(["rules"]), 3)
    runner.run([str(events)])
    steps = ["started", "ready", "loop", "first batch read", "last batch applied", "drained",
             "summary built"]
    for i in range(3):
        marks = [(what, t) for who, what, t in runner.timeline if who == f"shard {i}"]
        assert [what for what, _ in marks] == steps
        assert [t for _, t in marks] == sorted(t for _, t in marks)
    parent = [(what, t) for who, what, t in runner.timeline if who == "parent"]
    assert parent[0][0] == "run" and parent[-1][0] == "shards joined"
    first = min(t for _, _, t in runner.timeline)
    assert first == parent[0][1]   # the same clock in every process: the parent began first


def test_a_killed_shard_stops_the_run_with_an_error(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=9, customers=300, days=7))
    runner = ShardedRunner(load_rules(["rules"]), 2)

    def kill_first_shard() -> None:
        while not runner._procs:
            time.sleep(0.01)
        os.kill(runner._procs[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_first_shard)
    killer.start()
    with pytest.raises(ShardError, match="shard 0 stopped without a result"):
        runner.run([str(events)])
    killer.join()
    assert not runner._procs and runner._folder is None   # shards stopped, temp files gone


def test_a_shard_that_cannot_start_leaves_the_collector_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the parent freezes its objects before forking; a failed fork (EAGAIN: no process left)
    # must not leave them frozen, nor shards or temp files behind
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=9, customers=50, days=2))
    runner = ShardedRunner(load_rules(["rules"]), 2, start_method="fork")
    real = multiprocessing.get_context("fork").Process
    started = 0

    class OneFork(real):  # type: ignore[misc, valid-type]
        def start(self) -> None:
            nonlocal started
            if started:
                raise BlockingIOError(11, "Resource temporarily unavailable")
            started += 1
            super().start()

    monkeypatch.setattr(multiprocessing.get_context("fork"), "Process", OneFork)
    frozen = gc.get_freeze_count()
    with pytest.raises(BlockingIOError):
        runner.run([str(events)])
    # nothing of the run's left frozen (unfreezing also releases what another test froze)
    assert gc.get_freeze_count() <= frozen
    assert not runner._procs and runner._folder is None


def test_run_workers_reads_stdin_like_a_file(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=12, customers=40, days=3, bad_rate=0.02))
    outputs = []
    for name, workers, stdin in (("file", 1, None), ("stdin", 2, events.read_bytes())):
        folder = tmp_path / name
        folder.mkdir()
        args = ["run", "-" if stdin else str(events), "--workers", str(workers), "--json",
                "--rules", "rules", "--ledger", str(folder / "ledger.jsonl"),
                "--scores", str(folder / "scores.csv"),
                "--dead-letters", str(folder / "dead.jsonl")]
        done = CliRunner().invoke(app, args, input=stdin)
        assert done.exit_code == 0, done.output
        figures = orjson.loads(done.output)
        figures.pop("seconds")
        figures.pop("dead_letters_file")
        outputs.append((figures, *(p.read_bytes() for p in sorted(folder.iterdir()))))
    assert outputs[0] == outputs[1]
    assert CliRunner().invoke(app, ["run", str(events), "--workers", "2", "--follow"]
                              ).exit_code != 0


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), max_size=8), st.integers(1, 5))
def test_owners_is_route_of_every_line(lines: list[bytes], shards: int) -> None:
    assert owners(lines, shards) == [route(line, shards) for line in lines]


def test_sigterm_stops_the_shards_and_removes_their_files(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=9, customers=600, days=7))
    cli = Path(sys.executable).parent / "valeur-monitor"
    run = subprocess.Popen([str(cli), "run", str(events), "--workers", "2", "--no-progress",
                            "--rules", "rules", "--ledger", str(tmp_path / "out" / "l.jsonl")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: list[int] = []
    deadline = time.monotonic() + 60
    while len(children) < 2 and time.monotonic() < deadline:
        listed = Path(f"/proc/{run.pid}/task/{run.pid}/children")
        children = [int(p) for p in listed.read_text().split()] if listed.exists() else []
        time.sleep(0.05)
    assert len(children) == 2 and list((tmp_path / "out").glob(".valeur-shards-*"))
    run.send_signal(signal.SIGTERM)
    assert run.wait(60) == 128 + signal.SIGTERM
    assert not list((tmp_path / "out").glob(".valeur-shards-*"))
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text(
        ).split()[2]


_TEMPLATES: list[dict[str, Any]] = []


def _templates() -> list[dict[str, Any]]:
    """Real records of a small simulation (types and data the rules act on), as templates."""
    if not _TEMPLATES:
        with tempfile.TemporaryDirectory() as tmp:
            sim = Path(tmp) / "sim.jsonl"
            write_jsonl(sim, SimulationConfig(seed=2, customers=6, days=2))
            _TEMPLATES.extend(orjson.loads(line) for line in sim.read_bytes().splitlines())
    return _TEMPLATES


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """Events of five customers in any order, with duplicates, far-past, near- and far-future
    times, refused records (also holding a late time), records without a customer."""
    # before the wall clock (NOW: the clock bounds the future), or after it (the data does)
    base = parse_time(draw(st.sampled_from(["2026-11-02T09:00:00Z", "2027-06-01T09:00:00Z"])))
    templates = _templates()
    lines: list[bytes] = []
    for i in range(draw(st.integers(1, 70))):
        kind = draw(st.sampled_from(["ok"] * 6 + ["dup", "past", "near", "far", "bad", "anon"]))
        record = dict(templates[draw(st.integers(0, len(templates) - 1))])
        offset = {"past": -40 * DAY, "near": 9 * DAY, "far": 90 * DAY}.get(kind, 0)
        record.update(id=f"e{i}", customer=draw(st.sampled_from("abcde")),
                      time=format_time(base + offset + draw(st.integers(0, 3 * DAY))))
        if kind == "dup" and lines:
            lines.append(lines[draw(st.integers(0, len(lines) - 1))])
            continue
        if kind == "bad":
            record["type"] = "no.such.type"
        if kind == "anon":
            del record["customer"]
        lines.append(orjson.dumps(record) + b"\n")
    return lines


@settings(max_examples=25, deadline=None)
@given(streams(), st.integers(1, 9), st.integers(2, 3), st.booleans())
def test_any_stream_any_batching_gives_one_process_results(lines: list[bytes], batch: int,
                                                           workers: int, until: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        events.write_bytes(b"".join(lines))
        end = parse_time("2026-12-30T00:00:00Z") if until else None
        one = _one_process(events, Path(tmp) / "one", batch, end, "ledger.jsonl")
        assert _sharded([str(events)], Path(tmp) / "many", workers, batch, end,
                        "ledger.jsonl") == one


def test_a_broken_gzip_file_fails_the_run_with_the_reason(tmp_path: Path) -> None:
    broken = tmp_path / "events.jsonl.gz"
    broken.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    runner = ShardedRunner(load_rules(["rules"]), 2)
    # every shard reads the whole input, so whichever meets the broken stream first reports it
    with pytest.raises(ShardError, match=r"^shard [01] failed: (BadGzipFile|OSError|EOFError)"):
        runner.run([str(broken)])
    assert runner._folder is None


def test_many_workers_fit_in_the_open_file_limit(tmp_path: Path) -> None:
    import resource

    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=13, customers=30, days=1, bad_rate=0.02))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))   # 24 shards: 24 × 23 pipes
    try:
        one = _one_process(events, tmp_path / "one", 50, None, "ledger.jsonl")
        assert _sharded([str(events)], tmp_path / "many", 24, 50, None, "ledger.jsonl") == one
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_owners_remembers_customers_without_changing_its_answer() -> None:
    known: dict[str, int] = {}
    lines = [b'{"customer":"c-1"}', b'{"customer":"c-2"}', b'{"customer":"c-1","x":1}', b"{"]
    first = owners(lines, 3, known)
    assert set(known) == {"c-1", "c-2"} and owners(lines, 3, known) == first
    assert first == [route(line, 3) for line in lines]
