"""Load source mapping files: every problem collected with `file:line` and mapping name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from valeur_monitor import catalogue as event_catalogue
from valeur_monitor.engine.durations import parse_duration
from valeur_monitor.engine.expressions import Expression
from valeur_monitor.engine.rules.issues import Issues, validate
from valeur_monitor.engine.rules.yamlsource import Path as KeyPath
from valeur_monitor.engine.rules.yamlsource import parse_yaml, yaml_files
from valeur_monitor.errors import RuleIssue, SourceLoadError
from valeur_monitor.identity.resolve import KINDS
from valeur_monitor.shipped import shipped
from valeur_monitor.sources.model import (
    BASE_VARIABLES,
    CustomerRef,
    Emit,
    Mapping,
    Remember,
    Source,
)
from valeur_monitor.sources.spec import EmitSpec, MappingSpec, SourceSpec

SHIPPED = shipped("streams", "sources")


def known_types() -> frozenset[str]:
    """Event types a mapping may emit: those the codec accepts."""
    return frozenset(event_catalogue.active().types)


source_files = yaml_files   # one rule for directories and files


def default_source_paths() -> list[str]:
    """./streams/sources when present, else the mappings shipped beside the package."""
    local = Path("streams") / "sources"
    return [str(local if local.is_dir() else SHIPPED)]


def load_sources(paths: Sequence[str | Path]) -> dict[str, Source]:
    """Load mapping files; SourceLoadError listing every problem found."""
    files = source_files(paths)
    texts: list[tuple[str, str]] = []
    issues: list[RuleIssue] = []
    if not files:
        issues.append(RuleIssue(", ".join(str(p) for p in paths) or "-", 1, None,
                                "no source mapping files"))
    for file in files:
        try:
            texts.append((str(file), file.read_text(encoding="utf-8")))
        except OSError as exc:
            issues.append(RuleIssue(str(file), 1, None, f"cannot read: {exc.strerror}"))
    if issues:
        raise SourceLoadError(issues)
    return load_sources_text(texts)


def load_sources_text(files: Sequence[tuple[str, str]]) -> dict[str, Source]:
    """Compile mapping files given as (name, text) pairs."""
    issues: list[RuleIssue] = []
    sources: dict[str, Source] = {}
    for name, text in files:
        source = _compile_file(name, text, issues)
        if source is None:
            continue
        if source.name in sources:
            issues.append(RuleIssue(name, 1, None, f"source {source.name!r} already defined in "
                                    f"{sources[source.name].file}"))
            continue
        sources[source.name] = source
    if issues:
        issues.sort(key=lambda i: (i.file, i.line))
        raise SourceLoadError(issues)
    return sources


def _compile_file(name: str, text: str, sink: list[RuleIssue]) -> Source | None:
    try:
        doc = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        sink.append(RuleIssue(name, line, None, f"YAML syntax error: {problem}"))
        return None
    issues = Issues(name, doc, sink)
    for path, _line in doc.duplicates:
        issues.add(path, f"duplicate key {path[-1]!r}")
    if not isinstance(doc.data, dict):
        issues.add((), "a source file is a mapping with `version: 1`, `source:` and `mappings:`")
        return None
    before = len(sink)
    spec: SourceSpec | None = validate(SourceSpec, doc.data, (), issues)
    if spec is None:
        # Still check the mappings (every problem at once) when only top-level keys are wrong.
        known = {k: v for k, v in doc.data.items() if k in SourceSpec.model_fields}
        spec = validate(SourceSpec, known, (), Issues(name, doc, []))
        if spec is None:
            return None
    try:
        parse_duration(spec.auth.max_skew)
    except ValueError as exc:
        issues.add(("auth", "max_skew"), str(exc))
    if spec.auth.kind == "shared_secret" and not spec.auth.header:
        issues.add(("auth",), "`shared_secret` needs `header:` (the header carrying the secret)")
    mappings: list[Mapping] = []
    names: set[str] = set()
    for i, raw in enumerate(spec.mappings):
        mname = raw.get("name") if isinstance(raw, dict) else None
        mspec: MappingSpec | None = validate(MappingSpec, raw, ("mappings", i), issues, mname)
        if mspec is None:
            continue
        if mspec.name in names:
            issues.add(("mappings", i, "name"), "duplicate mapping name", mspec.name)
        names.add(mspec.name)
        mapping = _Compiler(issues, ("mappings", i), mspec.name, spec).mapping(mspec)
        if mapping is not None:
            mappings.append(mapping)
    if not spec.mappings:
        issues.add(("mappings",), "no mappings")
    if len(sink) > before:
        return None
    return Source(name=spec.source, file=name, title=spec.title or spec.source,
                  format=spec.format, auth=spec.auth, identity=spec.identity,
                  unmatched=spec.unmatched, memory=spec.memory, maps=spec.maps,
                  mappings=tuple(mappings))


class _Compiler:
    """Compiles one mapping; the variables in scope grow with `each:` and `recall:`."""

    def __init__(self, issues: Issues, path: KeyPath, name: str, spec: SourceSpec) -> None:
        self.issues, self.path, self.name, self.spec = issues, path, name, spec
        self.scope = set(BASE_VARIABLES)
        self.ok = True

    def expr(self, source: Any, where: KeyPath) -> Expression | None:
        if source is None:
            return None
        if not isinstance(source, str):
            self.fail(where, "expected a CEL expression (a string; quote literals: '\"phone\"')")
            return None
        try:
            return Expression(source, frozenset(self.scope))
        except ValueError as exc:
            self.fail(where, f"bad expression: {exc}")
            return None

    def fail(self, where: KeyPath, message: str) -> None:
        self.issues.add((*self.path, *where), message, self.name)
        self.ok = False

    def mapping(self, spec: MappingSpec) -> Mapping | None:
        each: list[tuple[str, Expression]] = []
        for var, source in spec.each.items():
            if not var.isidentifier() or var in BASE_VARIABLES or var == "memo":
                self.fail(("each", var), f"{var!r} cannot name an `each` variable")
                continue
            compiled = self.expr(source, ("each", var))
            self.scope.add(var)
            if compiled is not None:
                each.append((var, compiled))
        recall = self.expr(spec.recall, ("recall",))
        if spec.recall is not None:
            self.scope.add("memo")
        when = self.expr(spec.when, ("when",))
        remember = None
        if spec.remember is not None:
            key = self.expr(spec.remember.key, ("remember", "key"))
            values = [(n, self.expr(v, ("remember", "values", n)))
                      for n, v in spec.remember.values.items()]
            if key is not None:
                remember = Remember(key, tuple((n, e) for n, e in values if e is not None))
        emit = self.emit(spec.emit) if spec.emit is not None else None
        if spec.emit is None and spec.remember is None:
            self.fail((), "a mapping needs `emit:` or `remember:`")
        if not self.ok:
            return None
        line = self.issues.doc.line(self.path) if self.issues.doc else 1
        return Mapping(spec.name, line, tuple(each), when, recall, remember, emit)

    def emit(self, spec: EmitSpec) -> Emit | None:
        if spec.type not in known_types():
            self.fail(("emit", "type"), f"unknown event type {spec.type!r}")
        customers: list[CustomerRef] = []
        raw = spec.customer if isinstance(spec.customer, list) else [spec.customer]
        for i, item in enumerate(raw):
            where: KeyPath = ("emit", "customer", i) if isinstance(spec.customer, list) else (
                "emit", "customer")
            if not isinstance(item, dict) or len(item) != 1:
                self.fail(where, f"a customer is one of {{{': …, '.join(KINDS)}: …}}")
                continue
            kind, source = next(iter(item.items()))
            if kind not in KINDS:
                self.fail(where, f"unknown identity kind {kind!r} ({', '.join(KINDS)})")
                continue
            compiled = self.expr(source, (*where, kind))
            if compiled is not None:
                customers.append(CustomerRef(kind, compiled))
        time = self.expr(spec.time, ("emit", "time"))
        data = tuple((n, e) for n, src in spec.data.items()
                     if (e := self.expr(src, ("emit", "data", n))) is not None)
        if time is None or not customers:
            self.ok = False
            return None
        return Emit(type=spec.type, id=self.expr(spec.id, ("emit", "id")), time=time,
                    customers=tuple(customers), ref=self.expr(spec.ref, ("emit", "ref")),
                    channel=self.expr(spec.channel, ("emit", "channel")),
                    team=self.expr(spec.team, ("emit", "team")), data=data)
