"""Applying values to a customer's score, and the per-customer alerts that watch it."""

from __future__ import annotations

from valeur_monitor.engine.ledger import Notice
from valeur_monitor.engine.rules.model import AlertRule
from valeur_monitor.engine.state import CustomerState, Score


def decay_factor(elapsed_ms: int, half_life: int | None) -> float:
    if not half_life or elapsed_ms <= 0:
        return 1.0
    return float(0.5 ** (elapsed_ms / half_life))


def apply_value(score: Score, dimension: str, value: float, at: int, half_life: int | None) -> None:
    """Add `value` at event time `at`; with a half-life, older values fade."""
    if half_life:
        if at > score.at:
            factor = decay_factor(at - score.at, half_life)
            score.total *= factor
            for dim in score.dims:
                score.dims[dim] *= factor
            score.at = at
        else:
            value *= decay_factor(score.at - at, half_life)
    elif at > score.at:
        score.at = at
    score.total += value
    score.dims[dimension] = score.dims.get(dimension, 0.0) + value


def apply_values(score: Score, worth: tuple[tuple[str, float, float], ...], at: int,
                 half_life: int | None) -> None:
    """`apply_value` for each (dimension, amount, value) of one outcome, decaying once: the
    same floats as one call per value (after the first, `at == score.at` and the factor is 1)."""
    factor = 1.0
    if half_life:
        if at > score.at:
            decay = decay_factor(at - score.at, half_life)
            score.total *= decay
            dims = score.dims
            # each value from the iteration, replaced under its key (no size change): one
            # look-up per dimension, and compiled a float product (not a generic `*=`)
            for dim, amount in dims.items():
                dims[dim] = amount * decay
            score.at = at
        elif at < score.at:
            factor = decay_factor(score.at - at, half_life)
    elif at > score.at:
        score.at = at
    dims = score.dims
    for dimension, _, value in worth:
        if factor != 1.0:
            value *= factor
        score.total += value
        dims[dimension] = dims.get(dimension, 0.0) + value


def score_at(score: Score, now: int, half_life: int | None) -> float:
    """The score as seen at `now` (decayed when the rules set a half-life)."""
    return score.total * decay_factor(now - score.at, half_life)


def check_score_alerts(state: CustomerState, alerts: tuple[AlertRule, ...], at: int,
                       notices: list[Notice]) -> None:
    """Fire `score_below` alerts once per crossing; re-arm when the score recovers."""
    for alert in alerts:
        if alert.score_below is None:
            continue
        below = state.score.total < alert.score_below
        fired = alert.id in state.alerts_fired
        if below and not fired:
            state.alerts_fired.append(alert.id)
            notices.append(Notice(
                "alert", alert.id, state.customer, at,
                f"{alert.title}: score {state.score.total:.1f} fell below {alert.score_below:g}",
                score=state.score.total))
        elif not below and fired:
            state.alerts_fired.remove(alert.id)


def count_outcome(state: CustomerState, alerts: tuple[AlertRule, ...], rule: str, outcome: str,
                  at: int, notices: list[Notice]) -> None:
    """Track outcomes for `count`-within-window alerts; fire once, re-arm below the count."""
    for alert in alerts:
        if alert.outcome != outcome or (alert.rules and rule not in alert.rules):
            continue
        window = state.alert_windows.setdefault(alert.id, [])
        window.append(at)
        horizon = at - alert.within
        window[:] = [t for t in window if t > horizon]
        fired = alert.id in state.alerts_fired
        if len(window) >= alert.count and not fired:
            state.alerts_fired.append(alert.id)
            notices.append(Notice(
                "alert", alert.id, state.customer, at,
                f"{alert.title}: {len(window)} {outcome} outcomes within the window",
                score=state.score.total))
        elif len(window) < alert.count and fired:
            state.alerts_fired.remove(alert.id)
