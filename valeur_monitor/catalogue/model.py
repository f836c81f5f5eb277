"""The event catalogue as data: types, the schema of their `data`, and the checks it implies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from valeur_monitor.engine.event import parse_time

_MISSING: Any = object()


@dataclass(frozen=True)
class FieldSpec:
    """One declared `data` property (a small, closed subset of JSON Schema)."""

    name: str
    type: str | None = None                 # string, number, integer, boolean (None: enum only)
    enum: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    format: str | None = None               # only "date-time"
    description: str = ""

    def problem(self, value: Any) -> str | None:
        """Why `value` does not satisfy this property (JSON Schema semantics), or None."""
        if self.enum is not None and (not isinstance(value, str) or value not in self.enum):
            return f"must be one of {', '.join(sorted(self.enum))}"
        kind = self.type
        if kind == "string":
            if not isinstance(value, str):
                return "must be a string"
            if self.min_length is not None and len(value) < self.min_length:
                return f"must have at least {self.min_length} character(s)"
            if self.format == "date-time":
                try:
                    parse_time(value)
                except ValueError as exc:
                    return str(exc)
        elif kind == "boolean":
            if not isinstance(value, bool):
                return "must be a boolean"
        elif kind in ("number", "integer"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"must be a{'n integer' if kind == 'integer' else ' number'}"
            # JSON Schema: 3.0 is an integer too
            if kind == "integer" and isinstance(value, float) and not value.is_integer():
                return "must be an integer"
            if self.minimum is not None and value < self.minimum:
                return f"must be ≥ {self.minimum:g}"
            if self.maximum is not None and value > self.maximum:
                return f"must be ≤ {self.maximum:g}"
        return None


@dataclass(frozen=True)
class EventType:
    """One event type: what it means and which `data` it carries."""

    name: str
    description: str
    fields: tuple[FieldSpec, ...] = ()
    required: tuple[str, ...] = ()
    data_description: str = ""
    where: str = ""                         # file:line of its declaration

    def kinds(self) -> dict[str, str]:
        """Required data field -> kind (`time`, `enum`, or the JSON type)."""
        by_name = {f.name: f for f in self.fields}
        out: dict[str, str] = {}
        for name in self.required:
            spec = by_name.get(name)
            kind = "str"
            if spec is not None:
                kind = ("time" if spec.format == "date-time" else "enum" if spec.enum
                        else spec.type or "str")
            out[name] = kind
        return out


@dataclass(frozen=True)
class Catalogue:
    """Every accepted event type; `check_data` is the codec's check of one event's `data`."""

    types: dict[str, EventType]
    common: tuple[FieldSpec, ...] = ()
    files: tuple[str, ...] = ()
    _checks: dict[str, tuple[tuple[str, FieldSpec | None], ...]] = field(
        default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Required fields first (a missing one is the clearest message), then every declared one.
        for name, etype in self.types.items():
            declared = (*self.common, *etype.fields)
            checks: list[tuple[str, FieldSpec | None]] = []
            for req in etype.required:
                checks.append((req, None))
            checks.extend((f.name, f) for f in declared)
            self._checks[name] = tuple(checks)

    def __contains__(self, name: object) -> bool:
        return name in self.types

    def names(self) -> tuple[str, ...]:
        return tuple(self.types)

    def required_fields(self) -> dict[str, dict[str, str]]:
        """type -> required data field -> kind (the shape of the former EVENT_TYPES)."""
        return {name: t.kinds() for name, t in self.types.items()}

    def enum(self, etype: str, name: str) -> tuple[str, ...]:
        """The allowed values of an enum data field of `etype` (empty when not an enum)."""
        for spec in self.types[etype].fields:
            if spec.name == name and spec.enum:
                return spec.enum
        return ()

    def check_data(self, etype: str, data: dict[str, Any]) -> str | None:
        """The first problem of `data` for an event of type `etype`, or None when it is valid."""
        for name, spec in self._checks[etype]:
            value = data.get(name, _MISSING)
            if spec is None:
                if value is _MISSING:
                    return f"{etype} needs data.{name}"
            elif value is not _MISSING:
                problem = spec.problem(value)
                if problem is not None:
                    return f"data.{name} {problem}"
        return None
