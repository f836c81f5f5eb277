"""Archive files: appends are crash-safe and idempotent, seals sort a day, retention deletes."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import orjson
import pytest

from valeur_monitor.archive.files import (
    DayFile,
    archived_offsets,
    day_files,
    day_name,
    event_date,
    expand_inputs,
    expire,
)

pytestmark = pytest.mark.unit


def _rec(i: int, hour: int) -> bytes:
    return orjson.dumps({"id": f"e{i}", "type": "visit.no_show", "customer": "c1",
                         "time": f"2026-11-02T{hour:02d}:00:00Z"})


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return [line.rstrip(b"\n") for line in fh]


def test_append_then_torn_tail_is_cut_back_and_offsets_resume(tmp_path: Path) -> None:
    day = DayFile(tmp_path, day_name(date(2026, 11, 2)))
    assert day.append([("ev", 0, 5, _rec(1, 9)), ("ev", 1, 7, _rec(2, 8))]) == 2
    assert day.append([("ev", 0, 6, _rec(3, 7))]) == 1
    size = day.data.stat().st_size
    with day.data.open("ab") as fh:            # a crash after writing, before the sidecar
        fh.write(gzip.compress(_rec(4, 6) + b"\n"))
    days = day_files(tmp_path)
    assert [d.name for d in days] == ["events-2026-11-02"]
    assert days[0].data.stat().st_size == size
    assert _lines(days[0].data) == [_rec(1, 9), _rec(2, 8), _rec(3, 7)]
    assert archived_offsets(days) == {("ev", 0): 6, ("ev", 1): 7}
    side = orjson.loads(days[0].side.read_bytes())
    assert side["records"] == 3 and side["offsets"] == {"ev/0": [5, 6], "ev/1": [7, 7]}


def test_seal_sorts_by_event_time_and_survives_an_interrupted_seal(tmp_path: Path) -> None:
    day = DayFile(tmp_path, "events-2026-11-02")
    day.append([("ev", 0, i, _rec(i, 12 - i)) for i in range(5)])
    day.seal()
    assert _lines(day.data) == [_rec(i, 12 - i) for i in reversed(range(5))]
    assert orjson.loads(day.side.read_bytes())["sealed"] is True
    # crash between the data rename and the sidecar rename: the restart finishes it
    day.append([("ev", 0, 9, _rec(9, 1))])
    side_before = day.side.read_bytes()
    day.seal()
    sealed_side = day.side.read_bytes()
    tmp_side = day.side.with_name(day.side.name + ".tmp")
    tmp_side.write_bytes(sealed_side)
    day.side.write_bytes(side_before)
    recovered = day_files(tmp_path)[0]
    assert recovered.meta.sealed and recovered.meta.records == 6 and not tmp_side.exists()
    assert _lines(recovered.data)[0] == _rec(9, 1)


def test_dates_undated_records_inputs_and_retention(tmp_path: Path) -> None:
    assert event_date(_rec(1, 3))[0] == date(2026, 11, 2)
    assert event_date(b"not json") == (None, None, "")
    assert day_name(None, date(2026, 11, 3)) == "events-undated-2026-11-03"
    for d in ("2026-10-01", "2026-10-30", "2026-11-02"):
        DayFile(tmp_path, f"events-{d}").append([("ev", 0, 1, _rec(1, 1))])
    assert [Path(p).name for p in expand_inputs([str(tmp_path)])] == [
        "events-2026-10-01.jsonl.gz", "events-2026-10-30.jsonl.gz", "events-2026-11-02.jsonl.gz"]
    removed = expire(day_files(tmp_path), 14, date(2026, 11, 2))
    assert sorted(p.name for p in removed) == ["events-2026-10-01.jsonl.gz",
                                               "events-2026-10-01.offsets.json"]


def test_a_record_is_one_line_and_a_tombstone_none(tmp_path: Path) -> None:
    """A pretty-printed record (line breaks between JSON tokens) is archived as one line that
    decodes to the same event; a tombstone is not archived but its offset counts as done."""
    pretty = orjson.dumps(orjson.loads(_rec(1, 9)), option=orjson.OPT_INDENT_2).replace(
        b"\n", b"\r\n")
    assert pretty.count(b"\n") > 3
    day = DayFile(tmp_path, "events-2026-11-02")
    assert day.append([("ev", 0, 1, pretty), ("ev", 0, 2, None),
                       ("ev", 0, 3, _rec(2, 8) + b"\n")]) == 2
    lines = _lines(day.data)
    assert [orjson.loads(line) for line in lines] == [orjson.loads(_rec(1, 9)),
                                                      orjson.loads(_rec(2, 8))]
    assert archived_offsets([day]) == {("ev", 0): 3}
    day.seal()
    assert [orjson.loads(line)["id"] for line in _lines(day.data)] == ["e2", "e1"]
