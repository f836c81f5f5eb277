"""Rule files: every mistake reported at once with file:line and rule id."""

from __future__ import annotations

from pathlib import Path

import pytest

from valeur_monitor.engine.rules import load_rules, load_rules_text
from valeur_monitor.errors import RuleLoadError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


def _issues(text: str) -> list[str]:
    with pytest.raises(RuleLoadError) as info:
        load_rules_text([("r.yml", text)])
    return [str(i) for i in info.value.issues]


def test_shipped_rules_load() -> None:
    ruleset = load_rules([ROOT / "rules"])
    assert len(ruleset.rule_ids()) >= 12
    assert {"unanswered-request", "missed-callback", "repeated-problem", "visit-not-confirmed",
            "technician-no-show", "first-contact-resolution"} <= set(ruleset.rule_ids())


def test_the_bad_file_lists_every_mistake_with_its_line() -> None:
    with pytest.raises(RuleLoadError) as info:
        load_rules([ROOT / "tests" / "data" / "bad-rules.yml"])
    found = [(i.line, i.rule_id) for i in info.value.issues]
    assert found == [(6, "first"), (7, "first"), (12, "bad-expr"), (18, "bad-duration"),
                     (22, "bad-dimension"), (24, "bad-type"), (30, "bad-deadline")]
    assert all(str(i).startswith(str(ROOT / "tests/data/bad-rules.yml") + ":")
               for i in info.value.issues)


def test_on_is_a_key_not_a_yaml_boolean() -> None:
    ruleset = load_rules_text([("r.yml", "version: 1\nrules:\n  - id: a\n    on: visit.no_show\n"
                                         "    costs: {time: 1}\n")])
    assert ruleset.on_rules[0].matcher.types == {"visit.no_show"}


@pytest.mark.parametrize(("text", "needle"), [
    ("version: 2\n", "version"),
    ("version: 1\nrulez: []\n", "unknown key 'rulez'"),
    ("version: 1\nrules:\n  - id: a\n    on: visit.no_show\n    costs: {time: 1}\n"
     "    explain: '{nope}'\n", "unknown placeholder {nope}"),
    ("version: 1\nrules:\n  - id: a\n    on: visit.no_show\n    if: 'foo == 1'\n"
     "    costs: {time: 1}\n", "unknown name(s) foo"),
    ("version: 1\nrules:\n  - id: a\n    expect: {open: request.opened, keep: request.resolved,"
     " deadline: {within: 4h, at: data.x}}\n    broken: {costs: {time: 1}}\n", "exactly one of"),
    ("version: 1\nrules:\n  - id: a\n    on: visit.no_show\n", "needs `benefits` or `costs`"),
    ("version: 1\nrules:\n  - id: a\n    on: visit.no_show\n    costs: {time: 1}\n"
     "  - id: a\n    on: visit.no_show\n    costs: {time: 1}\n", "duplicate rule id"),
    ("version: 1\ncalendars:\n  x: {timezone: Mars/Olympus, hours: {mon: '09:00-17:00'}}\n",
     "unknown time zone"),
    ("version: 1\ncalendars:\n  x: {timezone: UTC, hours: {mon: '17:00-09:00'}}\n",
     "end before they start"),
    ("version: 1\nrules: [\n", "YAML syntax error"),
    ("version: 1\nversion: 1\n", "duplicate key 'version'"),
    ("version: 1\nalerts:\n  - id: x\n    outcome: broken\n", "`count` ≥ 1 and `within`"),
])
def test_each_kind_of_mistake_is_named(text: str, needle: str) -> None:
    issues = _issues(text)
    assert any(needle in i for i in issues), issues
    assert all(i.startswith("r.yml:") for i in issues)
