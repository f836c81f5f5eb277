"""Load catalogue files: unknown keys refused, every problem reported with `file:line`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from valeur_monitor.catalogue.model import Catalogue, EventType, FieldSpec
from valeur_monitor.engine.rules.issues import Issues, validate
from valeur_monitor.engine.rules.yamlsource import Path as KeyPath
from valeur_monitor.engine.rules.yamlsource import parse_yaml, yaml_files
from valeur_monitor.errors import CatalogueError, RuleIssue

TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
Number = StrictInt | StrictFloat


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PropertySpec(_Strict):
    type: Literal["string", "number", "integer", "boolean"] | None = None
    enum: list[StrictStr] | None = Field(default=None, min_length=1)
    minimum: Number | None = None
    maximum: Number | None = None
    minLength: StrictInt | None = Field(default=None, ge=0)
    format: Literal["date-time"] | None = None
    description: StrictStr = ""


class DataSpec(_Strict):
    description: StrictStr = ""
    properties: dict[str, PropertySpec] = Field(default_factory=dict)
    required: list[StrictStr] = Field(default_factory=list)


class TypeSpec(_Strict):
    description: StrictStr = Field(min_length=1)
    data: DataSpec | None = None


class FileSpec(_Strict):
    version: Literal[1]
    common_data: DataSpec | None = None
    types: dict[str, TypeSpec] = Field(default_factory=dict)


catalogue_files = yaml_files   # one rule for directories and files


def load_catalogue(paths: Sequence[str | Path]) -> Catalogue:
    """Read and merge catalogue files; CatalogueError lists every problem found."""
    texts: list[tuple[str, str]] = []
    issues: list[RuleIssue] = []
    for file in catalogue_files(paths):
        try:
            texts.append((str(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(RuleIssue(str(file), 1, None,
                                    f"cannot read: {getattr(exc, 'strerror', None) or exc}"))
    if issues:
        raise CatalogueError(issues)
    return load_catalogue_text(texts)


def load_catalogue_text(sources: Sequence[tuple[str, str]]) -> Catalogue:
    """Merge catalogue files given as (name, text) pairs; a type may be declared only once."""
    issues: list[RuleIssue] = []
    types: dict[str, EventType] = {}
    common: dict[str, FieldSpec] = {}
    common_from = ""
    specs: list[tuple[Issues, FileSpec]] = []
    if not sources:
        issues.append(RuleIssue("-", 1, None, "no catalogue files"))
    for name, text in sources:
        try:
            doc = parse_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc)
            issues.append(RuleIssue(name, mark.line + 1 if mark else 1, None,
                                    f"YAML syntax error: {problem}"))
            continue
        where = Issues(name, doc, issues)
        for path, _line in doc.duplicates:
            where.add(path, f"duplicate key {path[-1]!r}")
        if not isinstance(doc.data, dict):
            where.add((), "a catalogue file is a mapping with `version: 1` and `types:`")
            continue
        spec = validate(FileSpec, doc.data, (), where)
        if spec is None:
            continue
        if spec.common_data is not None:
            if common_from:
                where.add(("common_data",), f"common_data already given in {common_from}")
            else:
                common_from = name
                common = {f.name: f for f in _fields(spec.common_data, ("common_data",), where,
                                                     None)}
        specs.append((where, spec))
    for where, spec in specs:
        for tname, tspec in spec.types.items():
            at: KeyPath = ("types", tname)
            line = f"{where.file}:{where.doc.line(at) if where.doc else 1}"
            if not TYPE_NAME.match(tname):
                where.add(at, f"type name {tname!r} must look like `family.what` "
                                "(lower case, dot-separated)", tname)
                continue
            if tname in types:
                where.add(at, f"type {tname!r} already declared at {types[tname].where}", tname)
                continue
            data = tspec.data or DataSpec()
            fields = _fields(data, (*at, "data"), where, tname)
            for fspec in fields:
                if fspec.name in common:
                    where.add((*at, "data", "properties", fspec.name),
                              f"data.{fspec.name} is already declared in common_data", tname)
            types[tname] = EventType(tname, tspec.description.strip(), fields,
                                     tuple(data.required), data.description, line)
    if issues:
        issues.sort(key=lambda i: (i.file, i.line))
        raise CatalogueError(issues)
    return Catalogue(types, tuple(common.values()), tuple(name for name, _ in sources))


def _fields(data: DataSpec, path: KeyPath, where: Issues,
            tname: str | None) -> tuple[FieldSpec, ...]:
    out: list[FieldSpec] = []
    for fname, prop in data.properties.items():
        at: KeyPath = (*path, "properties", fname)
        problems = []
        if prop.type is None and prop.enum is None:
            problems.append("needs a `type` or an `enum`")
        if prop.enum is not None and prop.type not in (None, "string"):
            problems.append("an `enum` lists strings: its type can only be string")
        numeric = prop.type in ("number", "integer")
        if (prop.minimum is not None or prop.maximum is not None) and not numeric:
            problems.append("`minimum`/`maximum` need type number or integer")
        if (prop.minimum is not None and prop.maximum is not None
                and prop.minimum > prop.maximum):
            problems.append("`minimum` is above `maximum`")
        if prop.minLength is not None and prop.type != "string":
            problems.append("`minLength` needs type string")
        if prop.format is not None and prop.type != "string":
            problems.append("`format` needs type string")
        for problem in problems:
            where.add(at, f"data.{fname}: {problem}", tname)
        if problems:
            continue
        out.append(FieldSpec(
            fname, prop.type or ("string" if prop.enum else None),
            tuple(prop.enum) if prop.enum else None,
            None if prop.minimum is None else float(prop.minimum),
            None if prop.maximum is None else float(prop.maximum),
            prop.minLength, prop.format, prop.description.strip()))
    names = {f for f in data.properties}
    for i, req in enumerate(data.required):
        if req not in names:
            where.add((*path, "required", i), f"required field {req!r} is not in `properties`",
                      tname)
    return tuple(out)
