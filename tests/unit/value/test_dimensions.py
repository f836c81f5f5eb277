"""The shipped rules use every value dimension of the seeds at least once."""

from __future__ import annotations

from pathlib import Path

import pytest

from valeur_monitor.engine.ledger import DIMENSIONS
from valeur_monitor.engine.rules import load_rules

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[3]


def test_every_dimension_is_used_by_a_shipped_rule() -> None:
    rules = load_rules([ROOT / "rules"])
    used: set[str] = set()
    for rule in (*rules.on_rules, *rules.repeat_rules):
        used |= {dim for dim, _a, _v in rule.effect.values}
    for erule in rules.expect_rules:
        for effect in (erule.kept, erule.broken, erule.late):
            if effect is not None:
                used |= {dim for dim, _a, _v in effect.values}
    assert used == set(DIMENSIONS)
    assert not rules.warnings, [str(w) for w in rules.warnings]
