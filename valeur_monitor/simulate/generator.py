"""`simulate(config)`: the event stream of a simulated support operation, in event-time order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from valeur_monitor.simulate.clock import SECONDS
from valeur_monitor.simulate.config import SimulationConfig
from valeur_monitor.simulate.lifecycle import Operation
from valeur_monitor.simulate.malformed import Malformer


def simulate(config: SimulationConfig | None = None) -> Iterator[dict[str, Any]]:
    """Yield canonical event dicts (JSON-ready), ordered by event time unless `disorder` > 0.

    Deterministic for a config: same seed, same events, same ids (`evt-<seed>-<n>`).
    With `bad_rate` > 0, malformed records are interleaved; one holding only `RAW_KEY` stands
    for a line of broken JSON (`write_jsonl` writes its text verbatim).
    """
    cfg = config if config is not None else SimulationConfig()
    operation = Operation(cfg)
    operation.schedule_openings()
    formatter = operation.formatter
    prefix = f"evt-{cfg.seed}-"
    malformer = Malformer(cfg.seed, cfg.bad_rate, formatter.naive) if cfg.bad_rate > 0 else None
    base_minute = operation.sched.base_ms // 60_000
    minute, head, tail = -1, "", ""
    for entries, datas in operation.sched.run(operation.run_deferred):
        for _, seq, second, etype, (customer, ref, source, channel, team, _) in entries:
            if second // 60 != minute:
                minute = second // 60
                head, tail = formatter.minute(base_minute + minute)
            record: dict[str, Any] = {"id": f"{prefix}{seq}", "type": etype,
                                      "time": head + SECONDS[second % 60] + tail,
                                      "customer": customer,
                                      "ref": ref, "source": source, "channel": channel,
                                      "team": team}
            payload = datas[seq - 1]
            datas[seq - 1] = None
            if payload:
                record["data"] = payload
            yield record
            if malformer is not None:
                yield from malformer.after(record, second * 1000)
