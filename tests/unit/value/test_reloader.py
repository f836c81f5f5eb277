"""The Reloader: a request switches at the next call, a bad rule set is refused and counted."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from valeur_monitor.engine.rules import load_rules
from valeur_monitor.errors import ConfigError
from valeur_monitor.reload import Reloader, signal_reload, write_pid_file
from valeur_monitor.service import Processor
from valeur_monitor.store.memory import MemoryStore

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


def test_request_apply_refuse_and_metrics(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("tests"))
    processor = Processor(load_rules([rules]), MemoryStore())
    old = processor.rules.version
    registry = CollectorRegistry()
    reloader = Reloader([str(rules)], None, registry)
    reloader.started(old)
    assert not reloader.apply(processor)                 # nothing asked: nothing done
    (rules / "zz.yml").write_text("version: 1\nrules:\n  - {id: x, on: nope, costs: {time: 1}}\n")
    reloader.request()
    assert not reloader.apply(processor) and processor.rules.version == old
    assert reloader.failures == 1 and "zz.yml:3" in reloader.last_error
    assert registry.get_sample_value("valeur_rules_reloads_total", {"result": "failed"}) == 1
    (rules / "zz.yml").unlink()
    (rules / "visits.yml").write_text((rules / "visits.yml").read_text() + "\n# edited\n")
    reloader.request()
    assert reloader.apply(processor, {0: 12}, {0: 34})
    new = processor.rules.version
    assert new != old and reloader.switches[-1].positions == {0: 12}
    assert registry.get_sample_value("valeur_rules_info", {"version": new}) == 1
    assert registry.get_sample_value("valeur_rules_info", {"version": old}) == 0


def test_pid_files_and_sighup(tmp_path: Path) -> None:
    reloader = Reloader([str(ROOT / "rules")])
    previous = signal.getsignal(signal.SIGHUP)
    try:
        reloader.install_sighup()
        write_pid_file(tmp_path / "w.pid")
        assert signal_reload([tmp_path / "w.pid"]) == [os.getpid()]
        assert reloader.requested
    finally:
        signal.signal(signal.SIGHUP, previous)
    with pytest.raises(ConfigError, match=r"missing\.pid"):
        signal_reload([tmp_path / "missing.pid"])
