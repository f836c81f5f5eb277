"""CEL comprehension macros, regex literals checked at load, repeat keys pruned after the window."""

from __future__ import annotations

from pathlib import Path

import cel
import pytest
from typer.testing import CliRunner

from tests.unit.engine.helpers import Driver, ev, rules, t
from valeur_monitor.cli.main import app
from valeur_monitor.engine.core import Engine, Output
from valeur_monitor.engine.event import format_time
from valeur_monitor.engine.expressions import Condition
from valeur_monitor.engine.rules import RuleSet, load_rules, load_rules_text
from valeur_monitor.engine.state import CustomerState, encode_state
from valeur_monitor.errors import RuleLoadError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]

MACROS = [
    ("data.items.exists(x, x > 5)", {"items": [1, 7]}, True),
    ("data.items.exists(x, x > 5)", {"items": [1, 2]}, False),
    ("data.items.all(x, x > 0)", {"items": [1, 2]}, True),
    ("data.items.all(x, x > 1)", {"items": [1, 2]}, False),
    ("data.items.map(x, x * 2).exists(y, y == 14)", {"items": [1, 7]}, True),
    ("data.items.filter(x, x > 1).size() == 1", {"items": [1, 7]}, True),
    ("data.items.exists_one(x, x > 5)", {"items": [6, 7]}, False),
    ("data.tags.exists(k, k == 'vip')", {"tags": {"vip": True}}, True),
    ("has(data.items) && data.items.exists(x, x == 'a')", {"items": ["b", "a"]}, True),
    ("data.items.exists(x, x > 5)", {}, False),               # missing field: false, no error
    ("data.items.all(x, x > 1 && x < 5)", {"items": [2, 3]}, True),
]


@pytest.mark.parametrize(("source", "data", "expected"), MACROS)
def test_comprehension_macros_compile_and_evaluate(source: str, data: dict[str, object],
                                                   expected: bool) -> None:
    condition = Condition(source)          # "unknown name(s) x" before
    event = ev("e1", "contact.inbound", "2026-11-02T10:00:00Z", **data)
    assert condition.test(event) is expected
    # the shortcut never answers for CEL: same verdict as the CEL program itself
    try:
        direct = cel.compile(source).execute({"data": data}) is True
    except (LookupError, ValueError, RuntimeError, TypeError):
        direct = False
    assert condition.test(event) is direct


def test_a_macro_rule_passes_rules_check_and_fires(tmp_path: Path) -> None:
    body = """rules:
  - id: big-basket
    title: A basket with an expensive item
    on: contact.inbound
    if: 'data.items.exists(x, x > 5)'
    costs: {effort: 1}
"""
    path = tmp_path / "macro.yml"
    path.write_text("version: 1\n" + body)
    checked = CliRunner().invoke(app, ["rules", "check", str(path)])
    assert checked.exit_code == 0, checked.output
    driver = Driver(rules(body)).feed(
        ev("e1", "contact.inbound", "2026-11-02T10:00:00Z", topic="t", items=[1, 9]),
        ev("e2", "contact.inbound", "2026-11-02T11:00:00Z", topic="t", items=[1, 2]),
        until="2026-11-03T00:00:00Z")
    assert [(r, o) for r, o, _ in driver.outcomes()] == [("big-basket", "matched")]


@pytest.mark.parametrize("pattern", ['"(a{1000}){1000}"', '"([a-z"'])
def test_a_regex_that_cannot_compile_is_refused_at_load_with_its_line(pattern: str) -> None:
    body = f"""rules:
  - id: odd
    title: Odd topic
    on: contact.inbound
    if: 'data.topic.matches({pattern})'
    costs: {{effort: 1}}
"""
    with pytest.raises(RuleLoadError) as info:
        load_rules_text_with(body)
    [issue] = info.value.issues
    assert issue.line == 7 and "regex" in issue.message
    ok = body.replace(pattern, '"^inv.*$"')
    assert load_rules_text_with(ok).rule_ids() == ["odd"]


def load_rules_text_with(body: str) -> RuleSet:
    return load_rules_text([("t.yml", "version: 1\nsettings: {lateness: 5m}\n" + body)])


def test_repeat_keys_are_pruned_after_their_window() -> None:
    """6,000 distinct topics over 60 days for one customer: the state stays small."""
    shipped = load_rules([ROOT / "rules"])
    engine, state, out = Engine(shipped), CustomerState("c1"), Output()
    start, step = t("2026-09-01T00:00:00Z"), 60 * 86_400_000 // 6000
    for i in range(6000):
        at = start + i * step
        event = ev(f"e{i}", "contact.inbound", format_time(at), ref=f"r{i}", topic=f"topic-{i}")
        engine.ingest(state, event, out)
        engine.advance(state, at, out)
    # what can still count: the 7-day window behind the 7-day late horizon (+1 day of slack)
    assert len(state.repeats) <= 15 * 6000 // 60
    assert len(encode_state(state)) < 100_000
    # still counted: the same topic twice within the window, after all that pruning
    end = start + 6000 * step
    for j, topic in enumerate(("topic-5990", "fresh", "fresh")):
        at = end + j * 60_000
        engine.ingest(state, ev(f"x{j}", "contact.inbound", format_time(at), ref=f"x{j}",
                                topic=topic), out)
    engine.advance(state, end + 3_600_000, out)
    repeats = [e for e in out.entries if e.rule == "repeated-problem"]
    assert {e.events[0] for e in repeats} == {"x0", "x2"}
