"""One-line human explanations: templates with {placeholders}, never code."""

from __future__ import annotations

import re
from typing import Any

from valeur_monitor.engine.event import Event

DEFAULTS = {
    "matched": "{title}",
    "kept": "{title}: kept for {ref} after {waited}",
    "broken": "{title}: broken for {ref}, deadline {deadline} passed",
    "late": "{title}: kept late for {ref}, {overdue} after the deadline",
    "repeat": "{title}: contact #{count} about {key} within {within}",
    "warning": "{title}: {ref} is due at {deadline}",
}
FIELDS = frozenset({"title", "rule", "ref", "waited", "deadline", "overdue", "count", "key",
                    "within", "type", "team", "channel", "customer", "sla"})
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")


def unknown_placeholders(template: str) -> list[str]:
    """Placeholders a template uses that no explanation can fill (checked at load)."""
    return [name for name in _PLACEHOLDER.findall(template)
            if name not in FIELDS and not name.startswith("data.")]


class Template:
    """A template split once into literal text and placeholders; `needs` says which fields
    it reads, so the costly ones (formatted times and durations) are computed only if used."""

    __slots__ = ("needs", "parts")

    def __init__(self, text: str) -> None:
        parts: list[tuple[str, str | None]] = []
        last = 0
        for match in _PLACEHOLDER.finditer(text):
            parts.append((text[last:match.start()], match.group(1)))
            last = match.end()
        parts.append((text[last:], None))
        self.parts = tuple(parts)
        self.needs = frozenset(name for _, name in parts if name is not None)

    def render(self, values: dict[str, Any], event: Event | None) -> str:
        """Fill from `values` and the event's data fields; '?' for anything missing."""
        out: list[str] = []
        for literal, name in self.parts:
            out.append(literal)
            if name is None:
                continue
            found: Any
            if name.startswith("data."):
                found = event.data if event is not None else {}
                for part in name[5:].split("."):
                    found = found.get(part) if isinstance(found, dict) else None
            else:
                found = values.get(name)
            out.append("?" if found is None else str(found))
        return "".join(out)


_compiled: dict[str, Template] = {}


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
