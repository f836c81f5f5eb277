"""File sinks: ledger and scores as JSONL or CSV (by suffix), dead letters as JSONL."""

from __future__ import annotations

import csv
from collections.abc import Iterable
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


class _Writer:
    def __init__(self, path: str | Path, fields: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[Any] = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._csv = None
        if self.path.suffix == ".csv":
            self._csv = csv.DictWriter(self._file, fieldnames=fields, extrasaction="ignore")
            self._csv.writeheader()

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        if self._csv is not None:
            for row in rows:
                self._csv.writerow(row)
        else:
            self._file.write("".join(orjson.dumps(r).decode() + "\n" for r in rows))

    def close(self) -> None:
        self._file.close()


class LedgerWriter(_Writer):
    def __init__(self, path: str | Path) -> None:
        super().__init__(path, LEDGER_FIELDS)

    def write(self, entries: Iterable[LedgerEntry]) -> None:
        rows = (e.to_json() for e in entries)
        if self._csv is not None:
            rows = ({**r, "events": " ".join(r["events"])} for r in rows)
        self.write_rows(rows)


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
        if self._csv is not None:
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
        rows = [{"reason": d.reason, "detail": d.detail,
                 "record": d.raw.decode("utf-8", "replace").rstrip("\n")} for d in letters]
        if not rows:
            return
        if self._writer is None:
            self._writer = _Writer(self.path, ("reason", "detail", "record"))
        self.count += len(rows)
        self._writer.write_rows(rows)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
