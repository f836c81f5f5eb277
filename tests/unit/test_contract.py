"""One event contract: the published JSON Schemas and the codec accept and refuse the same records.

Records are generated near the contract's edges (valid events of every catalogue type, then
mutated: fields dropped, retyped, unknown fields, odd times, channels, data values) in both the
canonical and the CloudEvents form; for each one the codec's verdict must equal the schema's.
Transport limits the schema cannot express (size, depth, 64-bit integers, non-finite numbers)
are outside the generated values and tested in test_codec_limits.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from valeur_monitor.catalogue import active
from valeur_monitor.catalogue.model import FieldSpec
from valeur_monitor.catalogue.schema import render
from valeur_monitor.codec import decode
from valeur_monitor.engine.event import CHANNELS
from valeur_monitor.errors import EventError

pytestmark = pytest.mark.unit
STREAMS = Path(__file__).resolve().parents[2] / "streams"
CATALOGUE = active()


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((STREAMS / name).read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


CANONICAL = _validator("events.v1.schema.json")
CLOUD = _validator("cloudevents.v1.schema.json")

# -- values ---------------------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=6)
good_times = st.builds(
    lambda y, mo, d, h, mi, s, frac, off: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
                                          f"{frac}{off}",
    st.integers(1970, 8999), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
    st.integers(0, 59), st.integers(0, 59), st.sampled_from(["", ".5", ".123", ".123456789"]),
    st.sampled_from(["Z", "z", "+01:00", "-05:30", "+14:00", "-23:59"]))
odd_times = st.sampled_from([
    "2026-11-02T09:15:00", "20261102T100000Z", "2026-W45-1T10:00:00Z", "2026-02-30T10:00:00Z",
    "2024-02-29T10:00:00Z", "2026-11-02 09:15:00Z", "2026-11-02T24:00:00Z", "2026-11-02T09:15:60Z",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59Z", "1969-12-31T23:00:00-02:00",
    "1970-01-01T00:00:00+01:00", "8999-12-31T23:59:59-12:00", "2026-11-02T09:15:00+24:00",
    "2026-11-02T09:15:00Z\n", "2026-11-02T09:15Z", "2026-11-02t09:15:00z", "yesterday", "",
    "2026-11-02T09:15:00.Z", "٢٠٢٦-11-02T09:15:00Z"])
times = st.one_of(good_times, odd_times)


def _good_value(spec: FieldSpec) -> st.SearchStrategy[Any]:
    if spec.format == "date-time":
        return good_times
    if spec.enum:
        return st.sampled_from(spec.enum)
    if spec.type == "boolean":
        return st.booleans()
    if spec.type in ("number", "integer"):
        low = spec.minimum if spec.minimum is not None else -1e6
        high = spec.maximum if spec.maximum is not None else 1e6
        ints = st.integers(int(low) if low == int(low) else int(low) + 1, int(high))
        return ints if spec.type == "integer" else ints | st.floats(low, high)
    return st.text(min_size=spec.min_length or 0, max_size=8)


def _odd_value(spec: FieldSpec) -> st.SearchStrategy[Any]:
    edges: list[Any] = [None, [], {}, "", True, 0, -1, 0.5, 3.0, 6, 7, "x", "open", "gold"]
    if spec.minimum is not None:
        edges += [spec.minimum - 0.001, spec.minimum]
    if spec.maximum is not None:
        edges += [spec.maximum, spec.maximum + 0.5]
    return st.sampled_from(edges) | times | json_values


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    etype = draw(st.sampled_from(CATALOGUE.names()))
    spec = CATALOGUE.types[etype]
    data: dict[str, Any] = {}
    for field in (*CATALOGUE.common, *spec.fields):
        if field.name in spec.required or draw(st.booleans()):
            data[field.name] = draw(_good_value(field))
    record: dict[str, Any] = {"id": draw(st.text(min_size=1, max_size=6)), "type": etype,
                              "time": draw(good_times), "customer": "c1"}
    for name in ("ref", "source", "team"):
        if draw(st.booleans()):
            record[name] = draw(st.text(max_size=6))
    if draw(st.booleans()):
        record["channel"] = draw(st.sampled_from(CHANNELS))
    if data or draw(st.booleans()):
        record["data"] = data
    if draw(st.booleans()):   # the CloudEvents form of the same event
        record = {"specversion": "1.0", **record, "source": draw(st.text(min_size=1, max_size=4))}
        record[draw(st.sampled_from(["customer", "subject"]))] = record.pop("customer")
        if draw(st.booleans()):
            record["datacontenttype"] = "application/json"
    for _ in range(draw(st.integers(0, 3))):
        _mutate(draw, record, spec.fields)
    return record


def _mutate(draw: st.DrawFn, record: dict[str, Any], fields: tuple[FieldSpec, ...]) -> None:
    what = draw(st.sampled_from(["drop", "retype", "unknown", "time", "channel", "data_value",
                                 "data_drop", "data_extra", "type", "empty", "specversion",
                                 "cloud_field"]))
    keys = sorted(record)
    if what == "drop" and keys:
        record.pop(draw(st.sampled_from(keys)))
    elif what == "retype" and keys:
        record[draw(st.sampled_from(keys))] = draw(json_values)
    elif what == "unknown":
        record[draw(st.sampled_from(["extra", "Subject", "x1", "a" * 21, "ext-1", "é"]))] = 1
    elif what == "time":
        record["time"] = draw(times)
    elif what == "channel":
        record["channel"] = draw(st.sampled_from(["pigeon", "", "Phone", *CHANNELS]))
    elif what == "type":
        record["type"] = draw(st.sampled_from(["contact.teleported", "", *CATALOGUE.names()]))
    elif what == "empty":
        record[draw(st.sampled_from(["id", "customer", "subject", "source"]))] = ""
    elif what == "specversion":
        record["specversion"] = draw(st.sampled_from(["1.0", "0.3", 1.0]))
    elif what == "cloud_field":
        record[draw(st.sampled_from(["subject", "dataschema", "datacontenttype"]))] = draw(
            st.sampled_from(["c2", "text/plain", "application/json"]))
    elif isinstance(record.get("data"), dict):
        data = record["data"]
        declared = [f for f in (*CATALOGUE.common, *fields)]
        if what == "data_value" and declared:
            field = draw(st.sampled_from(declared))
            data[field.name] = draw(_odd_value(field))
        elif what == "data_drop" and data:
            data.pop(draw(st.sampled_from(sorted(data))))
        elif what == "data_extra":
            data[draw(st.text(max_size=5))] = draw(json_values)


def _schema_accepts(record: dict[str, Any]) -> bool:
    validator = CLOUD if "specversion" in record else CANONICAL
    return bool(validator.is_valid(record))


def _codec_accepts(record: dict[str, Any]) -> tuple[bool, str]:
    try:
        decode(orjson.dumps(record))
    except EventError as exc:
        return False, f"{exc.reason}: {exc.detail}"
    return True, "accepted"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
@example({"id": "e", "type": "request.opened", "time": "2026-11-02T10:00:00Z", "customer": "c",
          "extra": 1})
@example({"id": "e", "type": "request.opened", "time": "2026-11-02T10:00:00Z", "customer": "c",
          "channel": "pigeon"})
@example({"id": "e", "type": "survey.answered", "time": "2026-11-02T10:00:00Z", "customer": "c",
          "data": {"score": 7}})
@example({"id": "e", "type": "request.resolved", "time": "2026-11-02T10:00:00Z", "customer": "c",
          "data": {"agent_replies": 2.0}})
def test_schema_and_codec_agree(record: dict[str, Any]) -> None:
    schema = _schema_accepts(record)
    codec, why = _codec_accepts(record)
    assert schema == codec, (record, why,
                             [e.message for e in (CLOUD if "specversion" in record
                                                  else CANONICAL).iter_errors(record)][:3])


def test_both_verdicts_are_exercised() -> None:
    """The generator reaches both sides of the contract (so agreement is not vacuous)."""
    verdicts: set[bool] = set()

    @settings(max_examples=200, deadline=None, database=None)
    @given(records())
    def collect(record: dict[str, Any]) -> None:
        verdicts.add(_codec_accepts(record)[0])

    collect()
    assert verdicts == {True, False}


def test_published_schemas_are_generated_from_the_catalogue() -> None:
    for name, text in render(CATALOGUE).items():
        assert (STREAMS / name).read_text() == text, (
            f"streams/{name} is out of date: run `valeur-monitor catalogue schemas`")
