"""The published OpenAPI document: `python -m valeur_monitor.api.openapi > docs/openapi.json`."""

from __future__ import annotations

import json
from typing import Any

from valeur_monitor.api.app import build


def document() -> dict[str, Any]:
    return build().openapi()


def text() -> str:
    """The document as checked in (sorted keys, 2-space indent, final newline)."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(text(), end="")
