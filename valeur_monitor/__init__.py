"""valeur-monitor: running, explainable per-customer value scores from support events."""

__version__ = "0.1.0"
