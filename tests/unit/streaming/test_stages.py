"""The stage log benchmarks read: every batch's stage times, in order, only when asked for."""

from __future__ import annotations

import time

import pytest

from tests.unit.streaming.fakes import RecordingPublisher, SharedStore, records_for
from tests.unit.streaming.test_pipeline import LINES, PARTITIONS, pipeline
from valeur_monitor.streaming.runtime import WorkerRuntime
from valeur_monitor.streaming.stages import ACKED, PRODUCED, STAGES, Stages, stages_from_env

pytestmark = pytest.mark.unit


def test_off_unless_asked() -> None:
    assert stages_from_env({}) is None and stages_from_env({"VALEUR_STAGES": "0"}) is None
    assert isinstance(stages_from_env({"VALEUR_STAGES": "1"}), Stages)


async def test_every_stage_of_every_batch_is_noted_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALEUR_STAGES", "1")
    runtime = WorkerRuntime(pipeline(SharedStore(), set(range(PARTITIONS))),
                            RecordingPublisher())
    stages = runtime.stages
    assert stages is not None
    records = records_for(LINES[:600], PARTITIONS)
    produced = int(time.time() * 1000) - 5
    for i in range(0, len(records), 200):
        stages.open(produced, time.time())     # as the consumer does before handing it over
        await runtime.consume(records[i:i + 200])
    await runtime.flushed()
    assert len(stages.rows) == 3
    for row in stages.rows:
        assert row == sorted(row) and row[ACKED] > row[PRODUCED] > 0
    summary = stages.summary()
    assert set(summary) == {*STAGES[1:], "batches"} and summary["batches"]["n"] == 3
    assert 5 <= summary["fetched"]["p50"] <= summary["acked"]["p99"]
