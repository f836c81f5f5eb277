"""A UTF-8 signature (BOM) before a file's first line: dropped, whatever the input or chunking."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from valeur_monitor.cli.main import app
from valeur_monitor.runner.inputs import LineSplitter, read_batches

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
LINES = [orjson.dumps({"id": f"g{i}", "type": "survey.answered", "customer": f"c{i}",
                       "time": f"2026-11-02T1{i}:00:00Z", "data": {"score": 5}})
         for i in range(3)]
DATA = b"\n".join(LINES) + b"\n"
BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 50, len(DATA)])
def test_the_signature_is_dropped_however_the_first_bytes_are_cut(cut: int) -> None:
    splitter = LineSplitter(1 << 20)
    data = BOM + DATA
    out: list[bytes] = []
    for i in range(0, len(data), cut):
        out += splitter.feed(data[i:i + cut])
    out += splitter.end()
    assert out == [line + b"\n" for line in LINES]


def test_only_the_first_line_of_an_input_loses_a_signature() -> None:
    data = BOM + LINES[0] + b"\n" + BOM + LINES[1] + b"\n" + BOM + LINES[2]
    lines = [line for batch in read_batches(io.BufferedReader(io.BytesIO(data)), 100)
             for line in batch]
    assert lines == [LINES[0] + b"\n", BOM + LINES[1] + b"\n", BOM + LINES[2]]


def test_a_signature_alone_on_the_first_line_is_a_blank_line() -> None:
    splitter = LineSplitter(1 << 20)
    assert splitter.feed(BOM + b"\n" + DATA) + splitter.end() == [line + b"\n" for line in LINES]


def _run(src: Path, tmp_path: Path, name: str) -> tuple[bytes, list[str]]:
    ledger, dead = tmp_path / f"{name}.ledger.jsonl", tmp_path / f"{name}.dead.jsonl"
    result = CliRunner().invoke(app, ["run", str(src), "--rules", str(ROOT / "rules"),
                                      "--ledger", str(ledger), "--dead-letters", str(dead),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    letters = dead.read_bytes() if dead.exists() else b""   # written only when there are some
    reasons = [orjson.loads(line)["reason"] for line in letters.splitlines()]
    return ledger.read_bytes(), reasons


def test_run_scores_a_file_with_a_signature_like_the_same_file_without(tmp_path: Path) -> None:
    plain, signed, zipped = tmp_path / "p.jsonl", tmp_path / "s.jsonl", tmp_path / "s.jsonl.gz"
    plain.write_bytes(DATA)
    signed.write_bytes(BOM + DATA)
    zipped.write_bytes(gzip.compress(BOM + DATA))
    expected, none = _run(plain, tmp_path, "plain")
    assert none == [] and expected.count(b"\n") >= 3
    assert _run(signed, tmp_path, "signed") == (expected, [])
    assert _run(zipped, tmp_path, "zipped") == (expected, [])


def test_run_from_a_pipe_drops_the_signature(tmp_path: Path) -> None:
    ledger, dead = tmp_path / "ledger.jsonl", tmp_path / "dead.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "valeur_monitor.cli.main", "run", "-", "--no-progress",
         "--rules", str(ROOT / "rules"), "--ledger", str(ledger), "--dead-letters", str(dead)],
        input=BOM + DATA, capture_output=True, cwd=tmp_path, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr.decode()
    assert not dead.exists() or dead.read_bytes() == b""
    assert ledger.read_bytes().count(b"happy-survey") == 3


def test_a_first_line_over_the_limit_is_still_too_large_after_its_signature() -> None:
    """The line is cut to `limit + 2` bytes of its own (the codec's too_large), not of the
    signature and the line: cut 3 bytes short it would be a truncated JSON, malformed_json."""
    from valeur_monitor.catalogue import active
    from valeur_monitor.codec import Codec
    from valeur_monitor.errors import EventError

    long = b'{"id":"e1","note":"' + b"y" * 5000 + b'"}'
    lines = [line for batch in read_batches(io.BufferedReader(io.BytesIO(BOM + long + b"\n")),
                                            100, max_bytes=1000) for line in batch]
    assert len(lines) == 1 and lines[0] == long[:1002] + b"\n"
    with pytest.raises(EventError, match="too_large"):
        Codec(active(), max_bytes=1000).decode(lines[0])
