"""Building the ingest server from settings: routes only for configured sources, loopback rule,
secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from valeur_monitor.cli.main import app
from valeur_monitor.errors import ConfigError
from valeur_monitor.ingest.server import check_bind, ingest_context
from valeur_monitor.ingest.sinks import FileSink
from valeur_monitor.settings import load_settings

from ..sources.support import DATA

pytestmark = pytest.mark.unit


def test_only_sources_with_credentials_get_a_route(tmp_path: Path) -> None:
    settings = load_settings(ingest={"secrets": {"zendesk": "s1"},
                                     "basic_users": {"freshdesk": "u:p"},
                                     "identities": str(DATA / "identities.csv"),
                                     "output": str(tmp_path / "out.jsonl")})
    context = ingest_context(settings)
    assert sorted(context.mappers) == ["freshdesk", "zendesk"]
    assert context.secrets == {"zendesk": "s1", "freshdesk": "u:p"}
    assert isinstance(context.sink, FileSink)
    assert context.sink.dead_path == tmp_path / "out.jsonl.dead.jsonl"
    check_bind("0.0.0.0", context)           # every route is authenticated: may be exposed


def test_no_credentials_at_all_is_refused() -> None:
    with pytest.raises(ConfigError, match="no source has credentials"):
        ingest_context(load_settings(ingest={"output": "/tmp/x.jsonl"}))


def test_an_open_route_is_only_served_on_loopback(tmp_path: Path) -> None:
    src = tmp_path / "open.yaml"
    src.write_text("version: 1\nsource: open\nauth: {kind: none}\nmappings:\n"
                   "  - {name: m, remember: {key: body.a, values: {b: body.b}}}\n")
    context = ingest_context(load_settings(ingest={"sources": [str(src)],
                                                   "output": str(tmp_path / "o.jsonl")}))
    check_bind("127.0.0.1", context)
    with pytest.raises(ConfigError, match=r"only served on 127\.0\.0\.1"):
        check_bind("0.0.0.0", context)


def test_cli_error_does_not_print_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALEUR_INGEST__SECRETS__ZENDESK", "very-secret-value")
    monkeypatch.setenv("VALEUR_INGEST__IDENTITIES", str(tmp_path / "missing.csv"))
    result = CliRunner().invoke(app, ["ingest", "--output", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2
    assert "missing.csv" in result.output and "very-secret-value" not in result.output
