"""Redis URLs and secrets masking, without a server: any password characters, query
passwords, unknown arguments refused in one line, TLS files as settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from valeur_monitor import masking
from valeur_monitor.errors import ConfigError, StoreError
from valeur_monitor.settings import load_settings
from valeur_monitor.store.connect import RedisOptions, parse_url

pytestmark = pytest.mark.unit

NASTY = "p/a#s?s@w:rd%x"


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    masking.clear()
    yield
    masking.clear()


@pytest.mark.parametrize("url,host,port,db,user,password", [
    (f"redis://:{NASTY}@127.0.0.1:6380/2", "127.0.0.1", 6380, 2, None, NASTY),
    (f"rediss://app:{NASTY}@redis.example/0", "redis.example", 6379, 0, "app", NASTY),
    ("redis://127.0.0.1:6380/1?password=s3cr@t/x", "127.0.0.1", 6380, 1, None, "s3cr@t/x"),
    ("redis://u:p%40ss@[::1]:7000/3", "::1", 7000, 3, "u", "p@ss"),
    ("redis://h", "h", 6379, 0, None, None),
])
def test_urls_parse_whatever_the_password_characters(
        url: str, host: str, port: int, db: int, user: str | None,
        password: str | None) -> None:
    target = parse_url(url)
    assert (target.host, target.port, target.db) == (host, port, db)
    assert (target.options.username, target.options.password) == (user, password)
    shown = target.display()
    if password:
        assert password not in shown and "***" in shown
        assert masking.mask(f"failed on {url}") == f"failed on {masking.mask(url)}"
        assert password not in masking.mask(f"failed on {url}: {password}")


def test_unknown_query_argument_is_one_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_url("rediss://u:hunter22@h:6380/0?ssl_ca=/x.pem")
    text = str(info.value)
    assert "unknown query argument 'ssl_ca'" in text and "ca" in text
    assert "hunter22" not in text and "\n" not in text


def test_tls_files_come_from_settings_and_are_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    monkeypatch.setenv("VALEUR_REDIS_URL", "rediss://redis.example:6380/0")
    monkeypatch.setenv("VALEUR_REDIS_TLS_CA", str(ca))
    monkeypatch.setenv("VALEUR_REDIS_PASSWORD", "from-env-secret")
    settings = load_settings()
    assert settings.store_url() == "rediss://redis.example:6380/0"
    target = parse_url(settings.store_url(), settings.redis_options())
    assert target.tls and target.options.tls_ca == str(ca)
    assert target.options.password == "from-env-secret"
    assert "from-env-secret" not in repr(target)
    assert masking.mask("pw=from-env-secret") == "pw=***"
    with pytest.raises(ConfigError, match="not found"):
        parse_url("rediss://h/0?ca=/no/such/ca.pem")
    with pytest.raises(ConfigError, match="both a certificate and its key"):
        parse_url("rediss://h/0", RedisOptions(tls_cert=str(ca)))


def test_store_url_defaults_to_memory_unless_configured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VALEUR_REDIS_URL", raising=False)
    assert load_settings().store_url() == "memory"
    assert load_settings().store_url("redis://h/0") == "redis://h/0"
    monkeypatch.setenv("VALEUR_REDIS_URL", "redis://cfg:6379/0")
    assert load_settings().store_url() == "redis://cfg:6379/0"


def test_store_errors_and_log_records_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    parse_url(f"redis://:{NASTY}@h:1/0")
    error = StoreError(f"something about {NASTY} and redis://:{NASTY}@h:1/0")
    assert NASTY not in str(error)
    with caplog.at_level(logging.WARNING):
        logging.getLogger("some.library").warning("connecting with %s", NASTY)
        try:
            raise RuntimeError(f"boom {NASTY}")
        except RuntimeError:
            logging.getLogger("x").exception("failed")
    assert NASTY not in caplog.text and "***" in caplog.text
