"""Bounded input: future event times, record size on files and pipes, original bytes kept."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from valeur_monitor.catalogue import active
from valeur_monitor.cli.main import app
from valeur_monitor.codec import Codec
from valeur_monitor.engine.event import parse_time
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.runner.inputs import LineSplitter, read_batches
from valeur_monitor.service import Processor
from valeur_monitor.simulate import SimulationConfig, simulate
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules([ROOT / "rules"])
DAY = 86_400_000


def _week(customers: int = 120) -> list[bytes]:
    config = SimulationConfig(seed=5, customers=customers, days=3)
    return [orjson.dumps(r) for r in simulate(config)]


def _run(lines: list[bytes], *, clock: int | None = None) -> tuple[list[str], list[tuple[str,
                                                                                         str]]]:
    """(ledger lines, dead letters as (reason, record)) of the lines in batches of 500."""
    processor = Processor(RULES, MemoryStore(), clock=(lambda: clock) if clock else None)
    ledger: list[str] = []
    dead: list[tuple[str, str]] = []
    for i in range(0, len(lines), 500):
        result = processor.process(lines[i:i + 500])
        ledger += [orjson.dumps(e.to_json()).decode() for e in result.entries]
        dead += [(d.reason, d.raw.decode()) for d in result.dead_letters]
    final = processor.advance_to(processor.max_event_time)
    ledger += [orjson.dumps(e.to_json()).decode() for e in final.entries]
    return sorted(ledger), dead


@pytest.mark.parametrize("clock", [None, parse_time("2026-11-29T00:00:00Z")])
def test_one_event_dated_2099_changes_nothing_else(clock: int | None) -> None:
    lines = _week()
    clean_ledger, clean_dead = _run(lines, clock=clock)
    assert not clean_dead
    poison = orjson.dumps({"id": "far", "type": "request.opened", "customer": "cust-00001",
                           "time": "2099-01-01T00:00:00Z", "ref": "r-far"})
    for at in (0, 7, len(lines) // 2):        # first record of a fresh stream, early, midway
        ledger, dead = _run([*lines[:at], poison, *lines[at:]], clock=clock)
        assert dead == [("future_time", poison.decode())], at
        assert ledger == clean_ledger, at     # no too_late, no watermark jump, same entries


def test_the_stored_watermark_is_not_poisoned() -> None:
    store = MemoryStore()
    processor = Processor(RULES, store, clock=None)
    lines = _week(20)
    processor.process(lines[:300])
    before = store.watermark()
    far = orjson.dumps({"id": "far", "type": "visit.no_show", "customer": "c",
                        "time": "2099-01-01T00:00:00Z"})
    result = processor.process([far])
    assert [d.reason for d in result.dead_letters] == ["future_time"]
    assert store.watermark() == before
    later = processor.process(lines[300:600])
    assert not later.dead_letters


def test_a_quiet_stream_still_moves_forward_in_steps() -> None:
    processor = Processor(RULES, MemoryStore(), clock=None, future_limit=DAY)
    day = [orjson.dumps({"id": f"e{i}", "type": "visit.completed", "customer": "c",
                         "time": f"2026-11-{2 + i:02d}T10:00:00Z"}) for i in range(5)]
    for line in day:   # one event a day: each is within a day of the last accepted one
        assert not processor.process([line]).dead_letters
    jump = orjson.dumps({"id": "j", "type": "visit.completed", "customer": "c",
                         "time": "2026-11-20T10:00:00Z"})
    assert [d.reason for d in processor.process([jump]).dead_letters] == ["future_time"]


def test_too_late_dead_letters_keep_the_original_bytes() -> None:
    processor = Processor(RULES, MemoryStore(), clock=None)
    processor.process([orjson.dumps({"id": "a", "type": "visit.completed", "customer": "c",
                                     "time": "2026-11-20T10:00:00Z"})])
    old = (b'{ "type":"visit.completed",  "id":"b", "customer":"c",'
           b' "time":"2026-11-02T10:00:00+01:00", "extra_spacing": null }')
    old = old.replace(b', "extra_spacing": null', b"")
    result = processor.process([old])
    assert [(d.reason, d.raw) for d in result.dead_letters] == [("too_late", old)]


def test_a_line_over_the_limit_is_never_held_whole() -> None:
    splitter = LineSplitter(1000)
    out: list[bytes] = []
    for _ in range(2000):                      # a 2 MB line, fed in 1 KiB chunks
        out += splitter.feed(b"x" * 1024)
        # 1002 bytes of the line, + 3 of room for a signature (BOM) the first line may start with
        assert sum(len(p) for p in splitter._parts) <= 1005
    out += splitter.feed(b'\n{"a": 1}\n')
    assert [len(line) for line in out] == [1003, 9]
    assert out[1] == b'{"a": 1}\n'


def test_oversize_lines_in_a_file_become_too_large(tmp_path: Path) -> None:
    good = orjson.dumps({"id": "g", "type": "visit.completed", "customer": "c",
                         "time": "2026-11-02T10:00:00Z"})
    data = b"\n".join([good.replace(b'"g"', b'"g1"'), b'{"pad": "' + b"y" * 5_000_000 + b'"}',
                       good.replace(b'"g"', b'"g2"')]) + b"\n"
    tracemalloc.start()
    batches = list(read_batches(io.BufferedReader(io.BytesIO(data)), 100, max_bytes=4096))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4_000_000   # the 5 MB line was never held (the input itself is not traced)
    lines = [line for batch in batches for line in batch]
    assert len(lines) == 3 and len(lines[1]) <= 4100
    processor = Processor(RULES, MemoryStore(), clock=None,
                          codec=Codec(active(), max_bytes=4096))   # the reader's limit
    result = processor.process(lines)
    assert [d.reason for d in result.dead_letters] == ["too_large"]
    drained = processor.advance_to(parse_time("2026-11-03T00:00:00Z"))
    assert sorted(e.id for e in [*result.events, *drained.events]) == ["g1", "g2"]


def test_run_reads_a_huge_line_from_a_pipe(tmp_path: Path) -> None:
    """`run -` on a pipe: a 30 MB line is dead-lettered too_large, the run goes on (exit 0)."""
    good = orjson.dumps({"id": "g", "type": "survey.answered", "customer": "c",
                         "time": "2026-11-02T10:00:00Z", "data": {"score": 5}})
    dead, errors = tmp_path / "dead.jsonl", tmp_path / "stderr.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "valeur_monitor.cli.main", "run", "-", "--no-progress",
         "--rules", str(ROOT / "rules"), "--dead-letters", str(dead),
         "--ledger", str(tmp_path / "ledger.jsonl")],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors.open("wb"), cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdin is not None

    def feed() -> None:
        assert proc.stdin is not None
        proc.stdin.write(b'{"id": "big", "data": "')
        for _ in range(30):
            proc.stdin.write(b"z" * 1_000_000)
        proc.stdin.write(b'"}\n' + good + b"\n")
        proc.stdin.close()

    writer = threading.Thread(target=feed)
    writer.start()
    writer.join(timeout=300)
    assert proc.wait(timeout=300) == 0, errors.read_text()
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [r["reason"] for r in letters] == ["too_large"]
    assert b"happy-survey" in (tmp_path / "ledger.jsonl").read_bytes()


POISON = [
    b'{"id":"p1","type":"request.opened","time":"2026-11-02T10:00:00Z","customer":"h8\xff\xfe"}',
    b'{"data":' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"id":"p2","type":"request.status_changed","time":"2026-11-02T10:00:00Z",'
    b'"customer":"c","data":{"status":[]}}',
    b'{"id":"p3","type":"request.opened","time":"0001-01-01T00:00:00+14:00","customer":"c"}',
    b'{"id":"p4","type":"request.opened","time":"9999-12-31T23:59:59Z","customer":"c"}',
    b'{"id":"p5","type":"request.opened","time":"2026-11-02T10:00:00Z","customer":"c",'
    b'"data":{"n":123456789012345678901234567890}}',
    b'{"id":"p6","type":"survey.answered","time":"2026-11-02T10:00:00Z","customer":"c",'
    b'"data":{"score":1e999}}',
]


def test_run_survives_every_poison_record_of_the_issue(tmp_path: Path) -> None:
    good = [orjson.dumps({"id": f"g{i}", "type": "survey.answered", "customer": f"c{i}",
                          "time": f"2026-11-02T1{i}:00:00Z", "data": {"score": 5}})
            for i in range(3)]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join([good[0], *POISON, good[1], good[2]]) + b"\n")
    dead = tmp_path / "dead.jsonl"
    result = CliRunner().invoke(app, ["run", str(src), "--rules", str(ROOT / "rules"),
                                      "--dead-letters", str(dead), "--no-progress"])
    assert result.exit_code == 0, result.output
    reasons = [orjson.loads(line)["reason"] for line in dead.read_bytes().splitlines()]
    assert reasons == ["bad_encoding", "too_deep", "invalid_data", "bad_time", "bad_time",
                       "bad_number", "bad_number"]
    assert "3 events applied" in result.output or "3 events" in result.output


def _split_by_hand(data: bytes, limit: int) -> list[bytes]:
    """What `LineSplitter` gives, written plainly: non-blank lines (a first signature dropped),
    each cut to `limit + 2` bytes (enough to be too large) and ended by a newline but the last
    one."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    *whole, rest = data.split(b"\n")
    out = [line[:limit + 2] + b"\n" for line in whole if line.strip()]
    return out + ([rest[:limit + 2]] if rest.strip() else [])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"{", b"}", b"a", b" ", b"\t", b"\n", b"\r", b"\r\n", b"\x0b",
                                 b"\x0c", b"\x1c", b"\x85", b"\xef\xbb\xbf", b"{\"c\":1}\n"]),
                max_size=80),
       st.lists(st.integers(1, 40), min_size=1, max_size=20), st.integers(2, 12))
def test_the_splitter_gives_every_line_whatever_the_chunks(parts: list[bytes], sizes: list[int],
                                                          limit: int) -> None:
    data = b"".join(parts)
    splitter = LineSplitter(limit)
    out: list[bytes] = []
    at, i = 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        out += splitter.feed(data[at:at + size])
        at, i = at + size, i + 1
    out += splitter.end()
    assert out == _split_by_hand(data, limit)


def test_a_long_line_starting_with_spaces_is_too_large_not_blank() -> None:
    # cut to its first limit + 2 bytes, only spaces are left: still a line (too_large later),
    # whether it ends in the middle of a chunk, across chunks or without a newline at the end
    data = b"{}\n" + b" " * 10 + b"x\n" + b" " * 10 + b"y"
    for size in (1, 3, 7, len(data)):
        splitter = LineSplitter(2)
        out = [line for at in range(0, len(data), size)
               for line in splitter.feed(data[at:at + size])]
        assert out + splitter.end() == [b"{}\n", b"    \n", b"    "]
