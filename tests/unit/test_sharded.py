"""`run --workers N`: customers found without a full parse, outputs identical to one process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.cli.run_cmd import run_files
from valeur_monitor.codec import decode
from valeur_monitor.errors import EventError
from valeur_monitor.runner.sharded import _exact_key, customer_key, shard_of
from valeur_monitor.simulate import SimulationConfig, write_jsonl

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
def test_the_byte_scan_finds_the_decoders_customer(line: bytes) -> None:
    exact = _exact_key(line)
    if exact is not None:  # without one the record is refused, whichever shard gets it
        assert customer_key(line) == exact
    try:
        event = decode(line)
    except EventError:
        return  # refused records may go to any shard
    assert customer_key(line) == event.customer.encode()


def test_records_without_a_customer_go_to_shard_zero() -> None:
    assert shard_of(b"not json", 4) == 0
    assert shard_of(b'{"id": "x"}', 4) == 0
    assert 0 <= shard_of(b'{"customer":"c-1"}', 4) < 4


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


def test_workers_need_the_memory_store(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"")
    with pytest.raises(ValueError, match="--workers"):
        run_files([str(events)], rules=["rules"], store_url="redis://localhost:1/0",
                  progress=False, workers=2)
