"""Rule reloads for running processes: a signal asks, the next batch boundary switches.

`Reloader.request()` is safe to call from a signal handler (it only sets a flag). The runner
calls `apply(processor, positions)` between batches: the rules are loaded again; on success the
processor switches and the switch is recorded with the input positions where the new version
starts (Kafka offsets per partition, or a line count); on failure the running rules stay and the
problems are logged and counted. Either way the outcome is in the metrics:
`valeur_rules_reloads_total{result}` and `valeur_rules_info{version}` (1 for the loaded one).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from valeur_monitor.errors import ConfigError
from valeur_monitor.service import Processor

log = logging.getLogger("valeur_monitor.reload")


@dataclass(frozen=True)
class Switch:
    """One successful reload: from which version to which, starting at which positions."""

    old: str
    new: str
    at: float                                # wall-clock time of the switch
    positions: dict[int, int] = field(default_factory=dict)   # partition -> first new offset
    # partition -> stream time at the switch: with ordered input, events up to it were scored
    # by `old` (released before), later ones by `new` (the reorder buffer is released after)
    watermarks: dict[int, int] = field(default_factory=dict)


class Reloader:
    """Reload requests and their outcomes for one running processor."""

    def __init__(self, paths: Sequence[str], label: str | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.paths = list(paths)
        self.label = label
        self._requested = threading.Event()
        self.switches: list[Switch] = []
        self.failures = 0
        self.last_error = ""
        self._reloads = self._info = None
        if registry is not None:
            self._reloads = Counter("valeur_rules_reloads", "Rule reloads by result",
                                    ["result"], registry=registry)
            self._info = Gauge("valeur_rules_info", "The loaded rule-set version (value 1)",
                               ["version"], registry=registry)

    def started(self, version: str) -> None:
        """The version loaded at start (shown before any reload)."""
        if self._info is not None:
            self._info.labels(version).set(1)

    def request(self) -> None:
        """Ask for a reload at the next batch boundary (signal-handler safe)."""
        self._requested.set()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def apply(self, processor: Processor, positions: Mapping[int, int] | None = None,
              watermarks: Mapping[int, int] | None = None) -> bool:
        """Reload now if asked; True when the rules changed. Never raises on bad rules."""
        if not self._requested.is_set():
            return False
        self._requested.clear()
        old = processor.rules.version
        issues = processor.reload(self.paths, self.label)
        if issues:
            self.failures += 1
            self.last_error = f"{len(issues)} problem(s), first: {issues[0]}"
            log.error("rules reload refused, keeping %s: %s", old,
                      "; ".join(str(i) for i in issues[:5]))
            if self._reloads is not None:
                self._reloads.labels("failed").inc()
            return False
        new = processor.rules.version
        switch = Switch(old, new, time.time(), dict(positions or {}), dict(watermarks or {}))
        self.switches.append(switch)
        log.info("rules reloaded: %s -> %s at positions %s, stream times %s", old, new,
                 switch.positions, switch.watermarks)
        if self._reloads is not None and self._info is not None:
            self._reloads.labels("ok").inc()
            self._info.labels(old).set(0)
            self._info.labels(new).set(1)
        return True

    def install_sighup(self) -> None:
        """SIGHUP asks for a reload (main thread only)."""
        signal.signal(signal.SIGHUP, lambda *_: self.request())


def write_pid_file(path: Path) -> None:
    """Where `rules reload --pid-file` finds this process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")


def signal_reload(pid_files: Sequence[Path]) -> list[int]:
    """Send SIGHUP to the process of each pid file; ConfigError naming any that cannot be."""
    sent: list[int] = []
    problems: list[str] = []
    for path in pid_files:
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, signal.SIGHUP)
            sent.append(pid)
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
    if problems:
        raise ConfigError("cannot signal: " + "; ".join(problems))
    return sent
