"""The notices file of an embedded run: every warning and alert, one JSON object per line."""

from __future__ import annotations

from pathlib import Path

import orjson

from valeur_monitor.service import BatchResult


class NoticeWriter:
    """A batch hook appending the batch's notices in the order the engine emitted them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self.count = 0

    def __call__(self, result: BatchResult, seconds: float) -> None:
        if result.notices:
            self._file.write(b"".join(orjson.dumps(n.to_json()) + b"\n" for n in result.notices))
            self.count += len(result.notices)

    def close(self) -> None:
        self._file.close()
