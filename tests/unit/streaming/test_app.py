"""The faust wiring without a broker: settings -> app configuration, credentials."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from valeur_monitor.settings import KafkaSettings, load_settings
from valeur_monitor.streaming.app import create_app, credentials
from valeur_monitor.streaming.consumer import BatchTransport

pytestmark = pytest.mark.unit


def test_credentials_follow_the_security_protocol(tmp_path: Path) -> None:
    assert credentials(KafkaSettings()) is None
    sasl = credentials(KafkaSettings(security_protocol="SASL_SSL",
                                     sasl_mechanism="SCRAM-SHA-512", sasl_username="u",
                                     sasl_password="p"))  # type: ignore[arg-type]
    assert isinstance(sasl, faust.SASLCredentials)
    assert (sasl.username, sasl.password, sasl.mechanism.value) == ("u", "p", "SCRAM-SHA-512")
    assert isinstance(sasl.ssl_context, ssl.SSLContext)
    plain = credentials(KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                                      sasl_username="u", sasl_password="p"))  # type: ignore[arg-type]
    assert isinstance(plain, faust.SASLCredentials) and plain.ssl_context is None
    assert isinstance(credentials(KafkaSettings(security_protocol="SSL")), faust.SSLCredentials)


def test_create_app_wires_consumer_timer_pages_and_settings(tmp_path: Path) -> None:
    settings = load_settings(redis_url="memory", kafka={"bootstrap_servers": "k1:9092,k2:9092"},
                             topics={"events": "ev", "dead_letters": "dl"},
                             worker={"app_id": "vm-test", "web_port": 7001, "clock": "event",
                                     "datadir": str(tmp_path / "data")})
    app = create_app(settings)
    conf = app.conf
    assert conf.id == "vm-test" and conf.web_port == 7001
    assert conf.broker_session_timeout == 10.0 and conf.topic_allow_declare is False
    assert conf.store.scheme == "memory" and Path(conf.datadir) == tmp_path / "data"
    assert [str(u) for u in conf.broker] == ["kafka://k1:9092", "kafka://k2:9092"]
    assert not app.agents            # no faust agent: the batch consumer feeds the runtime
    assert [t.get_topic_name() for t in app.topics] == ["ev"]
    assert isinstance(app.transport, BatchTransport)
    assert app.transport.Consumer.sink is app.valeur_runtime  # type: ignore[attr-defined]
    runtime = app.valeur_runtime  # type: ignore[attr-defined]
    assert runtime.pipeline.outputs.dead_letters == "dl"
    assert runtime.pipeline.outputs.score_updates == "valeur.score-updates"
    assert runtime.pipeline.clock.mode == "event"
    assert runtime.ready() == (False, "waiting for a partition assignment")
    paths = {route.resource.canonical for route in app.web.web_app.router.routes()}
    assert {"/metrics", "/healthz", "/readyz"} <= paths


def test_the_root_logger_is_quieted_after_faust_spinner_setup() -> None:
    """faust's worker, at log level WARNING or above, sets the root logger to DEBUG for its
    terminal spinner (every library debug call then builds a record no handler writes);
    `quiet_root_logger` gives it back the level of the handlers that write."""
    import logging
    from types import SimpleNamespace

    from faust.utils.terminal import Spinner, SpinnerHandler

    from valeur_monitor.streaming.app import quiet_root_logger

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        root.handlers = [logging.StreamHandler()]
        faust.Worker._setup_spinner_handler(SimpleNamespace(spinner=Spinner()),  # type: ignore[arg-type]
                                            root, logging.WARNING)
        assert root.level == logging.DEBUG          # what faust leaves
        assert logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
        quiet_root_logger()
        assert root.level == logging.WARNING
        assert not any(isinstance(h, SpinnerHandler) for h in root.handlers)
        assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("aiokafka").isEnabledFor(logging.WARNING)
        # at INFO (the default) faust sets up no spinner: nothing to undo
        root.handlers = [logging.StreamHandler()]
        root.handlers[0].setLevel(logging.INFO)
        root.setLevel(logging.INFO)
        quiet_root_logger()
        assert root.level == logging.INFO and len(root.handlers) == 1
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]
