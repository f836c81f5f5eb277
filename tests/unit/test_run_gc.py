"""`run` over files pauses the cyclic garbage collector while it reads, and turns it back on."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from valeur_monitor.cli.run_cmd import run_files
from valeur_monitor.engine.rules.model import RuleSet
from valeur_monitor.runner.embedded import RunReport, collector_paused, tune_gc
from valeur_monitor.simulate import SimulationConfig, write_jsonl
from valeur_monitor.store.base import Store

pytestmark = pytest.mark.unit


def test_collector_paused_restores_the_collector_even_on_error() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("stop")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()   # off before: left off (the caller's choice)
    finally:
        gc.enable()


def _cyclic_garbage_of_a_run(tmp_path: Path, customers: int, bad: int) -> int:
    """Objects only the collector could free after one `run` (a few per run: rich's progress
    bar, the loaded rules), with `bad` malformed lines (an exception each) in the input."""
    events = tmp_path / f"events-{customers}.jsonl"
    write_jsonl(events, SimulationConfig(seed=2, customers=customers, days=2))
    with events.open("ab") as fh:
        fh.write(b'{"broken": \n' * bad)
    gc.collect()
    run_files([str(events)], progress=False, dead_letters=str(tmp_path / "dead.jsonl"))
    gc.unfreeze()   # what the run made was frozen at its end: looked at again here
    return gc.collect()


def test_run_makes_no_cyclic_garbage_per_event(tmp_path: Path) -> None:
    _cyclic_garbage_of_a_run(tmp_path, 5, 1)   # imports and first-use caches out of the way
    small = _cyclic_garbage_of_a_run(tmp_path, 10, 2)
    large = _cyclic_garbage_of_a_run(tmp_path, 100, 200)   # ≈ 10× the events, 100× bad lines
    # a cycle per event or per dead letter would leave thousands (200 bad lines, ≈ 10× the
    # events); what is left is per run and per read chunk (rich's progress samples, ≈ 50-80)
    assert large - small < 50, (small, large)


def test_run_over_files_reads_without_collector_and_serves_with_it(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=2, customers=20, days=2))
    with events.open("ab") as fh:
        fh.write(b'{"broken": \n')   # a dead letter on the way (an exception per line)
    during: list[bool] = []
    after_run: list[bool] = []

    def hook(result: object, seconds: float) -> None:
        during.append(gc.isenabled())

    def then(store: Store, rules: RuleSet, report: RunReport) -> None:
        after_run.append(gc.isenabled())   # `--serve` runs here: a server needs it
        frozen.append(gc.get_freeze_count())

    tune_gc()   # once per process: its own freeze is not the run's
    frozen = [gc.get_freeze_count()]

    report = run_files([str(events)], progress=False, hooks=[hook], then=then,
                       dead_letters=str(tmp_path / "dead.jsonl"))
    assert report.processed > 0 and sum(report.dead_letters.values()) == 1
    assert during and not any(during)
    assert after_run == [True] and gc.isenabled()
    # what the run made was frozen as the collector came back (no collection walks it later):
    # at least the customers' states' containers
    assert frozen[1] - frozen[0] >= 3 * report.customers > 0
