"""Canonical event dict -> CloudEvents 1.0 structured JSON (the other form the codec accepts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_SOURCE = "valeur-monitor-simulate"


def to_cloudevent(record: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudEvents form: subject = customer, extensions ref/channel/team, same data."""
    out: dict[str, Any] = {
        "specversion": "1.0",
        "id": record["id"],
        "source": record.get("source") or DEFAULT_SOURCE,
        "type": record["type"],
        "time": record["time"],
        "subject": record["customer"],
    }
    for name in ("ref", "channel", "team"):
        value = record.get(name)
        if value:
            out[name] = value
    data = record.get("data")
    if data:
        out["datacontenttype"] = "application/json"
        out["data"] = data
    return out
