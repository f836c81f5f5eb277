"""One-line human explanations: templates with {placeholders}, never code."""

from __future__ import annotations

import re
from typing import Any, Final

from valeur_monitor.engine.event import Event

DEFAULTS: Final = {
    "matched": "{title}",
    "kept": "{title}: kept for {ref} after {waited}",
    "broken": "{title}: broken for {ref}, deadline {deadline} passed",
    "late": "{title}: kept late for {ref}, {overdue} after the deadline",
    "repeat": "{title}: contact #{count} about {key} within {within}",
    "warning": "{title}: {ref} is due at {deadline}",
}
# The fields an explanation can show, in the order of the row `Template.fill` reads them from
# (a list made per entry: cheaper than a dict of them, no key hashed or inserted)
ROW: Final = ("title", "rule", "ref", "team", "channel", "customer", "type", "waited",
              "deadline", "overdue", "count", "key", "within", "sla")
FIELDS = frozenset(ROW)
PROMISE_FIELDS = frozenset({"waited", "deadline", "overdue"})  # formatted from the promise
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


def unknown_placeholders(template: str) -> list[str]:
    """Placeholders a template uses that no explanation can fill (checked at load)."""
    return [name for name in _PLACEHOLDER.findall(template)
            if name not in FIELDS and not name.startswith("data.")]


class Template:
    """A template split once into literal text and placeholders; `needs` says which fields
    it reads, so the costly ones (formatted times and durations) are computed only if used."""

    __slots__ = ("needs", "parts", "tail", "timed")

    def __init__(self, text: str) -> None:
        # (literal before, the field's place in ROW (-1: none), its data path or None for a
        # plain field), then the tail
        parts: list[tuple[str, int, tuple[str, ...] | None]] = []
        names = []
        last = 0
        for match in _PLACEHOLDER.finditer(text):
            name = match.group(1)
            path = tuple(name[5:].split(".")) if name.startswith("data.") else None
            parts.append((text[last:match.start()], ROW.index(name) if name in ROW else -1,
                          path))
            names.append(name)
            last = match.end()
        self.parts = tuple(parts)
        self.tail = text[last:]
        self.needs = frozenset(names)
        self.timed = not self.needs.isdisjoint(PROMISE_FIELDS)  # shows a formatted time

    def render(self, values: dict[str, Any], event: Event | None) -> str:
        """Fill from `values` and the event's data fields; '?' for anything missing."""
        return self.fill([values.get(name) for name in ROW], event)

    def fill(self, row: list[Any], event: Event | None) -> str:
        """Fill from `row` (the values of ROW's fields, in its order; None: missing) and the
        event's data fields; '?' for anything missing."""
        out: list[str] = []
        for literal, index, path in self.parts:
            found: Any
            if path is None:
                found = row[index] if index >= 0 else None
            else:
                found = event.data if event is not None else {}
                for part in path:
                    found = found.get(part) if isinstance(found, dict) else None
            out.append(literal)
            out.append("?" if found is None else str(found))
        out.append(self.tail)
        return "".join(out)


# Final: a C static when compiled (a plain module global is a dict look-up per call)
_compiled: Final[dict[str, Template]] = {}


def template(text: str | None, outcome: str) -> Template:
    """The compiled template of `text` (or of the outcome's default), compiled once."""
    source = text or DEFAULTS[outcome]
    found = _compiled.get(source)
    if found is None:
        found = _compiled[source] = Template(source)
    return found


def render(text: str | None, outcome: str, values: dict[str, Any], event: Event | None) -> str:
    """Fill `text` (or the outcome's default) from `values` and the event's data fields."""
    return template(text, outcome).render(values, event)
