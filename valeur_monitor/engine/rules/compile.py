"""Turn validated rule specs into compiled rules, reporting semantic problems with locations."""

from __future__ import annotations

from typing import Any

from valeur_monitor.engine.calendar import Calendar
from valeur_monitor.engine.explain import unknown_placeholders
from valeur_monitor.engine.expressions import Condition
from valeur_monitor.engine.ledger import BENEFITS, COSTS
from valeur_monitor.engine.rules.issues import Issues, duration
from valeur_monitor.engine.rules.model import (
    AlertRule,
    Deadline,
    Effect,
    ExpectRule,
    Matcher,
    OnRule,
    RepeatRule,
    Scale,
)
from valeur_monitor.engine.rules.spec import (
    AlertSpec,
    DeadlineSpec,
    EffectSpec,
    RuleSpec,
    ScaleSpec,
)
from valeur_monitor.engine.rules.yamlsource import Path as KeyPath

Rule = OnRule | ExpectRule | RepeatRule


def condition(source: str | None, path: KeyPath, issues: Issues, rule_id: str) -> Condition | None:
    if source is None:
        return None
    try:
        return Condition(str(source))
    except ValueError as exc:
        issues.add(path, f"bad expression: {exc}", rule_id)
        return None


def _types(raw: Any, path: KeyPath, issues: Issues, rule_id: str) -> frozenset[str]:
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        issues.add(path, "expected an event type or a list of event types", rule_id)
        return frozenset()
    # The open catalogue (shipped + the deployment's own); imported here because the catalogue
    # loader itself reuses this package's YAML helpers.
    from valeur_monitor.catalogue import active

    known = active().types
    for name in names:
        if name not in known:
            issues.add(path, f"unknown event type {name!r} (not in the event catalogue)", rule_id)
    return frozenset(names)


def matchers(raw: Any, path: KeyPath, issues: Issues, rule_id: str) -> tuple[Matcher, ...]:
    """`type`, `{on: type(s), if: cel}` or a list mixing both."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        where = (*path, i) if isinstance(raw, list) else path
        if isinstance(item, str):
            out.append(Matcher(_types(item, where, issues, rule_id)))
        elif isinstance(item, dict):
            unknown = sorted(set(item) - {"on", "if"})
            for key in unknown:
                issues.add((*where, key), f"unknown key {key!r}", rule_id)
            if "on" not in item:
                issues.add(where, "a matcher needs `on:` (an event type or list)", rule_id)
                continue
            types = _types(item["on"], (*where, "on"), issues, rule_id)
            cond = condition(item.get("if"), (*where, "if"), issues, rule_id)
            out.append(Matcher(types, cond))
        else:
            issues.add(where, "expected an event type or {on:, if:}", rule_id)
    return tuple(out)


def scale(spec: ScaleSpec | None, outcome: str, path: KeyPath, issues: Issues,
          rule_id: str) -> Scale | None:
    """`scale:` of an outcome: what duration it measures, per how much, up to what."""
    if spec is None:
        return None
    per = duration(spec.per, (*path, "per"), issues, rule_id)
    top = duration(spec.max, (*path, "max"), issues, rule_id)
    if (spec.clock is None) == (spec.field is None):
        issues.add(path, "`scale` measures exactly one of `clock` (wall or sla: the wait past "
                   "the deadline) or `field` (data.<name>, seconds)", rule_id)
        return None
    if spec.clock is not None and outcome != "late":
        issues.add((*path, "clock"), "`clock` measures the wait past a promise's deadline: only "
                   "`late` has one (use `field` for a duration the event carries)", rule_id)
    field_name = None
    if spec.field is not None:
        if not spec.field.startswith("data.") or not spec.field[5:].isidentifier():
            issues.add((*path, "field"), "`field` names a number of seconds in the event: "
                       "data.<field>", rule_id)
        elif outcome == "broken":
            issues.add((*path, "field"), "`broken` happens at the deadline, with no event to "
                       "read a field from", rule_id)
        field_name = spec.field[5:]
    if per is None:
        return None
    return Scale(per=per, clock=spec.clock, field=field_name, max=top)


def effect(amounts: tuple[dict[str, float], dict[str, float]], explain: str | None,
           path: KeyPath, issues: Issues, rule_id: str, *, scale_spec: ScaleSpec | None = None,
           recover: float | None = None, outcome: str = "matched") -> Effect:
    benefits, costs = amounts
    values: list[tuple[str, float, float]] = []
    for dim, amount in benefits.items():
        if dim not in BENEFITS:
            issues.add((*path, "benefits", dim),
                       f"{dim!r} is not a benefit dimension ({', '.join(BENEFITS)})", rule_id)
        values.append((dim, float(amount), float(amount)))
    for dim, amount in costs.items():
        if dim not in COSTS:
            issues.add((*path, "costs", dim),
                       f"{dim!r} is not a cost dimension ({', '.join(COSTS)})", rule_id)
        if amount < 0:
            issues.add((*path, "costs", dim), "a cost is ≥ 0 (a benefit lost is a negative "
                       "benefit; a cost given back after a late keep is `recover`)", rule_id)
        values.append((dim, float(amount), -float(amount)))
    if explain is not None:
        for name in unknown_placeholders(explain):
            issues.add((*path, "explain"), f"unknown placeholder {{{name}}} in explain", rule_id)
    scaled = scale(scale_spec, outcome, (*path, "scale"), issues, rule_id)
    if scale_spec is not None and not values:
        issues.add((*path, "scale"), "`scale` needs `benefits` or `costs` to scale", rule_id)
    if recover is not None and outcome != "late":
        issues.add((*path, "recover"), "`recover` belongs to `late`", rule_id)
    return Effect(tuple(values), explain, scaled, recover or 0.0)


def _outcome(spec: EffectSpec | None, path: KeyPath, issues: Issues, rule_id: str,
             outcome: str) -> Effect | None:
    if spec is None:
        return None
    return effect((spec.benefits, spec.costs), spec.explain, path, issues, rule_id,
                  scale_spec=spec.scale, recover=spec.recover, outcome=outcome)


def _late_worst(late: Effect, late_window: int) -> float:
    """The lowest total a late keep can score (recovery aside): scaled values at their bound."""
    total = 0.0
    for _dim, _amount, value in late.values:
        if late.scale is None:
            total += value
            continue
        bound = late.scale.max if late.scale.max is not None else (
            late_window if late.scale.clock else None)
        if bound is None:
            if value < 0:
                return float("-inf")  # an event field with no `max`: no bound
            continue
        total += min(0.0, value * bound / late.scale.per)  # benefits worst at 0, costs at bound
    return total


def check_order(rule: ExpectRule, path: KeyPath, issues: Issues) -> None:
    """Warn about a rule whose late keep can score worse than never keeping the promise."""
    broken, late = rule.broken, rule.late
    if broken is None or late is None:
        if late is not None and late.recover:
            issues.add((*path, "late", "recover"),
                       "`recover` gives back part of this rule's `broken` values: add `broken`",
                       rule.id)
        return
    never = sum(v for _d, _a, v in broken.values)
    worst = never * (1 - late.recover) + _late_worst(late, rule.late_window)
    if worst < never - 1e-9:
        issues.warn((*path, "late"),
                    f"a late keep can score {worst:g}, worse than never keeping ({never:g}): "
                    "give back part of the broken cost (`recover`) or cap the late costs "
                    "(`scale.max`)", rule.id)


def _deadline(spec: DeadlineSpec, path: KeyPath, issues: Issues, rule_id: str,
              calendars: dict[str, Calendar]) -> Deadline:
    if (spec.within is None) == (spec.at is None):
        issues.add(path, "a deadline needs exactly one of `within` or `at`", rule_id)
    calendar = None
    if spec.calendar is not None:
        calendar = calendars.get(spec.calendar)
        if calendar is None:
            issues.add((*path, "calendar"), f"unknown calendar {spec.calendar!r}", rule_id)
    at_field = None
    if spec.at is not None:
        if not spec.at.startswith("data.") or not spec.at[5:].isidentifier():
            issues.add((*path, "at"), "`at` names a field of the opening event: data.<field>",
                       rule_id)
        at_field = spec.at[5:]
        if spec.calendar is not None:
            issues.add((*path, "calendar"), "`calendar` applies to `within`, not `at`", rule_id)
    tiers = tuple((tier, duration(text, (*path, "tiers", tier), issues, rule_id) or 0)
                  for tier, text in sorted(spec.tiers.items()))
    return Deadline(
        within=duration(spec.within, (*path, "within"), issues, rule_id),
        tiers=tiers, at_field=at_field,
        offset=duration(spec.offset, (*path, "offset"), issues, rule_id, positive=False) or 0,
        calendar=calendar,
    )


def compile_rule(spec: RuleSpec, path: KeyPath, issues: Issues,
                 calendars: dict[str, Calendar]) -> Rule | None:
    rid = spec.id
    title = spec.title or rid.replace("-", " ").capitalize()
    kinds = [k for k in ("on", "expect", "repeat") if getattr(spec, k) is not None]
    if len(kinds) != 1:
        issues.add(path, "a rule needs exactly one of `on`, `expect` or `repeat`", rid)
        return None
    plain = (spec.benefits, spec.costs)
    if kinds[0] != "expect" and (spec.kept or spec.broken or spec.late):
        issues.add(path, "`kept`, `broken` and `late` belong to `expect` rules", rid)
    if kinds[0] == "on":
        if not (spec.benefits or spec.costs):
            issues.add(path, "an `on` rule needs `benefits` or `costs`", rid)
        matcher = Matcher(_types(spec.on, (*path, "on"), issues, rid),
                          condition(spec.if_, (*path, "if"), issues, rid))
        return OnRule(rid, title, matcher, effect(plain, spec.explain, path, issues, rid,
                                                  scale_spec=spec.scale))
    if kinds[0] == "repeat":
        assert spec.repeat is not None
        r = spec.repeat
        rp: KeyPath = (*path, "repeat")
        matcher = Matcher(_types(r.on, (*rp, "on"), issues, rid),
                          condition(r.if_, (*rp, "if"), issues, rid))
        key = condition(r.key, (*rp, "key"), issues, rid)
        within = duration(r.within, (*rp, "within"), issues, rid)
        if not (spec.benefits or spec.costs):
            issues.add(path, "a `repeat` rule needs `benefits` or `costs`", rid)
        if key is None or within is None:
            return None
        merge = duration(r.merge_same_ref, (*rp, "merge_same_ref"), issues, rid) or 0
        return RepeatRule(rid, title, matcher, key, within, r.from_,
                          effect(plain, spec.explain, path, issues, rid, scale_spec=spec.scale),
                          merge)
    assert spec.expect is not None
    e = spec.expect
    ep: KeyPath = (*path, "expect")
    if spec.benefits or spec.costs or spec.if_ or spec.explain or spec.scale:
        issues.add(path, "`expect` rules put values under `kept`, `broken` or `late`", rid)
    opens = matchers(e.open, (*ep, "open"), issues, rid)
    keeps = matchers(e.keep, (*ep, "keep"), issues, rid)
    if not opens or not keeps:
        issues.add(ep, "`expect` needs `open` and `keep`", rid)
    if not (spec.kept or spec.broken or spec.late):
        issues.add(path, "an `expect` rule needs at least one of `kept`, `broken`, `late`", rid)
    deadline = _deadline(e.deadline, (*ep, "deadline"), issues, rid, calendars)
    rule = ExpectRule(
        id=rid, title=title, open=opens, keep=keeps,
        cancel=matchers(e.cancel, (*ep, "cancel"), issues, rid),
        pause=matchers(e.pause, (*ep, "pause"), issues, rid),
        resume=matchers(e.resume, (*ep, "resume"), issues, rid),
        deadline=deadline,
        warn=duration(e.warn, (*ep, "warn"), issues, rid),
        reopen=e.reopen,
        late_window=duration(e.late_window, (*ep, "late_window"), issues, rid) or 0,
        max_pause=duration(e.max_pause, (*ep, "max_pause"), issues, rid) or 0,
        kept=_outcome(spec.kept, (*path, "kept"), issues, rid, "kept"),
        broken=_outcome(spec.broken, (*path, "broken"), issues, rid, "broken"),
        late=_outcome(spec.late, (*path, "late"), issues, rid, "late"),
    )
    late = rule.late
    if late is not None and late.scale is not None and late.scale.clock == "sla" and (
            deadline.calendar is None):
        issues.add((*path, "late", "scale", "clock"), "`clock: sla` needs a deadline with a "
                   "`calendar` (without one the SLA clock is the wall clock: write `wall`)", rid)
    check_order(rule, path, issues)
    return rule


def compile_alert(spec: AlertSpec, path: KeyPath, issues: Issues,
                  rule_ids: set[str]) -> AlertRule | None:
    aid = spec.id
    title = spec.title or aid.replace("-", " ").capitalize()
    by_score = spec.score_below is not None
    by_count = spec.outcome is not None
    if by_score == by_count:
        issues.add(path, "an alert needs exactly one of `score_below` or `outcome`", aid)
        return None
    for name in spec.rules:
        if name not in rule_ids:
            issues.add((*path, "rules"), f"unknown rule {name!r}", aid)
    if by_score:
        return AlertRule(aid, title, score_below=spec.score_below)
    within = duration(spec.within, (*path, "within"), issues, aid)
    if spec.count < 1 or within is None:
        issues.add(path, "an outcome alert needs `count` ≥ 1 and `within`", aid)
        return None
    return AlertRule(aid, title, outcome=spec.outcome, rules=frozenset(spec.rules),
                     count=spec.count, within=within)
