"""The simulator: deterministic, schema-valid, ordered, complete, and true to its configured rates.

Rates are measured from the events alone, with the engine's own business calendar (not the
simulator's), on periods long enough that the measured obligations finish before the end.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import holidays
import jsonschema
import orjson
import pytest
import typer
from typer.testing import CliRunner

from valeur_monitor.cli.simulate_cmd import simulate_command
from valeur_monitor.codec import decode
from valeur_monitor.engine.calendar import Calendar
from valeur_monitor.engine.event import CHANNELS, EVENT_TYPES, REQUEST_STATUSES, parse_time
from valeur_monitor.errors import ConfigError, EventError
from valeur_monitor.simulate import (
    RAW_KEY,
    Rates,
    SimulationConfig,
    simulate,
    to_cloudevent,
    write_jsonl,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3_600_000
DAY = 24 * HOUR
SUPPORT_FR = Calendar("support-fr", "Europe/Paris", (((540, 1080),),) * 5 + ((), ()),
                      frozenset(holidays.France(years=range(2025, 2028)).keys()))


def _checker() -> jsonschema.FormatChecker:
    """Format checking on, with an RFC 3339 date-time check (offset mandatory, real dates)."""
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if isinstance(value, str):
            parse_time(value)
        return True

    return checker


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "streams" / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=_checker())


EVENTS_SCHEMA = _validator("events.v1.schema.json")
# The types the simulator's support lifecycle emits (the catalogue has more: calls, complaints...)
SUPPORT_TYPES = {f"request.{t}" for t in ("opened", "agent_replied", "customer_replied",
                                          "status_changed", "resolved", "reopened")} | {
    "callback.promised", "callback.completed", "callback.cancelled", "contact.inbound",
    "visit.scheduled", "visit.confirmed", "visit.rescheduled", "visit.cancelled",
    "visit.completed", "visit.no_show", "survey.answered"}
CLOUD_SCHEMA = _validator("cloudevents.v1.schema.json")


def _lines(config: SimulationConfig) -> list[bytes]:
    return [orjson.dumps(record) for record in simulate(config)]


def _ms(record: dict[str, Any], field: str = "time") -> int:
    return parse_time(record[field] if field == "time" else record["data"][field])


@pytest.fixture(scope="module")
def week() -> list[dict[str, Any]]:
    """The default simulation: 1,000 customers, one week from Monday 2026-11-02."""
    return list(simulate(SimulationConfig()))


# -- determinism and volume -------------------------------------------------------------------

def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    config = SimulationConfig(seed=42, customers=150, days=5)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert write_jsonl(first, config) == write_jsonl(second, config) > 5000
    assert first.read_bytes() == second.read_bytes()
    # the fast writer is byte for byte orjson.dumps of what simulate() yields
    assert first.read_bytes() == b"\n".join(_lines(config)) + b"\n"
    other = _lines(SimulationConfig(seed=43, customers=150, days=5))
    assert other != first.read_bytes().splitlines()
    assert len(set(other) & set(first.read_bytes().splitlines())) < 10


def test_a_week_of_1000_customers(week: list[dict[str, Any]]) -> None:
    assert 30_000 <= len(week) <= 80_000
    # every type of the support lifecycle appears, and nothing outside the catalogue
    assert SUPPORT_TYPES <= {r["type"] for r in week} <= set(EVENT_TYPES)
    ids = [r["id"] for r in week]
    assert len(set(ids)) == len(ids)
    times = [_ms(r) for r in week]
    assert times == sorted(times)                          # event-time order, disorder = 0
    start = parse_time("2026-11-02T00:00:00+01:00")
    assert start <= times[0] and times[-1] < start + 7 * DAY
    assert {r["channel"] for r in week} == set(CHANNELS)
    assert {r["data"]["tier"] for r in week if r["type"] == "request.opened"} == {
        "standard", "gold"}
    customers = {r["customer"] for r in week}
    assert 950 <= len(customers) <= 1000


@pytest.mark.parametrize("start", ["2026-10-20T00:00:00+02:00",     # crosses the end of DST
                                   "2026-11-04T09:30:17+01:00",     # mid-week, odd second
                                   "2026-03-25T00:00:00+00:00"])    # UTC start, DST begins
def test_any_start_gives_ordered_valid_events_inside_the_period(start: str) -> None:
    begin = datetime.fromisoformat(start)
    records = list(simulate(SimulationConfig(seed=4, customers=120, days=10, start=begin)))
    times = [_ms(r) for r in records]
    assert times == sorted(times)
    assert parse_time(start) <= times[0] and times[-1] < parse_time(start) + 10 * DAY
    assert all(EVENTS_SCHEMA.is_valid(r) for r in records[::20])
    if not start.startswith("2026-11"):
        assert {r["time"][-6:] for r in records} == {"+01:00", "+02:00"}  # local offsets


def test_volume_scales_with_customers_times_days() -> None:
    small = sum(1 for _ in simulate(SimulationConfig(seed=3, customers=300, days=7)))
    double = sum(1 for _ in simulate(SimulationConfig(seed=3, customers=600, days=7)))
    longer = sum(1 for _ in simulate(SimulationConfig(seed=3, customers=300, days=14)))
    assert 1.85 < double / small < 2.15
    assert 2.0 < longer / small < 2.6   # the second week also gets the first one's tails
    # 15,000 customers × 7 days lands near a million events
    assert 0.9e6 < small / 300 * 15_000 < 1.2e6


# -- schema ----------------------------------------------------------------------------------

def test_every_line_is_valid_against_the_schema_and_the_codec() -> None:
    lines = _lines(SimulationConfig(seed=9, customers=150, days=7))
    assert len(lines) > 8000
    for line in lines:
        record = orjson.loads(line)
        errors = [e.message for e in EVENTS_SCHEMA.iter_errors(record)]
        assert not errors, (record, errors)
        assert decode(line).id == record["id"]


def test_each_type_of_the_week_is_valid(week: list[dict[str, Any]]) -> None:
    seen: Counter[str] = Counter()
    for record in week:
        if seen[record["type"]] < 150:
            seen[record["type"]] += 1
            assert EVENTS_SCHEMA.is_valid(record), record
    assert SUPPORT_TYPES <= set(seen) <= set(EVENT_TYPES)


def test_schema_follows_the_engine_catalogue() -> None:
    for name in ("events.v1.schema.json", "cloudevents.v1.schema.json"):
        schema = json.loads((ROOT / "streams" / name).read_text())
        assert schema["$id"] and schema["$schema"].endswith("2020-12/schema")
        assert schema["$defs"]["eventType"]["enum"] == list(EVENT_TYPES)
        assert schema["$defs"]["channel"]["enum"] == list(CHANNELS)
        assert all(p.get("description") for p in schema["properties"].values())
        required: dict[str, set[str]] = {}
        for block in schema["allOf"]:
            etype = block["if"]["properties"]["type"]["const"]
            data = block["then"].get("properties", {}).get("data", {})
            required[etype] = set(data.get("required", []))
        assert set(required) == set(EVENT_TYPES)
        # the schema requires exactly what the codec refuses without
        assert required == {t: set(fields) for t, fields in EVENT_TYPES.items()}
    canonical = json.loads((ROOT / "streams" / "events.v1.schema.json").read_text())
    assert canonical["additionalProperties"] is False
    status = canonical["allOf"][3]["then"]["properties"]["data"]["properties"]["status"]
    assert set(status["enum"]) == REQUEST_STATUSES


EXAMPLE = {"id": "evt-1", "type": "callback.promised", "time": "2026-11-02T09:15:00+01:00",
           "customer": "cust-00042", "ref": "cb-000881", "source": "telephony",
           "channel": "phone", "team": "billing",
           "data": {"promised_at": "2026-11-02T14:00:00+01:00", "request": "req-000881"}}


@pytest.mark.parametrize(("change", "valid"), [
    ({}, True),
    ({"time": "2026-11-02T09:15:00Z"}, True),
    ({"time": "2026-11-02T09:15:00"}, False),                 # no offset
    ({"time": "2026-02-30T09:15:00+01:00"}, False),           # no such day: format checked
    ({"type": "callback.forgotten"}, False),
    ({"channel": "fax"}, False),
    ({"extra": 1}, False),                                    # closed at the top level
    ({"data": {"promised_at": "2026-11-02T14:00:00"}}, False),
    ({"data": {"request": "req-1"}}, False),                  # promised_at missing
    ({"type": "visit.completed", "data": {"anything": True}}, True),   # data is open
    ({"type": "request.status_changed", "data": {"status": "closed"}}, False),
    ({"type": "survey.answered", "data": {"score": 6}}, False),
    ({"type": "request.resolved", "data": {"agent_replies": 1}}, True),
    ({"type": "request.opened", "data": {"topic": "x", "tier": "platinum"}}, False),
])
def test_the_canonical_schema_accepts_and_refuses(change: dict[str, Any], valid: bool) -> None:
    assert EVENTS_SCHEMA.is_valid({**EXAMPLE, **change}) is valid


def test_the_cloudevents_schema_validates_a_converted_event(week: list[dict[str, Any]]) -> None:
    converted = to_cloudevent(EXAMPLE)
    assert converted["specversion"] == "1.0" and converted["subject"] == "cust-00042"
    errors = [e.message for e in CLOUD_SCHEMA.iter_errors(converted)]
    assert not errors
    assert decode(orjson.dumps(converted)).customer == "cust-00042"   # the codec agrees
    for record in week[:3000]:
        assert CLOUD_SCHEMA.is_valid(to_cloudevent(record)), record
    with_extension = {k: v for k, v in converted.items() if k != "subject"}
    assert not CLOUD_SCHEMA.is_valid(with_extension)                # no customer at all
    assert CLOUD_SCHEMA.is_valid({**with_extension, "customer": "cust-00042"})
    assert not CLOUD_SCHEMA.is_valid({**converted, "specversion": "0.3"})
    assert not CLOUD_SCHEMA.is_valid({**converted, "time": "2026-11-02T09:15:00"})
    assert not CLOUD_SCHEMA.is_valid({**converted, "data": {}})      # promised_at required


# -- malformed lines and disorder ------------------------------------------------------------

def test_bad_lines_are_added_at_the_rate_and_all_refused(tmp_path: Path) -> None:
    clean = SimulationConfig(seed=5, customers=300, days=7)
    dirty = SimulationConfig(seed=5, customers=300, days=7, bad_rate=0.05)
    path = tmp_path / "dirty.jsonl"
    count = write_jsonl(path, dirty)
    lines = path.read_bytes().splitlines()
    assert count == len(lines)
    good: list[bytes] = []
    reasons: Counter[str] = Counter()
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        if record is not None and EVENTS_SCHEMA.is_valid(record):
            good.append(line)
            continue
        with pytest.raises(EventError) as refused:   # what the schema refuses, the codec too
            decode(line)
        reasons[refused.value.reason] += 1
    assert good == _lines(clean)                   # bad lines are extra, never replacements
    bad = len(lines) - len(good)
    assert 0.04 < bad / len(lines) < 0.06
    assert set(reasons) == {"malformed_json", "missing_field", "unknown_type", "bad_time",
                            "invalid_data"}
    assert min(reasons.values()) > bad / 10
    raw = [r for r in simulate(dirty) if RAW_KEY in r]
    assert raw and all(set(r) == {RAW_KEY} for r in raw)


def test_disorder_is_bounded_and_changes_only_the_order() -> None:
    base = SimulationConfig(seed=8, customers=200, days=4)
    ordered = list(simulate(base))
    shuffled = list(simulate(SimulationConfig(seed=8, customers=200, days=4, disorder=0.2,
                                              disorder_window_seconds=120)))
    assert sorted(shuffled, key=lambda r: r["id"]) == sorted(ordered, key=lambda r: r["id"])
    assert shuffled != ordered
    latest = 0
    behind = []
    for record in shuffled:
        t = _ms(record)
        behind.append(latest - t)
        latest = max(latest, t)
    assert max(behind) <= 120_000
    assert sum(1 for b in behind if b > 0) > len(shuffled) * 0.05


# -- behaviour and rates ---------------------------------------------------------------------

def _by_ref(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        out[record["ref"]].append(record)
    return out


TEST_RATES = {"late_first_reply": 0.2, "no_update": 0.3, "first_contact_resolution": 0.5,
              "callback_missed": 0.25, "callback_late": 0.15, "callback_cancelled": 0.05,
              "repeat_contact": 0.2, "visit": 0.9, "visit_unconfirmed": 0.25,
              "visit_confirmed_late": 0.15, "visit_no_show": 0.2, "survey_happy": 0.5,
              "survey_unhappy": 0.3}


@pytest.fixture(scope="module")
def weeks3() -> tuple[SimulationConfig, list[dict[str, Any]]]:
    """Three weeks with the test rates: what starts in the first days finishes inside.

    (A conversation of six agent replies with customer waits between can take two weeks.)
    """
    config = SimulationConfig(seed=11, customers=400, days=21).with_rates(**TEST_RATES)
    return config, list(simulate(config))


def _close(measured: float, expected: float, tolerance: float) -> None:
    assert abs(measured - expected) <= tolerance, f"measured {measured:.3f}, wanted {expected}"


def test_first_reply_rates_per_tier(weeks3: tuple[SimulationConfig, list[dict[str, Any]]]
                                    ) -> None:
    config, records = weeks3
    cutoff = parse_time(config.start.isoformat()) + 7 * DAY
    late: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for ref, events in _by_ref(records).items():
        opened = [e for e in events if e["type"] == "request.opened"]
        if not ref.startswith("req-") or not opened or _ms(opened[0]) >= cutoff:
            continue
        tier = opened[0]["data"]["tier"]
        first = min(_ms(e) for e in events if e["type"] == "request.agent_replied")
        budget = (2 if tier == "gold" else 4) * HOUR
        total[tier] += 1
        late[tier] += SUPPORT_FR.between(_ms(opened[0]), first) > budget
    assert total["gold"] > 300 and total["standard"] > 2000
    for tier in total:
        _close(late[tier] / total[tier], 0.2, 0.04)


def test_callback_outcome_rates(weeks3: tuple[SimulationConfig, list[dict[str, Any]]]
                                ) -> None:
    config, records = weeks3
    end = parse_time(config.end.isoformat())
    outcome: Counter[str] = Counter()
    for ref, events in _by_ref(records).items():
        promised = [e for e in events if e["type"] == "callback.promised"]
        if not ref.startswith("cb-") or _ms(promised[0], "promised_at") > end - 2 * DAY:
            continue
        due = _ms(promised[0], "promised_at")
        done = [_ms(e) for e in events if e["type"] == "callback.completed"]
        if any(e["type"] == "callback.cancelled" for e in events):
            outcome["cancelled"] += 1
        elif not done:
            outcome["missed"] += 1
        else:
            outcome["late" if done[0] > due + 15 * 60_000 else "on_time"] += 1
    total = sum(outcome.values())
    assert total > 1000
    _close(outcome["missed"] / total, 0.25, 0.04)
    _close(outcome["late"] / total, 0.15, 0.04)
    _close(outcome["cancelled"] / total, 0.05, 0.02)
    _close(outcome["on_time"] / total, 1 - 0.25 - 0.15 - 0.05, 0.05)


def test_first_contact_resolution_and_no_update_rates(
        weeks3: tuple[SimulationConfig, list[dict[str, Any]]]) -> None:
    config, records = weeks3
    start = parse_time(config.start.isoformat())
    solved_first = conversations = silent = 0
    requests = 0
    for ref, events in _by_ref(records).items():
        events = [e for e in events if e["type"].startswith("request.")]
        if not ref.startswith("req-") or not events or _ms(events[0]) >= start + 4 * DAY:
            continue
        requests += 1
        if any(e["type"] == "request.resolved" and e["data"]["agent_replies"] <= 1
               and not e["data"]["reopened"] for e in events):
            solved_first += 1
            continue
        conversations += 1
        silent += _longest_silence(events) > 18 * HOUR
    assert requests > 1500
    _close(solved_first / requests, 0.5, 0.04)
    _close(silent / conversations, 0.3, 0.05)


def _longest_silence(events: list[dict[str, Any]]) -> int:
    """Longest business time with no agent update while open (waits on the customer pause)."""
    longest = used = 0
    running, last = True, None
    for event in events:
        t, kind = _ms(event), event["type"]
        if last is not None and running:
            used += SUPPORT_FR.between(last, t)
            longest = max(longest, used)
        last = t
        if kind in ("request.agent_replied", "request.opened", "request.reopened"):
            used, running = 0, True
        elif kind == "request.resolved":
            running = False
        elif kind == "request.status_changed":
            running = event["data"]["status"] == "open"
        elif kind == "request.customer_replied":
            running = True
    return longest


def test_repeats_come_only_from_the_repeat_rate(
        weeks3: tuple[SimulationConfig, list[dict[str, Any]]]) -> None:
    """Contacts per customer and topic (a call opening a request is one contact, as the rule)."""
    config, records = weeks3
    start = parse_time(config.start.isoformat())
    contacts: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for r in records:
        if r["type"] in ("contact.inbound", "request.opened"):
            key = (r["customer"], r["data"]["topic"])
            t = _ms(r)
            if not any(ref == r["ref"] and t - seen <= HOUR for seen, ref in contacts[key]):
                contacts[key].append((t, r["ref"]))
    episodes: list[list[int]] = []   # contacts within 7 days of an episode's first one
    for items in contacts.values():
        mine: list[list[int]] = []
        for t, _ in sorted(items):
            if mine and t - mine[-1][0] <= 7 * DAY:
                mine[-1].append(t)
            else:
                mine.append([t])
        episodes += mine
    assert max(len(e) for e in episodes) == 2     # a problem is repeated once, never more
    early = [e for e in episodes if e[0] < start + 6 * DAY]
    _close(sum(len(e) == 2 for e in early) / len(early), 0.2, 0.03)


def test_visits_windows_confirmations_and_no_shows(
        weeks3: tuple[SimulationConfig, list[dict[str, Any]]]) -> None:
    config, records = weeks3
    start = parse_time(config.start.isoformat())
    stats: Counter[str] = Counter()
    for ref, events in _by_ref(records).items():
        if not ref.startswith("visit-") or _ms(events[0]) >= start + 7 * DAY:
            continue
        booked = events[0]
        assert booked["type"] == "visit.scheduled" and booked["team"] == "field"
        windows = [e for e in events if e["type"] in ("visit.scheduled", "visit.rescheduled")]
        first_start = _ms(booked, "window_start")
        assert 1 * DAY < first_start - _ms(booked) < 6 * DAY    # booked 2-5 days ahead
        for w in windows:
            assert _ms(w, "window_end") - _ms(w, "window_start") == 4 * HOUR
            assert SUPPORT_FR.between(_ms(w, "window_start"), _ms(w, "window_end")) > 0
        if any(e["type"] == "visit.cancelled" for e in events):
            stats["cancelled"] += 1
            continue
        window_start = _ms(windows[-1], "window_start")
        confirmed = [_ms(e) for e in events if e["type"] == "visit.confirmed"]
        if not confirmed:
            stats["unconfirmed"] += 1
        elif confirmed[0] > window_start - DAY:
            stats["confirmed_late"] += 1
        else:
            stats["confirmed"] += 1
        stats["no_show" if any(e["type"] == "visit.no_show" for e in events) else "done"] += 1
    confirmations = stats["unconfirmed"] + stats["confirmed_late"] + stats["confirmed"]
    assert confirmations > 300
    _close(stats["unconfirmed"] / confirmations, 0.25, 0.06)
    _close(stats["confirmed_late"] / confirmations, 0.15, 0.05)
    _close(stats["no_show"] / (stats["no_show"] + stats["done"]), 0.2, 0.06)


def test_survey_scores(weeks3: tuple[SimulationConfig, list[dict[str, Any]]]) -> None:
    _, records = weeks3
    scores = [r["data"]["score"] for r in records if r["type"] == "survey.answered"]
    assert len(scores) > 1000 and set(scores) == {1, 2, 3, 4, 5}
    _close(sum(s >= 4 for s in scores) / len(scores), 0.5, 0.04)
    _close(sum(s <= 2 for s in scores) / len(scores), 0.3, 0.04)


def test_default_rates_in_the_default_week(week: list[dict[str, Any]]) -> None:
    end = parse_time("2026-11-09T00:00:00+01:00")
    missed = total = 0
    for ref, events in _by_ref(week).items():
        if ref.startswith("cb-") and _ms(events[0], "promised_at") < end - 12 * HOUR:
            total += 1
            missed += not any(e["type"] in ("callback.completed", "callback.cancelled")
                              for e in events)
    assert total > 1000
    _close(missed / total, Rates().callback_missed, 0.03)


def test_agents_reply_in_business_hours(week: list[dict[str, Any]]) -> None:
    replies = [_ms(r) for r in week if r["type"] == "request.agent_replied"]
    inside = sum(SUPPORT_FR.between(t - 1000, t) > 0 for t in replies)
    assert inside / len(replies) > 0.9
    holiday = parse_time("2026-11-11T00:00:00+01:00")   # Armistice Day, a Wednesday
    on_holiday = sum(holiday <= t < holiday + DAY for t in replies)
    assert on_holiday < len(replies) * 0.02


# -- writing and the command -----------------------------------------------------------------

def test_write_jsonl_gzip_by_suffix_and_stdout(tmp_path: Path,
                                               capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    config = SimulationConfig(seed=2, customers=40, days=3)
    plain, packed = tmp_path / "e.jsonl", tmp_path / "e.jsonl.gz"
    count = write_jsonl(plain, config)
    assert write_jsonl(packed, config) == count
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    capfdbinary.readouterr()
    assert write_jsonl("-", config) == count
    assert capfdbinary.readouterr().out == plain.read_bytes()
    ce = tmp_path / "ce.jsonl"
    assert write_jsonl(ce, config, cloudevents=True) == count
    first = orjson.loads(ce.read_bytes().splitlines()[0])
    assert first["specversion"] == "1.0" and CLOUD_SCHEMA.is_valid(first)


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="callback_missed"):
        Rates(callback_missed=1.5)
    with pytest.raises(ConfigError, match="must not exceed 1"):
        Rates(callback_missed=0.6, callback_late=0.5)
    with pytest.raises(ConfigError, match="unknown rate"):
        SimulationConfig().with_rates(nonsense=0.1)
    with pytest.raises(ConfigError, match="time zone"):
        SimulationConfig(start=SimulationConfig().start.replace(tzinfo=None))
    with pytest.raises(ConfigError, match="channel"):
        SimulationConfig(channel_mix=(("pigeon", 1.0),))
    assert SimulationConfig().with_rates(visit=0.5).rates.visit == 0.5
    assert SimulationConfig().end - SimulationConfig().start == timedelta(days=7)


def test_the_simulate_command(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("simulate")(simulate_command)
    app.command("noop")(lambda: None)   # two commands, so "simulate" is a sub-command
    out = tmp_path / "sim.jsonl"
    runner = CliRunner()
    args = ["simulate", "--customers", "60", "--days", "3", "--seed", "4", "-o", str(out)]
    overrides = {"callback": 1.0, "callback_missed": 1.0, "callback_late": 0.0,
                 "callback_cancelled": 0.0}
    rates = [part for name, value in overrides.items() for part in ("--rate", f"{name}={value}")]
    result = runner.invoke(app, [*args, *rates])
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().splitlines()
    assert f"{len(lines):,} events -> {out}" in result.stderr
    records = [orjson.loads(line) for line in lines]
    promised = sum(r["type"] == "callback.promised" for r in records)
    assert promised > 100                       # every request promised a callback...
    assert not any(r["type"] == "callback.completed" for r in records)   # ...none made
    expected = SimulationConfig(customers=60, days=3, seed=4).with_rates(**overrides)
    assert lines == _lines(expected)

    refused = runner.invoke(app, [*args, "--rate", "callback_missed"])
    assert refused.exit_code == 2
    too_much = runner.invoke(app, [*args, "--rate", "callback_missed=0.95"])
    assert too_much.exit_code == 2 and "must not exceed 1" in too_much.stderr
    unknown = runner.invoke(app, [*args, "--rate", "nope=0.1"])
    assert unknown.exit_code == 2 and "unknown rate" in unknown.stderr


def test_the_examples_of_the_event_docs_are_valid() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    blocks = [json.loads(b.split("```", 1)[0]) for b in text.split("```json\n")[1:]]
    assert len(blocks) == 2
    canonical, cloud = blocks
    assert not list(EVENTS_SCHEMA.iter_errors(canonical))
    assert not list(CLOUD_SCHEMA.iter_errors(cloud))
    assert to_cloudevent(canonical) == cloud
    assert decode(orjson.dumps(canonical)) == decode(orjson.dumps(cloud))

