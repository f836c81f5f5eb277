"""Deterministic simulator of a support operation, written as canonical events (JSONL)."""

from valeur_monitor.simulate.cloudevents import to_cloudevent
from valeur_monitor.simulate.config import Rates, SimulationConfig
from valeur_monitor.simulate.generator import simulate
from valeur_monitor.simulate.malformed import BAD_KINDS, RAW_KEY
from valeur_monitor.simulate.writer import write_jsonl

__all__ = ["BAD_KINDS", "RAW_KEY", "Rates", "SimulationConfig", "simulate", "to_cloudevent",
           "write_jsonl"]
