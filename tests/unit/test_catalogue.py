"""The open event catalogue: shipped types, the deployment's own, file:line errors, its users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from valeur_monitor import catalogue
from valeur_monitor.catalogue.model import Catalogue, EventType, FieldSpec
from valeur_monitor.cli.main import app
from valeur_monitor.codec import decode
from valeur_monitor.engine.rules import load_rules_text
from valeur_monitor.errors import CatalogueError, EventError, RuleLoadError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

NEW_TYPES: dict[str, tuple[set[str], dict[str, str]]] = {
    "request.assignee_changed": (set(), {"assignee": "string", "group": "string"}),
    "call.queued": ({"queue"}, {"queue": "string"}),
    "call.answered": ({"queue", "wait_s"}, {"queue": "string", "wait_s": "number"}),
    "call.abandoned": ({"queue", "wait_s"}, {"queue": "string", "wait_s": "number"}),
    "call.timed_out": ({"queue", "wait_s"}, {"queue": "string", "wait_s": "number"}),
    "call.transferred": (set(), {"to": "string"}),
    "call.completed": (set(), {"talk_s": "number"}),
    "complaint.filed": (set(), {"public": "boolean", "topic": "string"}),
}
OWN = """version: 1
types:
  parcel.delivered:
    description: A parcel reached the customer.
    data:
      properties:
        carrier: {type: string, minLength: 1}
        late_h: {type: number, minimum: 0}
      required: [carrier]
"""


@pytest.fixture(autouse=True)
def shipped_only() -> Iterator[None]:
    """Each test starts and ends with the shipped catalogue active."""
    catalogue.configure([])
    yield
    catalogue.configure([])


def _event(etype: str, data: dict[str, object] | None = None) -> bytes:
    record: dict[str, object] = {"id": "e1", "type": etype, "time": "2026-11-02T10:00:00Z",
                                 "customer": "c1"}
    if data is not None:
        record["data"] = data
    return orjson.dumps(record)


def test_the_shipped_catalogue_has_the_v1_types_and_the_new_ones() -> None:
    shipped = catalogue.active()
    assert len(shipped.types) == 25
    for name, (required, props) in NEW_TYPES.items():
        etype = shipped.types[name]
        assert set(etype.required) == required, name
        assert {f.name: f.type for f in etype.fields} == props, name
        assert etype.description
    for name in ("call.answered", "call.abandoned", "call.timed_out"):
        wait = next(f for f in shipped.types[name].fields if f.name == "wait_s")
        assert wait.minimum == 0


def test_the_codec_takes_the_new_types_with_their_data_checked() -> None:
    assert decode(_event("call.abandoned", {"queue": "billing", "wait_s": 95.5})).data[
        "wait_s"] == 95.5
    assert decode(_event("request.assignee_changed")).type == "request.assignee_changed"
    for etype, data in [("call.abandoned", {"queue": "billing"}),
                        ("call.answered", {"queue": "q", "wait_s": -1}),
                        ("complaint.filed", {"public": "yes"}),
                        ("call.completed", {"talk_s": "long"})]:
        with pytest.raises(EventError) as info:
            decode(_event(etype, data))
        assert info.value.reason == "invalid_data", (etype, data)


def test_a_deployment_adds_its_own_types(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "ours.yaml"
    own.write_text(OWN)
    with pytest.raises(EventError) as info:
        decode(_event("parcel.delivered", {"carrier": "dhl"}))
    assert info.value.reason == "unknown_type"
    monkeypatch.setenv("VALEUR_CATALOGUE", str(own))
    catalogue.configure()
    assert decode(_event("parcel.delivered", {"carrier": "dhl"})).type == "parcel.delivered"
    with pytest.raises(EventError) as info:
        decode(_event("parcel.delivered", {"late_h": 2}))
    assert (info.value.reason, info.value.detail) == (
        "invalid_data", "parcel.delivered needs data.carrier")
    rules = load_rules_text([("r.yml", RULE.format(type="parcel.delivered"))])
    assert "parcel-late" in rules.rule_ids()


RULE = """version: 1
rules:
  - id: parcel-late
    title: Parcel late
    on: {type}
    costs: {{time: 1}}
"""


def test_rules_refuse_a_type_outside_the_catalogue() -> None:
    with pytest.raises(RuleLoadError) as info:
        load_rules_text([("r.yml", RULE.format(type="parcel.delivered"))])
    assert "r.yml:5" in str(info.value) and "parcel.delivered" in str(info.value)
    assert load_rules_text([("r.yml", RULE.format(type="call.abandoned"))]).rule_ids()


@pytest.mark.parametrize(("text", "line", "message"), [
    ("version: 1\ntypes:\n  a.b:\n    description: x\n    colour: red\n", 5,
     "unknown key 'colour'"),
    ("version: 1\ntypes:\n  a.b:\n    description: x\n    data:\n      properties:\n"
     "        n: {type: number, minimun: 0}\n", 7, "unknown key 'minimun'"),
    ("version: 1\ntypes:\n  a.b:\n    description: x\n    data:\n      properties:\n"
     "        n: {type: string}\n      required: [m]\n", 8, "'m' is not in `properties`"),
    ("version: 1\ntypes:\n  Bad:\n    description: x\n", 3, "must look like"),
    ("version: 1\ntypes:\n  a.b:\n    description: x\n    data:\n      properties:\n"
     "        n: {type: boolean, minimum: 1}\n", 7, "need type number"),
    ("version: 1\ntypes:\n  request.opened:\n    description: again\n", 3, "already declared"),
    ("version: 2\ntypes: {}\n", 1, "version"),
    ("version: 1\ntypes:\n  a.b:\n    description: x\n  a.b:\n    description: y\n", 5,
     "duplicate key"),
    ("version: 1\ntypes: [\n", 3, "YAML syntax error"),
])
def test_catalogue_files_are_refused_with_file_and_line(text: str, line: int,
                                                        message: str) -> None:
    with pytest.raises(CatalogueError) as info:
        catalogue.load_catalogue_text([("shipped.yaml", (ROOT / "streams" / "catalogue.yaml")
                                        .read_text()), ("ours.yaml", text)])
    found = [i for i in info.value.issues if i.file == "ours.yaml"]
    assert found, info.value.issues
    assert any(i.line == line and message in i.message for i in found), found


def test_catalogue_check_command(tmp_path: Path) -> None:
    runner = CliRunner()
    own = tmp_path / "ours.yaml"
    own.write_text(OWN)
    ok = runner.invoke(app, ["catalogue", "check", str(own)])
    assert ok.exit_code == 0, ok.output
    assert "26 event types (25 shipped, 1 from the deployment)" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(OWN.replace("minLength: 1", "min_length: 1"))
    refused = runner.invoke(app, ["catalogue", "check", str(bad)])
    assert refused.exit_code == 1
    assert f"{bad}:7:" in refused.output and "unknown key 'min_length'" in refused.output
    checked = runner.invoke(app, ["catalogue", "schemas", "--check", "--out",
                                  str(ROOT / "streams")])
    assert checked.exit_code == 0, checked.output


def test_rules_check_takes_the_deployment_catalogue(tmp_path: Path) -> None:
    own = tmp_path / "ours.yaml"
    own.write_text(OWN)
    rules = tmp_path / "r.yml"
    rules.write_text(RULE.format(type="parcel.delivered"))
    runner = CliRunner()
    refused = runner.invoke(app, ["rules", "check", str(rules)])
    assert refused.exit_code == 1 and "unknown event type 'parcel.delivered'" in refused.output
    ok = runner.invoke(app, ["rules", "check", str(rules), "--catalogue", str(own)])
    assert ok.exit_code == 0, ok.output


specs = st.builds(
    FieldSpec, name=st.just("f"),
    type=st.sampled_from([None, "string", "number", "integer", "boolean"]),
    enum=st.none() | st.lists(st.sampled_from(["a", "b", "", "é"]), min_size=1,
                              unique=True).map(tuple),
    minimum=st.none() | st.integers(-3, 3) | st.floats(-3, 3),
    maximum=st.none() | st.integers(-3, 3) | st.floats(-3, 3),
    min_length=st.none() | st.integers(0, 3),
    format=st.none() | st.just("date-time"))
values = (st.none() | st.booleans() | st.integers(-5, 5) | st.integers()
          | st.floats(allow_nan=False) | st.text(max_size=4)
          | st.sampled_from(["a", "b", "", "2026-11-02T10:00:00Z"])
          | st.lists(st.integers(), max_size=2))


@settings(max_examples=600, deadline=None, database=None)
@given(specs, values)
def test_check_data_shortcuts_agree_with_each_propertys_own_check(spec: FieldSpec,
                                                                  value: object) -> None:
    """check_data decides common values without calling `problem` (a set look-up, a length,
    a range): it must say exactly what `problem` says, for any declared property."""
    cat = Catalogue({"t": EventType("t", "a type", fields=(spec,))})
    problem = spec.problem(value)
    assert cat.check_data("t", {"f": value}) == (None if problem is None
                                                 else f"data.f {problem}")
