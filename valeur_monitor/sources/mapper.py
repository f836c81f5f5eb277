"""Apply a source mapping: vendor payload bytes -> canonical events, or dead letters.

Pure apart from its bounded memory of remembered values (e.g. a call's caller number, seen on
the ENTERQUEUE line and needed by the later lines of the same call). No I/O, no clock: the
receive time, when a mapping needs it, is passed in.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from valeur_monitor.codec import from_dict
from valeur_monitor.engine.event import format_time, parse_time, to_canonical
from valeur_monitor.errors import EventError
from valeur_monitor.identity.resolve import Resolution, Resolver
from valeur_monitor.reasons import UNKNOWN_CUSTOMER, UNMAPPABLE
from valeur_monitor.service import DeadLetter
from valeur_monitor.sources.formats import split_payloads
from valeur_monitor.sources.model import Emit, Mapping, Source

# Errors a CEL evaluation raises for missing fields or wrong types.
EVAL_ERRORS = (LookupError, ValueError, RuntimeError, TypeError)


@dataclass
class Mapped:
    """What one request or file chunk became."""

    events: list[tuple[bytes, bytes]] = field(default_factory=list)  # (customer key, JSON)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    payloads: int = 0
    ignored: int = 0          # payloads no mapping matched (with `unmatched: ignore`)

    def absorb(self, other: Mapped) -> None:
        self.events.extend(other.events)
        self.dead_letters.extend(other.dead_letters)
        self.payloads += other.payloads
        self.ignored += other.ignored


class _Unmappable(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Mapper:
    """Maps the payloads of one source; keeps that source's bounded memory between calls."""

    def __init__(self, source: Source, resolver: Resolver) -> None:
        self.source = source
        self.resolver = resolver
        self.memory: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def map(self, raw: bytes, received: int | None = None) -> Mapped:
        """Every payload in `raw` (one JSON document, JSON lines or queue_log lines)."""
        out = Mapped()
        for payload, body, error in split_payloads(self.source.format, raw):
            out.payloads += 1
            if error is not None:
                out.dead_letters.append(DeadLetter(payload, error[0], error[1]))
                continue
            out.absorb(self.map_body(payload, body, received))
        return out

    def map_body(self, payload: bytes, body: Any, received: int | None = None) -> Mapped:
        """One decoded payload; `payload` is its raw bytes, kept whole in dead letters."""
        out = Mapped()
        base: dict[str, Any] = {"body": body, "maps": self.source.maps,
                                "received": format_time(received) if received else None}
        matched = False
        failures: list[tuple[str, str]] = []
        for mapping in self.source.mappings:
            for bound in self._bindings(mapping, base, failures):
                matched = True
                self._remember(mapping, bound)
                if mapping.emit is None:
                    continue
                try:
                    out.events.append(self._event(mapping, mapping.emit, bound))
                except _Unmappable as exc:
                    failures.append((exc.reason, f"mapping {mapping.name}: {exc.detail}"))
        if failures:
            # One dead letter per payload, whole, with every reason (the events that did map
            # are kept: a replay of the dead letter later gives them the same ids).
            details = list(dict.fromkeys(detail for _, detail in failures))
            more = f" (+{len(details) - 3} more)" if len(details) > 3 else ""
            out.dead_letters.append(DeadLetter(payload, failures[0][0],
                                               "; ".join(details[:3]) + more))
        elif not matched:
            if self.source.unmatched == "dead_letter":
                out.dead_letters.append(DeadLetter(payload, UNMAPPABLE, "no mapping matched"))
            else:
                out.ignored += 1
        return out

    # -- steps ---------------------------------------------------------------------------------
    def _bindings(self, mapping: Mapping, base: dict[str, Any],
                  failures: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
        """Variable sets for which `when` holds: the product of the `each` lists."""
        def walk(i: int, bound: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if i == len(mapping.each):
                yield bound
                return
            name, expr = mapping.each[i]
            try:
                items = expr.evaluate(bound)
            except LookupError:
                return      # the payload has no such list: nothing to iterate
            except EVAL_ERRORS as exc:
                failures.append((UNMAPPABLE, f"mapping {mapping.name}: each {name}: {exc}"))
                return
            if not isinstance(items, list):
                failures.append((UNMAPPABLE, f"mapping {mapping.name}: each {name}: not a list"))
                return
            for item in items:
                yield from walk(i + 1, {**bound, name: item})

        for bound in walk(0, base):
            if mapping.recall is not None:
                try:
                    key = str(mapping.recall.evaluate(bound))
                except EVAL_ERRORS:
                    key = ""
                memo = self.memory.get(key)
                if memo is not None:
                    self.memory.move_to_end(key)
                bound = {**bound, "memo": memo or {}}
            if mapping.when is not None:
                try:
                    if mapping.when.evaluate(bound) is not True:
                        continue
                except EVAL_ERRORS:
                    continue
            yield bound

    def _remember(self, mapping: Mapping, bound: dict[str, Any]) -> None:
        if mapping.remember is None or self.source.memory == 0:
            return
        try:
            key = str(mapping.remember.key.evaluate(bound))
        except EVAL_ERRORS:
            return
        values = self.memory.pop(key, {})
        for name, expr in mapping.remember.values:
            try:
                values[name] = expr.evaluate(bound)
            except EVAL_ERRORS:
                continue
        self.memory[key] = values
        while len(self.memory) > self.source.memory:
            self.memory.popitem(last=False)

    def _event(self, mapping: Mapping, emit: Emit, bound: dict[str, Any]) -> tuple[bytes, bytes]:
        def value(expr: Any, what: str, required: bool = False) -> Any:
            if expr is None:
                return None
            try:
                return expr.evaluate(bound)
            except EVAL_ERRORS as exc:
                if required:
                    raise _Unmappable(UNMAPPABLE, f"{what}: {exc}") from None
                return None

        time_ms = _time_ms(value(emit.time, "time", required=True))
        resolution = self._customer(emit, bound)
        data: dict[str, Any] = {}
        for name, expr in emit.data:
            got = value(expr, f"data.{name}")
            if got is not None:
                data[name] = got
        if resolution.account:
            data["account"] = resolution.account
        event_id = value(emit.id, "id", required=True)
        if event_id is None:
            event_id = self._derived_id(mapping, bound)
        record: dict[str, Any] = {"id": str(event_id), "type": emit.type,
                                  "time": format_time(time_ms), "customer": resolution.customer,
                                  "source": self.source.name}
        optional = (("ref", emit.ref), ("channel", emit.channel), ("team", emit.team))
        for name, field_expr in optional:
            got = value(field_expr, name)
            if got not in (None, ""):
                record[name] = str(got)
        if data:
            record["data"] = data
        try:
            event = from_dict(record)
        except EventError as exc:
            raise _Unmappable(UNMAPPABLE, f"{exc.reason}: {exc.detail}") from None
        assert resolution.customer is not None
        return resolution.customer.encode(), orjson.dumps(to_canonical(event))

    def _customer(self, emit: Emit, bound: dict[str, Any]) -> Resolution:
        """First reference the book knows; else the policy for unknown identities."""
        found: list[tuple[str, Any]] = []
        last = "no customer reference in the payload"
        region, policy = self.source.identity.region, self.source.identity.unknown
        for ref in emit.customers:
            try:
                raw = ref.expr.evaluate(bound)
            except EVAL_ERRORS:
                continue
            if raw in (None, ""):
                continue
            found.append((ref.kind, raw))
            result = self.resolver.resolve(ref.kind, raw, namespace=self.source.name,
                                           region=region)
            if result.customer is not None:
                return result
            last = result.detail
        if policy == "derive":
            for kind, raw in found:
                result = self.resolver.resolve(kind, raw, namespace=self.source.name,
                                               region=region, policy="derive")
                if result.customer is not None:
                    return result
                last = result.detail
        raise _Unmappable(UNKNOWN_CUSTOMER, last)

    def _derived_id(self, mapping: Mapping, bound: dict[str, Any]) -> str:
        """Same payload, same id: a retry of the sender is a duplicate, never a new event."""
        parts = [bound.get(name) for name, _ in mapping.each] or [bound["body"]]
        digest = hashlib.sha256(orjson.dumps([mapping.name, parts],
                                             option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f"{self.source.name}-{digest[:24]}"


def _time_ms(value: Any) -> int:
    """RFC 3339 text, or epoch seconds as a number (queue_log, export `timestamp`)."""
    if isinstance(value, bool) or value is None:
        raise _Unmappable(UNMAPPABLE, "time: missing")
    if isinstance(value, int | float):
        return round(float(value) * 1000)
    try:
        return parse_time(value)
    except ValueError as exc:
        raise _Unmappable(UNMAPPABLE, f"time: {exc}") from None
