"""Load rule files: every problem is collected with `file:line` and rule id, then all reported."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_data
import yaml

from valeur_monitor.engine.calendar import Calendar, expand_days, parse_hours
from valeur_monitor.engine.rules.compile import compile_alert, compile_rule
from valeur_monitor.engine.rules.issues import Issues, duration, validate
from valeur_monitor.engine.rules.model import (
    AlertRule,
    ExpectRule,
    OnRule,
    RepeatRule,
    RuleSet,
    Settings,
)
from valeur_monitor.engine.rules.spec import (
    LABEL_PATTERN,
    AlertSpec,
    CalendarSpec,
    FileSpec,
    RuleSpec,
    SettingsSpec,
)
from valeur_monitor.engine.rules.yamlsource import Path as KeyPath
from valeur_monitor.engine.rules.yamlsource import parse_yaml, yaml_files
from valeur_monitor.errors import RuleIssue, RuleLoadError

rule_files = yaml_files   # one rule for directories and files


def load_rules(paths: Sequence[str | Path], label: str | None = None) -> RuleSet:
    """Load and compile rule files; raise RuleLoadError listing every problem found.

    `label` (e.g. from the command line) overrides the `settings: {label: ...}` of the files.
    """
    files = rule_files(paths)
    texts: list[tuple[str, str]] = []
    issues: list[RuleIssue] = []
    if not files:
        issues.append(RuleIssue(", ".join(str(p) for p in paths) or "-", 1, None, "no rule files"))
    for file in files:
        try:
            texts.append((str(file), file.read_text(encoding="utf-8")))
        except OSError as exc:
            issues.append(RuleIssue(str(file), 1, None, f"cannot read: {exc.strerror}"))
    if issues:
        raise RuleLoadError(issues)
    return load_rules_text(texts, label)


def load_rules_text(sources: Sequence[tuple[str, str]], label: str | None = None) -> RuleSet:
    """Compile rule files given as (name, text) pairs."""
    issues: list[RuleIssue] = []
    compiler = _Compiler()
    for name, text in sources:
        compiler.add_file(name, text, issues)
    ruleset = compiler.finish(issues)
    if label is not None and not re.match(LABEL_PATTERN, label):
        issues.append(RuleIssue("(label)", 1, None, f"bad rule-set label {label!r}: letters, "
                                "digits, '.', '_' or '-', at most 40"))
    if issues:
        issues.sort(key=lambda i: (i.file, i.line))
        raise RuleLoadError(issues)
    return replace(ruleset, version=version_of([text for _name, text in sources],
                                               label or compiler.label),
                   warnings=tuple(sorted(compiler.warnings, key=lambda i: (i.file, i.line))))


def version_of(texts: Sequence[str], label: str | None = None) -> str:
    """Short content hash of rule files (names and order aside), `+label` when labelled.

    The same files copied elsewhere have the same version; any edit gives a new one.
    """
    digests = sorted(hashlib.sha256(text.encode()).digest() for text in texts)
    short = hashlib.sha256(b"".join(digests)).hexdigest()[:12]
    return f"{short}+{label}" if label else short


class _Compiler:
    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.settings_from: str | None = None
        self.label: str | None = None
        self.warnings: list[RuleIssue] = []
        self.fingerprints: dict[str, str] = {}
        self.calendars: dict[str, Calendar] = {}
        self.on: list[OnRule] = []
        self.expect: list[ExpectRule] = []
        self.repeat: list[RepeatRule] = []
        self.alerts: list[AlertRule] = []
        self.ids: dict[str, str] = {}
        self.files: list[str] = []
        self.pending_rules: list[tuple[Issues, int, RuleSpec]] = []
        self.pending_alerts: list[tuple[Issues, int, AlertSpec]] = []

    def add_file(self, name: str, text: str, sink: list[RuleIssue]) -> None:
        self.files.append(name)
        try:
            doc = parse_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(exc, "problem", None) or str(exc)
            sink.append(RuleIssue(name, line, None, f"YAML syntax error: {problem}"))
            return
        issues = Issues(name, doc, sink, self.warnings)
        for path, _line in doc.duplicates:
            issues.add(path, f"duplicate key {path[-1]!r}")
        if not isinstance(doc.data, dict):
            issues.add((), "a rule file is a mapping with `version: 1` and `rules:`")
            return
        spec = validate(FileSpec, doc.data, (), issues)
        if spec is None:
            return
        if spec.settings is not None:
            self._settings(spec.settings, issues, name)
        for cal_name, cal in spec.calendars.items():
            self._calendar(cal_name, cal, issues)
        for i, raw in enumerate(spec.rules):
            rule_id = raw.get("id") if isinstance(raw, dict) else None
            rule = validate(RuleSpec, raw, ("rules", i), issues, rule_id)
            if rule is None and isinstance(rule_id, str):
                self._claim_id(rule_id, issues, ("rules", i))
            if rule is not None:
                self.pending_rules.append((issues, i, rule))
        for i, raw in enumerate(spec.alerts):
            alert_id = raw.get("id") if isinstance(raw, dict) else None
            alert = validate(AlertSpec, raw, ("alerts", i), issues, alert_id)
            if alert is not None:
                self.pending_alerts.append((issues, i, alert))

    def _settings(self, spec: SettingsSpec, issues: Issues, name: str) -> None:
        if self.settings is not None:
            issues.add(("settings",), f"settings already given in {self.settings_from}")
            return
        path = ("settings",)
        lateness = duration(spec.lateness, (*path, "lateness"), issues, None, positive=False)
        horizon = duration(spec.late_horizon, (*path, "late_horizon"), issues, None)
        half_life = duration(spec.half_life, (*path, "half_life"), issues, None)
        max_age = duration(spec.ledger_max_age, (*path, "ledger_max_age"), issues, None)
        self.settings = Settings(
            lateness=lateness if lateness is not None else Settings.lateness,
            late_horizon=horizon or Settings.late_horizon,
            half_life=half_life,
            ledger_cap=spec.ledger_cap,
            ledger_max_age=max_age,
        )
        self.settings_from = name
        self.label = spec.label

    def _calendar(self, name: str, raw: Any, issues: Issues) -> None:
        path: KeyPath = ("calendars", name)
        spec = validate(CalendarSpec, raw, path, issues)
        if spec is None:
            return
        if name in self.calendars:
            issues.add(path, f"calendar {name!r} defined twice")
        weekly: list[tuple[tuple[int, int], ...]] = [()] * 7
        for days, hours in spec.hours.items():
            try:
                parsed = parse_hours(hours)
                for day in expand_days(days):
                    weekly[day] = parsed
            except ValueError as exc:
                issues.add((*path, "hours", days), f"{days}: {exc}")
        try:
            ZoneInfo(spec.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            issues.add((*path, "timezone"), f"unknown time zone {spec.timezone!r}")
            return
        closed: set[date] = set(spec.holidays)
        if spec.holiday_country:
            try:
                years = spec.holiday_years or list(range(2020, 2036))
                closed |= set(holiday_data.country_holidays(spec.holiday_country, years=years))
            except NotImplementedError:
                issues.add((*path, "holiday_country"),
                           f"unknown holiday country {spec.holiday_country!r}")
        if not any(weekly):
            issues.add((*path, "hours"), "a calendar needs at least one open day")
        self.calendars[name] = Calendar(name, spec.timezone, tuple(weekly), frozenset(closed))

    def _claim_id(self, rule_id: str, issues: Issues, path: KeyPath) -> bool:
        """Record where a rule id is defined; False (and an issue) if it already was."""
        where = f"{issues.file}:{issues.doc.line(path) if issues.doc else 1}"
        first = self.ids.setdefault(rule_id, where)
        if first != where:
            issues.add((*path, "id"), f"duplicate rule id (first at {first})", rule_id)
            return False
        return True

    @staticmethod
    def _fingerprint(spec: RuleSpec, rule: OnRule | ExpectRule | RepeatRule) -> str:
        """What makes a rule's entries: its spec (description aside) and its calendar."""
        text = spec.model_dump_json(by_alias=True, exclude={"description"})
        if isinstance(rule, ExpectRule) and rule.deadline.calendar is not None:
            cal = rule.deadline.calendar
            text += repr((cal.timezone, cal.weekly, sorted(cal.holidays)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def finish(self, sink: list[RuleIssue]) -> RuleSet:
        for issues, i, spec in sorted(self.pending_rules, key=lambda p: (p[0].file, p[1])):
            path: KeyPath = ("rules", i)
            if not self._claim_id(spec.id, issues, path):
                continue
            rule = compile_rule(spec, path, issues, self.calendars)
            if rule is not None:
                self.fingerprints[spec.id] = self._fingerprint(spec, rule)
            if isinstance(rule, OnRule):
                self.on.append(rule)
            elif isinstance(rule, ExpectRule):
                self.expect.append(rule)
            elif isinstance(rule, RepeatRule):
                self.repeat.append(rule)
        alert_ids: set[str] = set()
        for issues, i, aspec in self.pending_alerts:
            path = ("alerts", i)
            if aspec.id in alert_ids:
                issues.add((*path, "id"), "duplicate alert id", aspec.id)
                continue
            alert_ids.add(aspec.id)
            alert = compile_alert(aspec, path, issues, set(self.ids))
            if alert is not None:
                self.alerts.append(alert)
        on, repeat, expect = tuple(self.on), tuple(self.repeat), tuple(self.expect)
        return RuleSet(
            settings=self.settings or Settings(), on_rules=on, expect_rules=expect,
            repeat_rules=repeat, alerts=tuple(self.alerts), calendars=dict(self.calendars),
            sources=tuple(self.files), by_type=RuleSet.index(on, repeat, expect),
            fingerprints=dict(self.fingerprints),
        )

