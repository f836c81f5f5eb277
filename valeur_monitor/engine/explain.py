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


def render(template: str | None, outcome: str, values: dict[str, Any], event: Event | None) -> str:
    """Fill `template` (or the outcome's default) from `values` and the event's data fields."""
    text = template or DEFAULTS[outcome]

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("data."):
            value: Any = event.data if event is not None else {}
            for part in name[5:].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return "?" if value is None else str(value)
        found = values.get(name)
        return "?" if found is None else str(found)

    return _PLACEHOLDER.sub(fill, text)
