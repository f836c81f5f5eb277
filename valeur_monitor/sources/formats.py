"""Split raw input into payloads: one JSON document, JSON lines, or Asterisk queue_log lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from valeur_monitor.reasons import BAD_ENCODING, MALFORMED_JSON, UNMAPPABLE

# queue_log: epoch|callid|queue|agent|event|data1|data2|... (Asterisk's documented layout)
QUEUE_LOG_FIELDS = ("time", "callid", "queue", "agent", "event")
QUEUE_LOG_DATA = 5          # data1..data5 are always present in the body (empty when absent)

Payload = tuple[bytes, Any, tuple[str, str] | None]   # raw bytes, decoded body, (reason, detail)


def split_payloads(fmt: str, raw: bytes) -> Iterator[Payload]:
    if fmt == "queue_log":
        for line in raw.splitlines():
            if line.strip():
                yield parse_queue_log_line(line)
        return
    yield from _json_payloads(raw)


def _json_payloads(raw: bytes) -> Iterator[Payload]:
    """One JSON document; if that fails and there are several lines, JSON lines."""
    try:
        yield raw, orjson.loads(raw), None
        return
    except orjson.JSONDecodeError as exc:
        lines = [line for line in raw.splitlines() if line.strip()]
        if len(lines) < 2:
            yield raw, None, (MALFORMED_JSON, str(exc))
            return
    for line in lines:
        try:
            yield line, orjson.loads(line), None
        except orjson.JSONDecodeError as exc:
            yield line, None, (MALFORMED_JSON, str(exc))


def parse_queue_log_line(line: bytes) -> Payload:
    """One queue_log line as a body: time (int), callid, queue, agent, event, data, data1..5."""
    raw = line.rstrip(b"\r\n")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw, None, (BAD_ENCODING, "queue_log line is not UTF-8")
    parts = text.split("|")
    if len(parts) < len(QUEUE_LOG_FIELDS):
        return raw, None, (UNMAPPABLE, f"queue_log line has {len(parts)} fields, "
                                         f"expected at least {len(QUEUE_LOG_FIELDS)}")
    try:
        when = int(float(parts[0]))
    except ValueError:
        return raw, None, (UNMAPPABLE, "queue_log time is not epoch seconds")
    body: dict[str, Any] = dict(zip(QUEUE_LOG_FIELDS[1:], parts[1:5], strict=True))
    body["time"] = when
    data = parts[5:]
    body["data"] = data
    for i in range(QUEUE_LOG_DATA):
        body[f"data{i + 1}"] = data[i] if i < len(data) else ""
    return raw, body, None
