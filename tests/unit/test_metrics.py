"""valeur_monitor.metrics: samples per method, bounded labels, exposition lint, /metrics server."""

from __future__ import annotations

import math
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from valeur_monitor import __version__
from valeur_monitor import metrics as metrics_module
from valeur_monitor.metrics import BANDS, DIMENSIONS, NONE, OTHER, LabelGuard, Metrics, serve

pytestmark = pytest.mark.unit

CUSTOMER = "cust-7f3e9a21-0b4c"   # a customer id that must never reach the exposition


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def m(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry=registry)


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def label_values(m: Metrics, metric: str, label: str) -> set[str]:
    """Distinct values of `label` over the samples of `metric` (name without _total)."""
    out: set[str] = set()
    for family in m.registry.collect():
        if family.name == metric:
            out |= {s.labels[label] for s in family.samples if label in s.labels}
    return out


def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool"
                                          if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.fail("promtool not found (Debian package `prometheus`, or put it on PATH): "
                    "it is required to lint the exposition")
    return found


def exercise(m: Metrics) -> None:
    """Call every public method once or more."""
    m.event_received("kafka", "request.opened")
    m.event_processed("request.opened")
    m.dead_letter("schema")
    m.duplicate()
    m.late_event()
    m.outcome("callback-on-time", "broken", "billing", "phone")
    m.value("callback-on-time", "time", "billing", "phone", -4.0)
    m.value("happy-survey", "experience", "billing", "email", 3.0)
    m.customer_alert("score-below-threshold")
    m.set_open_promises({"callback-on-time": 3, "unanswered-request": 1})
    m.set_score_bands([-30.0, -10.0, 0.0, 12.0])
    m.update_scores({CUSTOMER: -3.0})
    m.set_band_counts({"critical": 1, "at_risk": 2, "neutral": 3, "positive": 4})
    m.set_watermark(1_700_000_000_000, 1_700_000_004_500)
    m.observe_batch(0.0021, 37)
    m.store_error("put")
    m.broker_error("commit")


# -- construction -------------------------------------------------------------------------------
def test_default_registry_is_private_never_the_global_one() -> None:
    a, b = Metrics(), Metrics()   # a second registration on one registry would raise
    assert a.registry is not REGISTRY and b.registry is not REGISTRY
    assert a.registry is not b.registry
    assert REGISTRY.get_sample_value("valeur_build_info", {"version": __version__}) is None


def test_injected_registry_is_used(registry: CollectorRegistry) -> None:
    m = Metrics(registry=registry)
    assert m.registry is registry
    assert registry.get_sample_value("valeur_build_info", {"version": __version__}) == 1
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Metrics(registry=registry)


def test_initial_state(m: Metrics) -> None:
    for band in BANDS:
        assert sample(m, "valeur_customers", band=band) == 0
    assert sample(m, "valeur_events_duplicate_total") == 0
    assert sample(m, "valeur_events_late_total") == 0
    # known customer alerts start at 0, so rate() sees their first increment
    assert sample(m, "valeur_customer_alerts_total", alert="score-below-threshold") == 0
    assert sample(m, "valeur_customer_alerts_total", alert="broken-promises-7d") == 0
    assert sample(m, "valeur_batch_duration_seconds_count") == 0


def test_allowlists_preinitialise_single_label_counters() -> None:
    m = Metrics(allowlists={"reason": ["schema", "too_late"], "operation": ["get", "put"],
                            "alert": ["score-below-threshold"]})
    assert sample(m, "valeur_events_dead_lettered_total", reason="too_late") == 0
    assert sample(m, "valeur_store_errors_total", operation="get") == 0
    assert sample(m, "valeur_broker_errors_total", operation="put") == 0
    assert sample(m, "valeur_customer_alerts_total", alert="broken-promises-7d") is None


def test_unknown_allowlist_label_is_refused() -> None:
    with pytest.raises(ValueError, match="customer"):
        Metrics(allowlists={"customer": ["c1"]})


def test_dimensions_match_the_engine() -> None:
    from valeur_monitor.engine.ledger import DIMENSIONS as ENGINE_DIMENSIONS

    assert tuple(DIMENSIONS) == tuple(ENGINE_DIMENSIONS)


# -- one method, one sample ---------------------------------------------------------------------
def test_event_received_and_processed(m: Metrics) -> None:
    m.event_received("kafka", "request.opened")
    m.event_received("kafka", "request.opened")
    m.event_received("", "visit.confirmed")
    m.event_processed("request.opened")
    assert sample(m, "valeur_events_received_total", source="kafka", type="request.opened") == 2
    assert sample(m, "valeur_events_received_total", source=NONE, type="visit.confirmed") == 1
    assert sample(m, "valeur_events_processed_total", type="request.opened") == 1
    assert sample(m, "valeur_events_processed_total", type="visit.confirmed") is None


def test_dead_letter_duplicate_late(m: Metrics) -> None:
    m.dead_letter("schema")
    m.dead_letter("schema")
    m.dead_letter("")
    m.duplicate()
    m.late_event()
    m.late_event()
    assert sample(m, "valeur_events_dead_lettered_total", reason="schema") == 2
    assert sample(m, "valeur_events_dead_lettered_total", reason=NONE) == 1
    assert sample(m, "valeur_events_duplicate_total") == 1
    assert sample(m, "valeur_events_late_total") == 2


def test_outcome(m: Metrics) -> None:
    m.outcome("visit-not-confirmed", "broken", "field", "phone")
    m.outcome("visit-not-confirmed", "broken", "field", "phone")
    m.outcome("reply-in-time", "matched", "", "")
    m.outcome("reply-in-time", "exploded", "billing", "email")   # not an outcome: "other"
    name = "valeur_rule_outcomes_total"
    assert sample(m, name, rule="visit-not-confirmed", outcome="broken", team="field",
                  channel="phone") == 2
    assert sample(m, name, rule="reply-in-time", outcome="matched", team=NONE, channel=NONE) == 1
    assert sample(m, name, rule="reply-in-time", outcome=OTHER, team="billing",
                  channel="email") == 1


def test_value_created_and_destroyed(m: Metrics) -> None:
    m.value("happy-survey", "experience", "billing", "email", 2.5)
    m.value("happy-survey", "experience", "billing", "email", 1.5)
    m.value("missed-callback", "time", "billing", "phone", -3.0)
    m.value("missed-callback", "time", "billing", "phone", -0.5)
    for ignored in (0.0, -0.0, math.nan, math.inf, -math.inf):
        m.value("missed-callback", "time", "billing", "phone", ignored)
    m.value("missed-callback", "karma", "billing", "phone", -1.0)   # not a dimension: "other"
    created, destroyed = "valeur_value_created_total", "valeur_value_destroyed_total"
    assert sample(m, created, rule="happy-survey", dimension="experience", team="billing",
                  channel="email") == 4.0
    assert sample(m, destroyed, rule="missed-callback", dimension="time", team="billing",
                  channel="phone") == 3.5
    assert sample(m, created, rule="missed-callback", dimension="time", team="billing",
                  channel="phone") is None
    assert sample(m, destroyed, rule="happy-survey", dimension="experience", team="billing",
                  channel="email") is None
    assert sample(m, destroyed, rule="missed-callback", dimension=OTHER, team="billing",
                  channel="phone") == 1.0


def test_customer_alert(m: Metrics) -> None:
    m.customer_alert("broken-promises-7d")
    m.customer_alert("broken-promises-7d")
    assert sample(m, "valeur_customer_alerts_total", alert="broken-promises-7d") == 2
    assert sample(m, "valeur_customer_alerts_total", alert="score-below-threshold") == 0


def test_set_open_promises_missing_rules_go_to_zero(m: Metrics) -> None:
    m.set_open_promises({"callback-on-time": 4, "visit-not-confirmed": 2})
    assert sample(m, "valeur_open_promises", rule="callback-on-time") == 4
    assert sample(m, "valeur_open_promises", rule="visit-not-confirmed") == 2
    m.set_open_promises({"callback-on-time": 1})
    assert sample(m, "valeur_open_promises", rule="callback-on-time") == 1
    assert sample(m, "valeur_open_promises", rule="visit-not-confirmed") == 0
    m.set_open_promises({})
    assert sample(m, "valeur_open_promises", rule="callback-on-time") == 0


def test_set_open_promises_sums_rules_folded_into_other() -> None:
    m = Metrics(max_label_values=1)
    m.set_open_promises({"a": 1, "b": 2, "c": 3})
    assert sample(m, "valeur_open_promises", rule="a") == 1
    assert sample(m, "valeur_open_promises", rule=OTHER) == 5
    m.set_open_promises({"a": 1})
    assert sample(m, "valeur_open_promises", rule=OTHER) == 0


@pytest.mark.parametrize(("score", "band"), [
    (-1000.0, "critical"), (-20.01, "critical"), (-20.0, "at_risk"), (-5.01, "at_risk"),
    (-5.0, "neutral"), (0.0, "neutral"), (5.0, "neutral"), (5.01, "positive"),
    (1e9, "positive")])
def test_band_edges(m: Metrics, score: float, band: str) -> None:
    assert m.band(score) == band
    m.set_score_bands([score])
    for other in BANDS:
        assert sample(m, "valeur_customers", band=other) == (1 if other == band else 0)


def test_set_score_bands_counts_and_resets(m: Metrics) -> None:
    m.set_score_bands([-30.0, -25.0, -10.0, 0.0, 1.0, 2.0, 9.0, math.nan])
    assert [sample(m, "valeur_customers", band=b) for b in BANDS] == [2, 1, 3, 1]
    m.set_score_bands(iter([7.0]))   # any iterable, bands not seen go back to 0
    assert [sample(m, "valeur_customers", band=b) for b in BANDS] == [0, 0, 0, 1]


def test_update_scores_tracks_every_customer_incrementally(m: Metrics) -> None:
    def bands() -> list[float | None]:
        return [sample(m, "valeur_customers", band=b) for b in BANDS]

    m.update_scores({"c1": -30.0, "c2": -10.0, "c3": 0.0})
    assert bands() == [1, 1, 1, 0]
    m.update_scores({"c4": 8.0})             # a batch changing one customer only
    assert bands() == [1, 1, 1, 1]
    m.update_scores({"c1": 6.0, "c2": -12.0})   # c1 moves, c2 stays in its band
    assert bands() == [0, 1, 1, 2]
    m.update_scores({"c3": math.nan})        # unknown score: no longer counted
    assert bands() == [0, 1, 0, 2]
    m.update_scores({})
    assert bands() == [0, 1, 0, 2]
    assert CUSTOMER not in generate_latest(m.registry).decode()


def test_configurable_band_edges() -> None:
    m = Metrics(band_edges=(-50.0, -10.0, 10.0))
    assert [m.band(s) for s in (-51.0, -30.0, 0.0, 11.0)] == list(BANDS)
    for bad in ((-5.0, -20.0, 5.0), (0.0, 0.0, 1.0), (-math.inf, -5.0, 5.0),
                (-20.0, math.nan, 5.0)):
        with pytest.raises(ValueError, match="band edges"):
            Metrics(band_edges=bad)


def test_set_band_counts(m: Metrics) -> None:
    m.set_band_counts({"critical": 3, "positive": 9})
    assert [sample(m, "valeur_customers", band=b) for b in BANDS] == [3, 0, 0, 9]
    with pytest.raises(ValueError, match="unknown band"):
        m.set_band_counts({"doomed": 1})


def test_set_watermark(m: Metrics) -> None:
    m.set_watermark(1_700_000_000_000, 1_700_000_090_500)
    assert sample(m, "valeur_watermark_timestamp_seconds") == 1_700_000_000.0
    assert sample(m, "valeur_event_time_lag_seconds") == 90.5
    m.set_watermark(0, 1_700_000_100_000)   # no stream time yet: ignored
    assert sample(m, "valeur_watermark_timestamp_seconds") == 1_700_000_000.0
    assert sample(m, "valeur_event_time_lag_seconds") == 90.5


def test_observe_batch(m: Metrics) -> None:
    m.observe_batch(0.0002, 1)
    m.observe_batch(0.003, 40)
    m.observe_batch(4.0, 4000)
    duration, size = "valeur_batch_duration_seconds", "valeur_batch_size"
    assert sample(m, f"{duration}_count") == 3
    assert sample(m, f"{duration}_sum") == pytest.approx(4.0032)
    assert sample(m, f"{duration}_bucket", le="0.00025") == 1   # 0.1 ms resolution at the low end
    assert sample(m, f"{duration}_bucket", le="0.005") == 2
    assert sample(m, f"{duration}_bucket", le="5.0") == 3       # and up to 5 s
    assert sample(m, f"{size}_bucket", le="1.0") == 1
    assert sample(m, f"{size}_bucket", le="50.0") == 2
    assert sample(m, f"{size}_sum") == 4041


def test_store_and_broker_errors(m: Metrics) -> None:
    m.store_error("put")
    m.store_error("put")
    m.broker_error("commit")
    assert sample(m, "valeur_store_errors_total", operation="put") == 2
    assert sample(m, "valeur_broker_errors_total", operation="commit") == 1
    assert sample(m, "valeur_broker_errors_total", operation="put") is None


def test_build_info(registry: CollectorRegistry) -> None:
    m = Metrics(registry=registry, version="1.2.3")
    assert sample(m, "valeur_build_info", version="1.2.3") == 1


# -- bounded labels -----------------------------------------------------------------------------
def test_label_guard_caps_at_n_then_other() -> None:
    guard = LabelGuard(max_values=3)
    assert [guard(v) for v in ("a", "b", "a", "c", "d", "", "e", "b")] == [
        "a", "b", "a", "c", OTHER, NONE, OTHER, "b"]
    assert guard.values == {"a", "b", "c"}
    assert guard("x" * 500) == OTHER
    with pytest.raises(ValueError):
        LabelGuard(max_values=0)


def test_label_guard_allowlist_is_fixed() -> None:
    guard = LabelGuard(["billing", "field"], max_values=50)
    assert [guard(v) for v in ("billing", "retail", "", "field", OTHER)] == [
        "billing", OTHER, NONE, "field", OTHER]
    assert guard.values == {"billing", "field"}


def test_cardinality_capped_per_label() -> None:
    n = 5
    m = Metrics(max_label_values=n)
    for i in range(200):
        m.outcome(f"rule-{i}", "broken", f"team-{i}", f"channel-{i % 7}")
        m.value(f"rule-{i}", "time", f"team-{i}", f"channel-{i % 7}", -1.0)
        m.event_received(f"source-{i}", f"type-{i}")
    for label in ("rule", "team", "channel"):
        values = label_values(m, "valeur_rule_outcomes", label)
        assert len(values) == n + 1 and OTHER in values, (label, values)
        assert label_values(m, "valeur_value_destroyed", label) == values
    for label in ("source", "type"):
        assert len(label_values(m, "valeur_events_received", label)) == n + 1
    # nothing is lost: overflow is counted under "other"
    total = sum(s.value for f in m.registry.collect() if f.name == "valeur_rule_outcomes"
                for s in f.samples if s.name.endswith("_total"))
    assert total == 200
    assert sample(m, "valeur_rule_outcomes_total", rule="rule-0", outcome="broken",
                  team="team-0", channel="channel-0") == 1


def test_allowlists_bound_labels_to_known_values() -> None:
    m = Metrics(allowlists={"team": ["billing", "field"], "channel": ["phone", "email"]})
    m.outcome("callback-on-time", "broken", "billing", "phone")
    m.outcome("callback-on-time", "broken", "marketing", "pigeon")
    assert label_values(m, "valeur_rule_outcomes", "team") == {"billing", OTHER}
    assert label_values(m, "valeur_rule_outcomes", "channel") == {"phone", OTHER}


def test_hot_path_caches_children(m: Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []
    original = m.rule_outcomes.labels

    def counting(*values: object) -> object:
        calls.append(values)
        return original(*values)

    monkeypatch.setattr(m.rule_outcomes, "labels", counting)
    for _ in range(1000):
        m.outcome("reply-in-time", "matched", "billing", "email")
    assert len(calls) == 1
    assert sample(m, "valeur_rule_outcomes_total", rule="reply-in-time", outcome="matched",
                  team="billing", channel="email") == 1000


def test_child_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "CACHE_LIMIT", 10)
    m = Metrics(max_label_values=3)
    for i in range(500):   # 500 raw teams: the raw-tuple cache must not grow with them
        m.outcome("r", "kept", f"team-{i}", "phone")
    assert len(m._outcomes) == 10
    assert sample(m, "valeur_rule_outcomes_total", rule="r", outcome="kept", team=OTHER,
                  channel="phone") == 497


# -- customer ids never reach the exposition ----------------------------------------------------
CALLS: dict[str, Callable[[Metrics, str], None]] = {
    "event_received.source": lambda m, v: m.event_received(v, "request.opened"),
    "event_received.type": lambda m, v: m.event_received("kafka", v),
    "event_processed.type": lambda m, v: m.event_processed(v),
    "outcome.rule": lambda m, v: m.outcome(v, "broken", "billing", "phone"),
    "outcome.team": lambda m, v: m.outcome("missed-callback", "broken", v, "phone"),
    "outcome.channel": lambda m, v: m.outcome("missed-callback", "broken", "billing", v),
    "value.team": lambda m, v: m.value("missed-callback", "time", v, "phone", -2.0),
    "value.channel": lambda m, v: m.value("missed-callback", "time", "billing", v, 2.0),
    "open_promises.rule": lambda m, v: m.set_open_promises({v: 1}),
    "dead_letter.reason": lambda m, v: m.dead_letter(v),
    "customer_alert.alert": lambda m, v: m.customer_alert(v),
    "store_error.operation": lambda m, v: m.store_error(v),
    "broker_error.operation": lambda m, v: m.broker_error(v),
}


@pytest.mark.parametrize("where", sorted(CALLS))
def test_customer_id_never_exported_once_budget_is_spent(where: str) -> None:
    """A source that puts customer ids in a free-string field (here: thousands of them, as a
    misconfigured mapping would) can add at most N label values, never unbounded series; past
    the budget, no customer id shows up in /metrics."""
    n = 4
    m = Metrics(max_label_values=n)
    call = CALLS[where]
    for i in range(n):
        call(m, f"legit-{i}")
    for i in range(2000):
        call(m, f"{CUSTOMER}-{i}")
    call(m, CUSTOMER)
    text = generate_latest(m.registry).decode()
    assert CUSTOMER not in text
    assert f'"{OTHER}"' in text


@pytest.mark.parametrize("where", ["outcome.team", "value.team", "outcome.channel"])
def test_customer_id_never_exported_with_allowlists(where: str) -> None:
    """With allowlists (what production should configure), not even the first one leaks."""
    m = Metrics(allowlists={"team": ["billing", "field"], "channel": ["phone", "email"]})
    CALLS[where](m, CUSTOMER)
    text = generate_latest(m.registry).decode()
    assert CUSTOMER not in text
    assert OTHER in label_values(m, "valeur_rule_outcomes", "team") | label_values(
        m, "valeur_rule_outcomes", "channel") | label_values(m, "valeur_value_destroyed", "team")


# -- exposition ---------------------------------------------------------------------------------
def test_exposition_passes_promtool_check_metrics(m: Metrics) -> None:
    exercise(m)
    for i in range(60):   # overflow into "other" too
        m.outcome(f"rule-{i}", "kept", f"team-{i}", "chat")
    text = generate_latest(m.registry)
    result = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True,
                            timeout=60, check=False)
    assert result.returncode == 0 and not result.stdout and not result.stderr, (
        result.stdout.decode() + result.stderr.decode())


def test_exposition_names(m: Metrics) -> None:
    exercise(m)
    names = {s.name for f in m.registry.collect() for s in f.samples
             if not s.name.endswith("_created")}
    assert names == {
        "valeur_events_received_total", "valeur_events_processed_total",
        "valeur_events_dead_lettered_total", "valeur_events_duplicate_total",
        "valeur_events_late_total", "valeur_rule_outcomes_total", "valeur_value_created_total",
        "valeur_value_destroyed_total", "valeur_open_promises", "valeur_customers",
        "valeur_customer_alerts_total", "valeur_watermark_timestamp_seconds",
        "valeur_event_time_lag_seconds", "valeur_batch_duration_seconds_bucket",
        "valeur_batch_duration_seconds_count", "valeur_batch_duration_seconds_sum",
        "valeur_batch_size_bucket", "valeur_batch_size_count", "valeur_batch_size_sum",
        "valeur_store_errors_total", "valeur_broker_errors_total", "valeur_build_info"}


def test_serve_exposes_the_registry(m: Metrics) -> None:
    exercise(m)
    server, thread = serve(m, "127.0.0.1", 0)
    try:
        port = server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            body = reply.read().decode()
        assert f'valeur_build_info{{version="{__version__}"}} 1.0' in body
        assert "valeur_rule_outcomes_total{" in body
        assert thread.daemon
    finally:
        server.shutdown()
        server.server_close()
