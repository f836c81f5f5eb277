"""The event catalogue as data: types, the schema of their `data`, and the checks it implies."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from valeur_monitor.engine.event import parse_time


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

    # What `check_data` accepts without calling `problem` (anything else asks `problem`):
    # The strings that satisfy it when that is all it checks (an enum): a set look-up
    valid_strings: frozenset[str] = field(init=False, repr=False, compare=False)
    # strings at least this long satisfy it (a plain string: 0; with minLength: that), -1: none
    min_chars: int = field(init=False, repr=False, compare=False)
    # booleans satisfy it (a plain boolean property)
    any_bool: bool = field(init=False, repr=False, compare=False)
    # integers in [low, high] satisfy it (a number or integer property without enum)
    int_range: tuple[float, float] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plain = self.enum is None and self.format is None
        object.__setattr__(self, "valid_strings", frozenset(
            self.enum if self.enum is not None and self.type in (None, "string")
            and self.min_length is None and self.format is None else ()))
        object.__setattr__(self, "min_chars", (self.min_length or 0) if plain
                           and self.type == "string" else -1)
        object.__setattr__(self, "any_bool", plain and self.type == "boolean")
        object.__setattr__(self, "int_range", (
            self.minimum if self.minimum is not None else -math.inf,
            self.maximum if self.maximum is not None else math.inf)
            if plain and self.type in ("number", "integer") else None)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled to spawned shards: rebuilt through __init__ (a frozen dataclass compiled by
        # mypyc refuses the attribute-by-attribute restore of the default protocol).
        return (FieldSpec, (self.name, self.type, self.enum, self.minimum, self.maximum,
                            self.min_length, self.format, self.description))

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

    def __reduce__(self) -> tuple[Any, ...]:
        return (EventType, (self.name, self.description, self.fields, self.required,
                            self.data_description, self.where))

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
    _checks: dict[str, tuple[tuple[str, ...], dict[str, FieldSpec]]] = field(
        default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Per type: its required fields and every declared property by name (a record's data
        # has few keys: checking those is cheaper than walking the declarations).
        for name, etype in self.types.items():
            declared = {f.name: f for f in (*self.common, *etype.fields)}
            self._checks[name] = (etype.required, declared)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Catalogue, (self.types, self.common, self.files))

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
        required, declared = self._checks[etype]
        for name in required:
            if name not in data:
                return f"{etype} needs data.{name}"
        for name, value in data.items():
            spec = declared.get(name)
            if spec is None:
                continue
            # the common valid values, decided here without a call (exactly what `problem`
            # accepts: see FieldSpec.__post_init__); anything else gets `problem`'s verdict
            kind = type(value)
            if kind is str:
                if value in spec.valid_strings or 0 <= spec.min_chars <= len(value):
                    continue
            elif kind is int:
                bounds = spec.int_range
                if bounds is not None and bounds[0] <= value <= bounds[1]:
                    continue
            elif kind is bool and spec.any_bool:
                continue
            problem = spec.problem(value)
            if problem is not None:
                return f"data.{name} {problem}"
        return None
