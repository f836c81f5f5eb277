"""The rule language: YAML specs, their validation with locations, and the compiled rule set."""

from valeur_monitor.engine.rules.loader import load_rules, load_rules_text
from valeur_monitor.engine.rules.model import RuleSet

__all__ = ["RuleSet", "load_rules", "load_rules_text"]
