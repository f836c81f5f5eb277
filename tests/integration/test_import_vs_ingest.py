"""A queue_log and a Zendesk export through `import` give the same events, and the same ledger,
as the same payloads POSTed to a real `valeur-monitor ingest` process (file output).

Sized for the suite (about 3k events); `make sources-full` runs it with 100k events
(VALEUR_SOURCES_EVENTS=100000).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from valeur_monitor.sources.samples import SampleConfig, identities_csv, queue_log, zendesk_export

from .ingest_support import Ingest, now_stamp
from .streaming_support import ROOT, run_cli

pytestmark = pytest.mark.integration
EVENTS = int(os.environ.get("VALEUR_SOURCES_EVENTS", "3000"))
TOKEN = "queue-log-forwarder-token"
SECRET = "zendesk-signing-secret"


def test_import_and_ingest_give_the_same_ledger(tmp_path: Path) -> None:
    from valeur_monitor.ingest.auth import zendesk_headers

    config = SampleConfig(customers=max(200, EVENTS // 50))
    (tmp_path / "ids.csv").write_text(identities_csv(config))
    calls = int(EVENTS * 0.8 / 2.9)                 # ~2.9 events per call
    tickets = int(EVENTS * 0.2 / 6.4)               # ~6.4 events per ticket
    lines = list(queue_log(config, calls))
    (tmp_path / "queue_log").write_text("\n".join(lines) + "\n")
    pages = [orjson.dumps(p) for p in zendesk_export(config, tickets, per_page=300)]
    (tmp_path / "pages.jsonl").write_bytes(b"\n".join(pages) + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env.update({"VALEUR_INGEST__IDENTITIES": str(tmp_path / "ids.csv"),
                "VALEUR_INGEST__IDENTITY_KEY": "derive-key", "VALEUR_RULES": str(ROOT / "rules"),
                "VALEUR_INGEST__SECRETS__ASTERISK": TOKEN,
                "VALEUR_INGEST__SECRETS__ZENDESK": SECRET, "PYTHONUNBUFFERED": "1"})

    imported = tmp_path / "imported.jsonl"
    run_cli(["import", "asterisk", str(tmp_path / "queue_log"), "-o", str(tmp_path / "a.jsonl"),
             "--no-progress"], env, timeout=900)
    run_cli(["import", "zendesk", str(tmp_path / "pages.jsonl"), "-o", str(tmp_path / "z.jsonl"),
             "--no-progress"], env, timeout=900)
    imported.write_bytes((tmp_path / "a.jsonl").read_bytes() + (tmp_path / "z.jsonl").read_bytes())

    received = tmp_path / "received.jsonl"
    ingest = Ingest({**env, "VALEUR_INGEST__OUTPUT": str(received)}, tmp_path / "ingest.log")
    ingest.start()
    try:
        for start in range(0, len(lines), 500):
            body = ("\n".join(lines[start:start + 500]) + "\n").encode()
            status, reply = ingest.post_raw("POST", "/ingest/asterisk", body,
                                            {"X-Valeur-Token": TOKEN,
                                             "Content-Type": "text/plain"})
            assert status == 202, reply
        for page in pages:
            headers = {**zendesk_headers(SECRET, page, now_stamp()),
                       "Content-Type": "application/json"}
            status, reply = ingest.post_raw("POST", "/ingest/zendesk", page, headers)
            assert status == 202, reply
    finally:
        ingest.stop()

    got, want = received.read_bytes().splitlines(), imported.read_bytes().splitlines()
    assert len(want) >= EVENTS * 0.75
    assert got == want                               # same events, same ids, same order
    assert not Path(f"{received}.dead.jsonl").exists()
    types = {orjson.loads(x)["type"] for x in want}
    assert {"call.abandoned", "call.answered", "call.transferred", "request.reopened"} <= types

    ledgers, dead = [], []
    for name, source in (("imported", imported), ("received", received)):
        ledger, letters = tmp_path / f"{name}-ledger.jsonl", tmp_path / f"{name}-dead.jsonl"
        run_cli(["run", str(source), "--ledger", str(ledger), "--dead-letters", str(letters),
                 "--no-progress"], env, timeout=900)
        ledgers.append(ledger.read_bytes())
        dead.append(letters.read_bytes() if letters.exists() else b"")
    assert ledgers[0] == ledgers[1] and ledgers[0].count(b"\n") > 100
    assert dead[0] == dead[1]
