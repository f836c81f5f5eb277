"""Rule unit tests in YAML: events in, expected ledger, scores and notices out, virtual time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from valeur_monitor.engine.event import parse_time
from valeur_monitor.engine.rules import RuleSet, load_rules
from valeur_monitor.engine.rules.issues import Issues, validate
from valeur_monitor.engine.rules.yamlsource import parse_yaml
from valeur_monitor.errors import RuleIssue, RuleLoadError
from valeur_monitor.service import Processor
from valeur_monitor.store.memory import MemoryStore


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expected(_Strict):
    ledger: list[dict[str, Any]] | None = None
    scores: dict[str, float] | None = None
    notices: list[dict[str, Any]] | None = None
    dead_letters: list[str] | None = None     # reasons, in order


class Case(_Strict):
    name: str
    only: list[str] = Field(default_factory=list)   # compare entries of these rules only
    events: list[Any]
    until: str | None = None
    expect: Expected


class TestFile(_Strict):
    rules: list[str] = Field(default_factory=lambda: [".."])
    tests: list[Case]


@dataclass
class CaseResult:
    file: str
    line: int
    name: str
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


_TIME_KEYS = ("time",)


def _matches(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    for key, value in expected.items():
        got = actual.get(key)
        if key in _TIME_KEYS and isinstance(value, str) and isinstance(got, str):
            if parse_time(value) != parse_time(got):
                return False
        elif key == "events" and isinstance(value, list):
            if list(value) != list(got or []):
                return False
        elif isinstance(value, float | int) and isinstance(got, float | int):
            if abs(float(value) - float(got)) > 1e-6:
                return False
        elif value != got:
            return False
    return True


def run_case(rules: RuleSet, case: Case) -> list[str]:
    """Feed each event as its own batch (in file order), drain to `until`, compare."""
    store = MemoryStore()
    processor = Processor(rules, store)
    entries, notices, dead = [], [], []
    for raw in case.events:
        record = orjson.dumps(raw) if not isinstance(raw, str) else raw.encode()
        result = processor.process([record])
        entries += result.entries
        notices += result.notices
        dead += [d.reason for d in result.dead_letters]
    end = parse_time(case.until) if case.until else processor.max_event_time
    result = processor.advance_to(end)
    entries += result.entries
    notices += result.notices
    failures: list[str] = []
    actual = [e.to_json() for e in entries if not case.only or e.rule in case.only]
    actual.sort(key=lambda e: (parse_time(e["time"]), e["customer"], e["seq"]))
    exp = case.expect
    if exp.ledger is not None and not _all_match(exp.ledger, actual):
        failures.append("ledger differs\n  expected: " + _dump(exp.ledger)
                        + "\n  actual:   " + _dump([_short(a) for a in actual]))
    if exp.scores is not None:
        for customer, want in exp.scores.items():
            got = sum(e.value for e in entries if e.customer == customer)
            if abs(got - want) > 1e-6:
                failures.append(f"score of {customer}: expected {want:g}, got {got:g}")
    got_notices = [n.to_json() for n in notices]
    if exp.notices is not None and not _all_match(exp.notices, got_notices):
        failures.append("notices differ\n  expected: " + _dump(exp.notices)
                        + "\n  actual:   " + _dump(got_notices))
    if exp.dead_letters is not None and exp.dead_letters != dead:
        failures.append(f"dead letters: expected {exp.dead_letters}, got {dead}")
    return failures


def _all_match(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> bool:
    return len(expected) == len(actual) and all(
        _matches(x, a) for x, a in zip(expected, actual, strict=True))


def _short(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("customer", "rule", "outcome", "dimension", "amount", "time")}


def _dump(value: Any) -> str:
    return orjson.dumps(value).decode()


def test_files(paths: Sequence[str | Path]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        out.extend(sorted(path.glob("*.y*ml")) if path.is_dir() else [path])
    return out


def run_test_file(path: Path, rules_override: list[str] | None = None) -> list[CaseResult]:
    """Run one test file; a file that cannot be read or whose rules fail counts as one failure."""
    issues: list[RuleIssue] = []
    text = path.read_text(encoding="utf-8")
    doc = parse_yaml(text)
    spec = validate(TestFile, doc.data, (), Issues(str(path), doc, issues))
    if spec is None:
        return [CaseResult(str(path), i.line, "(file)", [str(i)]) for i in issues]
    rule_paths = rules_override or [str((path.parent / p).resolve()) for p in spec.rules]
    try:
        rules = load_rules(rule_paths)
    except RuleLoadError as exc:
        return [CaseResult(str(path), 1, "(rules)", [str(i) for i in exc.issues])]
    results = []
    for i, case in enumerate(spec.tests):
        result = CaseResult(str(path), doc.line(("tests", i)), case.name)
        try:
            result.failures = run_case(rules, case)
        except Exception as exc:  # a broken case must not hide the others
            result.failures = [f"error: {type(exc).__name__}: {exc}"]
        results.append(result)
    return results
