"""`sources check` and `import` on files (exit codes, output, dead letters)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from valeur_monitor.cli.main import app

from .support import DATA, SOURCES

pytestmark = pytest.mark.unit
runner = CliRunner()


def test_sources_check_ok_and_refused(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["sources", "check", str(SOURCES)])
    assert ok.exit_code == 0, ok.output
    assert "zendesk: 20 mappings, auth zendesk_signature" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsource: x\nauth: {kind: none}\nmappings:\n"
                   "  - {name: a, when: 'body.', emit: {type: t, time: body.t, customer: {}}}\n")
    refused = runner.invoke(app, ["sources", "check", str(bad)])
    assert refused.exit_code == 1
    assert f"{bad}:5: [a] bad expression" in refused.output
    assert f"{bad}:5: [a] unknown event type 't'" in refused.output


def test_import_writes_events_and_dead_letters(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    pages = (DATA / "zendesk-export.jsonl").read_bytes().splitlines()
    only_second = tmp_path / "page2.json"
    only_second.write_bytes(pages[1])
    # the second page alone first: its ticket's requester is not known yet
    result = runner.invoke(app, [
        "import", "zendesk", str(only_second), str(DATA / "zendesk-export.jsonl"), "-o", str(out),
        "--identities", str(DATA / "identities.csv"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "3 payloads -> 9 events, 1 dead letters" in result.output, result.output
    lines = out.read_bytes().splitlines()
    assert len(lines) == 9 and orjson.loads(lines[0])["customer"] == "cust-zd-2"
    dead = [orjson.loads(x) for x in Path(f"{out}.dead.jsonl").read_bytes().splitlines()]
    assert [d["reason"] for d in dead] == ["unknown_customer"]
    assert orjson.loads(dead[0]["record"]) == orjson.loads(pages[1])


def test_import_needs_one_output() -> None:
    result = runner.invoke(app, ["import", "zendesk", "x.json"])
    assert result.exit_code == 2


def test_import_reads_exports_and_identities_saved_with_a_signature(tmp_path: Path) -> None:
    """Windows tools (Excel's "CSV UTF-8", PowerShell) start files with a UTF-8 BOM: the
    export pages (one JSON document, or JSON lines) and the identities map the same."""
    bom = b"\xef\xbb\xbf"
    page = orjson.loads((DATA / "zendesk-export.jsonl").read_bytes().splitlines()[0])
    pretty = orjson.dumps(page, option=orjson.OPT_INDENT_2)
    files = {"plain": (pretty, (DATA / "identities.csv").read_bytes()),
             "signed": (bom + pretty, bom + (DATA / "identities.csv").read_bytes())}
    outputs = {}
    for name, (export, identities) in files.items():
        (tmp_path / f"{name}.json").write_bytes(export)
        (tmp_path / f"{name}.csv").write_bytes(identities)
        out = tmp_path / f"{name}.events.jsonl"
        result = runner.invoke(app, ["import", "zendesk", str(tmp_path / f"{name}.json"),
                                     "-o", str(out), "--identities",
                                     str(tmp_path / f"{name}.csv"), "--no-progress"])
        assert result.exit_code == 0, result.output
        assert not Path(f"{out}.dead.jsonl").exists() or not Path(
            f"{out}.dead.jsonl").read_bytes()
        outputs[name] = out.read_bytes()
    assert outputs["plain"].count(b"\n") >= 3
    assert outputs["signed"] == outputs["plain"]
