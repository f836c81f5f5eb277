"""The published JSON Schemas (canonical and CloudEvents), generated from the catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from valeur_monitor.catalogue.model import Catalogue, EventType, FieldSpec
from valeur_monitor.engine.event import CHANNELS, TIMESTAMP_PATTERN

SCHEMA_FILES = {"canonical": "events.v1.schema.json", "cloudevents": "cloudevents.v1.schema.json"}
# CloudEvents extension attributes: lower-case letters and digits, at most 20 (the spec's rule).
EXTENSION_PATTERN = "^[a-z0-9]{1,20}$"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _property(spec: FieldSpec) -> dict[str, Any]:
    if spec.format == "date-time":
        out: dict[str, Any] = {"$ref": "#/$defs/timestamp"}
    elif spec.enum is not None:
        out = {"enum": list(spec.enum)}
    else:
        out = {"type": spec.type}
    for key, value in (("minimum", spec.minimum), ("maximum", spec.maximum),
                       ("minLength", spec.min_length)):
        if value is not None:
            out[key] = int(value) if isinstance(value, float) and value.is_integer() else value
    if spec.description:
        out["description"] = spec.description
    return out


def _type_block(etype: EventType) -> dict[str, Any]:
    then: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if etype.required:
        then["required"] = ["data"]
        data["required"] = list(etype.required)
    if etype.fields:
        data["properties"] = {f.name: _property(f) for f in etype.fields}
    if data:
        then["properties"] = {"data": data}
    needs = (f"Requires {', '.join(f'data.{r}' for r in etype.required)}." if etype.required
             else "No required data.")
    optional = [f.name for f in etype.fields if f.name not in etype.required]
    if optional:
        needs += f" Optional data: {', '.join(f'data.{o}' for o in optional)}."
    return {"description": f"{etype.name}: {etype.description} {needs}",
            "if": {"properties": {"type": {"const": etype.name}}, "required": ["type"]},
            "then": then}


def _defs(catalogue: Catalogue) -> dict[str, Any]:
    return {
        "timestamp": {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN,
                      "description": "RFC 3339 date-time WITH an offset (Z or +hh:mm / -hh:mm), "
                                     "local year 1970..8999; a local time without offset is "
                                     "refused."},
        "eventType": {"enum": list(catalogue.names()),
                      "description": "The event type, from streams/catalogue.yaml."},
        "channel": {"enum": list(CHANNELS), "description": "The contact channel."},
    }


def _data(catalogue: Catalogue) -> dict[str, Any]:
    return {"type": "object",
            "description": "Type-specific payload; fields per type are checked in the allOf "
                           "blocks, extra fields are allowed.",
            "properties": {f.name: _property(f) for f in catalogue.common}}


_TYPE = {"$ref": "#/$defs/eventType",
         "description": "The event type, from the catalogue (meanings and data in the allOf "
                        "blocks and docs/events.md)."}


def canonical_schema(catalogue: Catalogue) -> dict[str, Any]:
    """JSON Schema of the canonical event v1 (closed top level, open `data`)."""
    return {
        "$schema": DRAFT, "$id": "urn:valeur-monitor:schema:events:v1",
        "title": "valeur-monitor canonical event, version 1",
        "description": "One support/service event, one JSON object per line (JSONL). `time` is "
                       "event time (when it happened, not when it was sent); RFC 3339 with an "
                       "offset is mandatory. Generated from streams/catalogue.yaml.",
        "type": "object", "required": ["id", "type", "time", "customer"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "minLength": 1, "description": "Idempotency key: unique per "
                   "event; a repeated id is a duplicate and is ignored."},
            "type": _TYPE,
            "time": {"$ref": "#/$defs/timestamp", "description": "Event time: when it happened "
                     "in the source system (RFC 3339 with offset, mandatory)."},
            "customer": {"type": "string", "minLength": 1,
                         "description": "The customer id whose value score the event affects."},
            "ref": {"type": "string", "description": "Ties the events of one obligation "
                    "together: request id for request.*, callback id for callback.*, visit id "
                    "for visit.*, call id for call.*."},
            "source": {"type": "string", "description": "The emitting system (e.g. helpdesk, "
                       "telephony, field-service, survey)."},
            "channel": {"$ref": "#/$defs/channel", "description": "The contact channel."},
            "team": {"type": "string", "description": "The team in charge."},
            "data": _data(catalogue),
        },
        "allOf": [_type_block(t) for t in catalogue.types.values()],
        "$defs": _defs(catalogue),
    }


def cloudevents_schema(catalogue: Catalogue) -> dict[str, Any]:
    """JSON Schema of the same event as CloudEvents 1.0 structured JSON."""
    return {
        "$schema": DRAFT, "$id": "urn:valeur-monitor:schema:cloudevents:v1",
        "title": "valeur-monitor event v1 as CloudEvents 1.0 (structured JSON)",
        "description": "The CloudEvents 1.0 structured-mode JSON form the codec also accepts. "
                       "Same types and data as the canonical event v1; the customer is the "
                       "extension `customer`, else `subject`; ref, channel and team are "
                       "extension attributes. Generated from streams/catalogue.yaml.",
        "type": "object", "required": ["specversion", "id", "source", "type", "time"],
        "anyOf": [{"required": ["subject"]}, {"required": ["customer"]}],
        "properties": {
            "specversion": {"const": "1.0", "description": "CloudEvents version; only 1.0."},
            "id": {"type": "string", "minLength": 1,
                   "description": "Idempotency key (unique per event), as the canonical `id`."},
            "source": {"type": "string", "minLength": 1,
                       "description": "The emitting system (a URI-reference, e.g. helpdesk)."},
            "type": _TYPE,
            "time": {"$ref": "#/$defs/timestamp",
                     "description": "Event time (RFC 3339 with offset, mandatory)."},
            "subject": {"type": "string", "minLength": 1,
                        "description": "The customer id, when the `customer` extension is absent."},
            "customer": {"type": "string", "minLength": 1,
                         "description": "Extension: the customer id (wins over `subject`)."},
            "ref": {"type": "string", "description": "Extension: ties the events of one "
                    "obligation together."},
            "channel": {"$ref": "#/$defs/channel", "description": "Extension: the channel."},
            "team": {"type": "string", "description": "Extension: the team in charge."},
            "datacontenttype": {"const": "application/json",
                                "description": "Optional; when present, application/json."},
            "dataschema": {"type": "string", "description": "Optional dataschema URI (ignored)."},
            "data": _data(catalogue),
        },
        "patternProperties": {EXTENSION_PATTERN: {
            "description": "Other CloudEvents extension attributes: allowed and ignored."}},
        "additionalProperties": False,
        "allOf": [_type_block(t) for t in catalogue.types.values()],
        "$defs": _defs(catalogue),
    }


def render(catalogue: Catalogue) -> dict[str, str]:
    """File name -> JSON text of every published schema."""
    return {SCHEMA_FILES["canonical"]: _dump(canonical_schema(catalogue)),
            SCHEMA_FILES["cloudevents"]: _dump(cloudevents_schema(catalogue))}


def write_schemas(catalogue: Catalogue, directory: Path) -> list[Path]:
    """Write the schemas into `directory`; returns the paths written."""
    written = []
    for name, text in render(catalogue).items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
