"""Compiled source mappings: immutable, with CEL expressions compiled once at load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from valeur_monitor.engine.expressions import Expression
from valeur_monitor.sources.spec import AuthSpec, IdentitySpec

# Names every mapping expression may read; `each:` adds its own, `recall:` adds `memo`.
BASE_VARIABLES = frozenset({"body", "maps", "received"})


@dataclass(frozen=True)
class CustomerRef:
    """One way to find the customer: an identity kind and the expression giving its value."""

    kind: str
    expr: Expression


@dataclass(frozen=True)
class Emit:
    """The canonical event a mapping produces for each binding it matches."""

    type: str
    id: Expression | None
    time: Expression
    customers: tuple[CustomerRef, ...]
    ref: Expression | None
    channel: Expression | None
    team: Expression | None
    data: tuple[tuple[str, Expression], ...]


@dataclass(frozen=True)
class Remember:
    key: Expression
    values: tuple[tuple[str, Expression], ...]


@dataclass(frozen=True)
class Mapping:
    """One entry of `mappings:`: iterate, test, remember, emit."""

    name: str
    line: int
    each: tuple[tuple[str, Expression], ...]
    when: Expression | None
    recall: Expression | None
    remember: Remember | None
    emit: Emit | None


@dataclass(frozen=True)
class Source:
    """A loaded source mapping file."""

    name: str
    file: str
    title: str
    format: str
    auth: AuthSpec
    identity: IdentitySpec
    unmatched: str
    memory: int
    maps: dict[str, dict[str, Any]]
    mappings: tuple[Mapping, ...]

    def emitted_types(self) -> list[str]:
        return sorted({m.emit.type for m in self.mappings if m.emit is not None})
