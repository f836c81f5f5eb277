"""Source mapping files: the shipped ones load; bad ones are refused with every file:line."""

from __future__ import annotations

import pytest

from valeur_monitor.errors import SourceLoadError
from valeur_monitor.sources.loader import load_sources, load_sources_text

from .support import SOURCES

pytestmark = pytest.mark.unit


def test_shipped_mappings_load() -> None:
    sources = load_sources([SOURCES])
    assert {"zendesk", "freshdesk", "zammad"} <= set(sources)
    zendesk = sources["zendesk"]
    assert zendesk.auth.kind == "zendesk_signature"
    assert "request.reopened" in zendesk.emitted_types()


BAD = """\
version: 1
source: demo
auth: {kind: basic}
colour: blue
mappings:
  - name: one
    when: 'body.type =='
    emit:
      type: request.nonsense
      time: body.time
      customer: {fax: body.number}
  - name: two
    emit:
      type: request.opened
      time: body.time
      customer: {email: secret.email}
      surprise: 1
  - name: nothing
  - name: one
    remember: {key: body.a, values: {b: body.b}}
"""


def test_every_problem_is_reported_with_its_line() -> None:
    with pytest.raises(SourceLoadError) as caught:
        load_sources_text([("bad.yaml", BAD)])
    text = [str(i) for i in caught.value.issues]
    assert "bad.yaml:4: unknown key 'colour'" in text
    assert any(t.startswith("bad.yaml:7: [one] bad expression") for t in text), text
    assert any(t.startswith("bad.yaml:9: [one] unknown event type 'request.nonsense'")
               for t in text), text
    assert any(t.startswith("bad.yaml:11: [one] unknown identity kind 'fax'") for t in text), text
    assert any(t.startswith("bad.yaml:19: [one] duplicate mapping name") for t in text), text
    assert any(t.startswith("bad.yaml:17: [two] unknown key 'surprise'") for t in text), text
    assert any(t.startswith("bad.yaml:18: [nothing] a mapping needs `emit:` or `remember:`")
               for t in text), text


def test_unknown_names_in_expressions_are_refused() -> None:
    text = BAD.replace("colour: blue\n", "").replace("      surprise: 1\n", "")
    with pytest.raises(SourceLoadError) as caught:
        load_sources_text([("x.yaml", text)])
    assert any("unknown name(s) secret" in str(i) for i in caught.value.issues)


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(SourceLoadError) as caught:
        load_sources_text([("s.yaml", "version: 1\nsource: [\n")])
    assert str(caught.value.issues[0]).startswith("s.yaml:3: YAML syntax error")


def test_two_files_cannot_define_one_source() -> None:
    one = (SOURCES / "zammad.yaml").read_text()
    with pytest.raises(SourceLoadError) as caught:
        load_sources_text([("a.yaml", one), ("b.yaml", one)])
    assert "source 'zammad' already defined in a.yaml" in str(caught.value)


def test_shared_secret_needs_a_header() -> None:
    text = "version: 1\nsource: s\nauth: {kind: shared_secret}\nmappings:\n" \
           "  - {name: m, remember: {key: body.a, values: {b: body.b}}}\n"
    with pytest.raises(SourceLoadError) as caught:
        load_sources_text([("s.yaml", text)])
    assert "s.yaml:3: `shared_secret` needs `header:`" in str(caught.value)
