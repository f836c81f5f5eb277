"""Backtest on the demo week: its deltas match two separate runs, and its pages render."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from valeur_monitor.backtest.html import write_html
from valeur_monitor.backtest.report import Report
from valeur_monitor.cli.backtest_cmd import backtest_files
from valeur_monitor.cli.main import app
from valeur_monitor.engine.ledger import Notice
from valeur_monitor.engine.rules import load_rules
from valeur_monitor.engine.scoring import score_at
from valeur_monitor.engine.state import Score
from valeur_monitor.runner.embedded import EmbeddedRunner
from valeur_monitor.runner.inputs import open_input, read_batches
from valeur_monitor.service import BatchResult
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The demo week (seed 1, 1,000 customers, 7 days) and a candidate changing two rules."""
    folder = tmp_path_factory.mktemp("week")
    events = folder / "events.jsonl.gz"
    write_jsonl(events, SimulationConfig(seed=1, customers=1000, days=7, bad_rate=0.001))
    candidate = folder / "candidate"
    candidate.mkdir()
    for f in (ROOT / "rules").glob("*.yml"):
        shutil.copy(f, candidate / f.name)
    contacts = candidate / "contacts.yml"
    text = contacts.read_text()
    assert "scale: {per: 1h, clock: wall, max: 2h}" in text
    contacts.write_text(text.replace("scale: {per: 1h, clock: wall, max: 2h}",
                                     "scale: {per: 30m, clock: wall, max: 1h}"))
    visits = candidate / "visits.yml"
    text = visits.read_text()
    assert "money: 3}" in text
    visits.write_text(text.replace("money: 3}", "money: 25}"))
    yield events, candidate


def _run(rules_dir: Path, events: Path) -> tuple[MemoryStore, list[Notice], int]:
    """One ordinary embedded run: its store (every ledger entry) and its alerts."""
    ruleset = load_rules([rules_dir])
    store = MemoryStore()
    alerts: list[Notice] = []

    def keep(result: BatchResult, _seconds: float) -> None:
        alerts.extend(n for n in result.notices if n.kind == "alert")

    runner = EmbeddedRunner(ruleset, store, on_batch=[keep])
    with open_input(str(events)) as stream:
        for batch in read_batches(stream, 2000):
            runner.feed(batch)
    report = runner.finish()
    return store, alerts, report.watermark


def _sums(store: MemoryStore) -> dict[tuple[str, str], tuple[float, float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for customer in store.customers():
        for e in store.ledger(customer):
            pair = out.setdefault((e.rule, e.dimension), [0.0, 0.0])
            pair[0 if e.value >= 0 else 1] += abs(e.value)
    return {k: (v[0], v[1]) for k, v in out.items()}


@pytest.fixture(scope="module")
def report(week: tuple[Path, Path]) -> Report:
    events, candidate = week
    return backtest_files([str(ROOT / "rules")], [str(candidate)], [str(events)])


def test_reported_deltas_match_two_separate_runs(week: tuple[Path, Path],
                                                 report: Report) -> None:
    events, candidate = week
    assert report.rules["changed"] == ["late-callback", "technician-no-show"]
    assert len(report.rules["shared"]) == len(load_rules([ROOT / "rules"]).rule_ids()) - 2
    (base_store, base_alerts, end), (cand_store, cand_alerts, _) = (
        _run(ROOT / "rules", events), _run(candidate, events))
    base, cand = _sums(base_store), _sums(cand_store)
    assert {(r.rule, r.dimension) for r in report.rows} == set(base) | set(cand)
    for row in report.rows:
        b, c = base.get((row.rule, row.dimension), (0, 0)), cand.get((row.rule, row.dimension),
                                                                    (0, 0))
        assert row.created[0] == pytest.approx(b[0]) and row.destroyed[0] == pytest.approx(b[1])
        assert row.created[1] == pytest.approx(c[0]) and row.destroyed[1] == pytest.approx(c[1])
    changed = [r for r in report.rows if abs(r.delta) > 1e-9]
    assert {r.rule for r in changed} == {"late-callback", "technician-no-show"}
    # per-customer scores, decayed to the end of the run like the report's
    half_life = load_rules([ROOT / "rules"]).settings.half_life
    for store, side in ((base_store, 0), (cand_store, 1)):
        for customer in store.customers():
            view = store.score(customer)
            assert view is not None
            want = score_at(Score(total=view.total, at=view.at), end, half_life)
            assert report.scores[customer][side] == pytest.approx(want, abs=1e-6)
    # alerts that appear or vanish are exactly the difference between the two runs
    key = lambda n: (n.customer, n.id, n.time)  # noqa: E731
    b_keys, c_keys = {key(n) for n in base_alerts}, {key(n) for n in cand_alerts}
    assert {key(n) for n in report.alerts_appeared} == c_keys - b_keys
    assert {key(n) for n in report.alerts_vanished} == b_keys - c_keys
    assert report.alerts_appeared, "a day off work at 25 points must push someone below -20"
    metrics = report.metrics()
    assert metrics["band_changes"] == len(report.band_changes()) > 0
    assert report.movers and report.movers[0]["differences"][0]["rule"] in report.rules["changed"]


def test_cli_tables_json_html_and_fail_if(week: tuple[Path, Path], tmp_path: Path) -> None:
    events, candidate = week
    runner = CliRunner()
    html = tmp_path / "report.html"
    args = ["backtest", "--baseline", str(ROOT / "rules"), "--candidate", str(candidate),
            str(events)]
    result = runner.invoke(app, [*args, "--html", str(html), "--fail-if", "destroyed_delta>1"],
                           env={"COLUMNS": "80"})
    assert result.exit_code == 3, result.output
    assert "backtest thresholds crossed: destroyed_delta" in result.output
    assert all(len(line) <= 80 for line in result.output.splitlines()), result.output
    assert "technician-no-show" in result.output and "Top 10 movers" in result.output
    page = html.read_text()
    assert page.count("<svg") == 2 and "<script" not in page
    ok = runner.invoke(app, [*args, "--json", "--fail-if", "destroyed_delta>1000000"])
    assert ok.exit_code == 0, ok.output
    doc = orjson.loads(ok.output)
    assert doc["rules"]["changed"] == ["late-callback", "technician-no-show"]
    assert doc["metrics"]["destroyed_delta"] > 0
    bad = runner.invoke(app, [*args, "--fail-if", "nonsense>1"])
    assert bad.exit_code == 2 and "unknown metric" in bad.output


def test_html_report_renders_in_headless_chromium(report: Report, tmp_path: Path) -> None:
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    write_html(report, page)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is a test dependency (scripts/services install chromium)"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--window-size=1100,1500", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
