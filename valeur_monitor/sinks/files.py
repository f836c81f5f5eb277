"""File sinks: ledger and scores as JSONL or CSV (by suffix), dead letters as JSONL."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import orjson

from valeur_monitor.engine.event import format_time
from valeur_monitor.engine.ledger import DIMENSIONS, LedgerEntry
from valeur_monitor.read.views import factor
from valeur_monitor.service import DeadLetter
from valeur_monitor.store.base import ScoreView

LEDGER_FIELDS = ("customer", "seq", "time", "rule", "outcome", "dimension", "amount", "value",
                 "ref", "team", "channel", "late", "events", "explain", "rules_version")
DEAD_LETTER_FIELDS = ("reason", "detail", "record")


def render_lines(rows: Iterable[dict[str, Any]], fields: tuple[str, ...] | None) -> list[str]:
    """Each row as the text line a writer puts in its file: JSON, or CSV with `fields`.

    `run --workers N` renders lines in the shard processes and the parent only merges them."""
    if fields is None:
        return [orjson.dumps(r).decode() + "\n" for r in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    lines = []
    for row in rows:
        writer.writerow(row)
        lines.append(buffer.getvalue())
        buffer.seek(0)
        buffer.truncate()
    return lines


def csv_fields(path: str | Path, fields: tuple[str, ...]) -> tuple[str, ...] | None:
    """The CSV columns of a file written at `path`, None when it is written as JSONL."""
    return fields if Path(path).suffix == ".csv" else None


def ledger_rows(entries: Iterable[LedgerEntry], as_csv: bool) -> Iterator[dict[str, Any]]:
    """Ledger entries as rows (in CSV the events ids are one space-separated cell)."""
    rows = (e.to_json() for e in entries)
    if as_csv:
        return ({**r, "events": " ".join(r["events"])} for r in rows)
    return rows


def dead_letter_rows(letters: Iterable[DeadLetter]) -> list[dict[str, Any]]:
    """Refused records as rows: reason, detail and the original line, untouched."""
    return [{"reason": d.reason, "detail": d.detail,
             "record": d.raw.decode("utf-8", "replace").rstrip("\n")} for d in letters]


class _Writer:
    def __init__(self, path: str | Path, fields: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[Any] = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.fields = csv_fields(self.path, fields)
        self._csv = None
        if self.fields is not None:
            self._csv = csv.DictWriter(self._file, fieldnames=self.fields, extrasaction="ignore")
            self._csv.writeheader()

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        if self._csv is not None:
            self._csv.writerows(rows)
        else:
            self._file.write("".join(render_lines(rows, None)))

    def write_text(self, text: str) -> None:
        """Lines already rendered by `render_lines` for this file's format."""
        self._file.write(text)

    def close(self) -> None:
        self._file.close()


class LedgerWriter(_Writer):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, LEDGER_FIELDS)

    def write(self, entries: Iterable[LedgerEntry]) -> None:
        self.write_rows(ledger_rows(entries, self.fields is not None))


def at_as_of(view: ScoreView, as_of: int, half_life: int | None) -> ScoreView:
    """The score seen at `as_of` (decayed forward from its last update when rules decay)."""
    f = factor(as_of - view.at, half_life) if view.at and as_of >= view.at else 1.0
    if f == 1.0:
        return view
    return replace(view, total=view.total * f, dims={d: v * f for d, v in view.dims.items()})


def score_row(view: ScoreView, reasons: int = 3, rules_version: str = "",
              as_of: int | None = None) -> dict[str, Any]:
    """A score as a row; with `as_of`, the view is already decayed to it (see `at_as_of`)."""
    row: dict[str, Any] = {"customer": view.customer, "score": round(view.total, 6)}
    if as_of is not None:
        row["as_of"] = format_time(as_of)
    row.update({"at": format_time(view.at) if view.at else None,
                "created": round(view.created, 6), "destroyed": round(view.destroyed, 6)})
    for dim in DIMENSIONS:
        row[dim] = round(view.dims.get(dim, 0.0), 6)
    row["top_reasons"] = [{"rule": r, "value": round(v, 6)} for r, v in view.top_reasons(reasons)]
    if rules_version:
        row["rules_version"] = rules_version
    return row


class ScoresWriter(_Writer):
    """Final scores, every one decayed to the same `as_of` (stated in each row)."""

    def __init__(self, path: str | Path, rules_version: str = "", *, as_of: int | None = None,
                 half_life: int | None = None) -> None:
        super().__init__(path, ("customer", "score", "as_of", "at", "created", "destroyed",
                                *DIMENSIONS, "top_reasons", "rules_version"))
        self.rules_version = rules_version
        self.as_of, self.half_life = as_of, half_life

    def write(self, views: Iterable[ScoreView]) -> None:
        as_of = self.as_of
        rows = (score_row(v if as_of is None else at_as_of(v, as_of, self.half_life),
                          rules_version=self.rules_version, as_of=as_of) for v in views)
        if self.fields is not None:
            rows = ({**r, "top_reasons": " ".join(f"{x['rule']}={x['value']:g}"
                                                   for x in r["top_reasons"])} for r in rows)
        self.write_rows(rows)


class DeadLetterWriter:
    """One JSON object per refused record: reason, detail and the original line, untouched.

    The file is created on the first dead letter only, so a clean run leaves nothing behind.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._writer: _Writer | None = None

    def write(self, letters: Iterable[DeadLetter]) -> None:
        self.write_lines(render_lines(dead_letter_rows(letters),
                                      csv_fields(self.path, DEAD_LETTER_FIELDS)))

    def write_lines(self, lines: list[str]) -> None:
        """Dead letters already rendered (`render_lines` of `dead_letter_rows`)."""
        if not lines:
            return
        if self._writer is None:
            self._writer = _Writer(self.path, DEAD_LETTER_FIELDS)
        self.count += len(lines)
        self._writer.write_text("".join(lines))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
