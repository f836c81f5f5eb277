"""Problem collection for rule loading: key paths become `file:line`, nothing stops at the first."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from valeur_monitor.engine.durations import parse_duration
from valeur_monitor.engine.rules.yamlsource import Path as KeyPath
from valeur_monitor.engine.rules.yamlsource import YamlDocument
from valeur_monitor.errors import RuleIssue


class Issues:
    """Collects problems of one file; `at` turns a key path into a line."""

    def __init__(self, file: str, doc: YamlDocument | None, sink: list[RuleIssue],
                 warnings: list[RuleIssue] | None = None):
        self.file, self.doc, self.sink = file, doc, sink
        self.warnings = warnings if warnings is not None else []

    def add(self, path: KeyPath, message: str, rule_id: str | None = None) -> None:
        line = self.doc.line(path) if self.doc else 1
        self.sink.append(RuleIssue(self.file, line, rule_id, message))

    def warn(self, path: KeyPath, message: str, rule_id: str | None = None) -> None:
        """A problem that does not stop loading (`rules check` shows it; `--strict` fails)."""
        line = self.doc.line(path) if self.doc else 1
        self.warnings.append(RuleIssue(self.file, line, rule_id, message))

    def pydantic(self, base: KeyPath, error: ValidationError, rule_id: str | None) -> None:
        for item in error.errors():
            loc = tuple(p for p in item["loc"]
                        if not isinstance(p, str) or not p.startswith("function"))
            where = ".".join(str(p) for p in loc) or "(top)"
            message = item["msg"]
            if item["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r}" if loc else "unknown key"
            elif item["type"] == "missing":
                message = f"missing key {where!r}"
            else:
                message = f"{where}: {message}"
            self.add((*base, *loc), message, rule_id)


def validate(model: type[BaseModel], data: Any, path: KeyPath, issues: Issues,
              rule_id: str | None = None) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues.pydantic(path, exc, rule_id)
        return None


def duration(text: str | None, path: KeyPath, issues: Issues, rule_id: str | None,
              *, positive: bool = True) -> int | None:
    if text is None:
        return None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        issues.add(path, str(exc), rule_id)
        return None
    if positive and value <= 0:
        issues.add(path, f"duration {text!r} must be positive", rule_id)
        return None
    return value
