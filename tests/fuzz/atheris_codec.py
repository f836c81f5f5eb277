"""`make fuzz`: coverage-guided fuzzing of the codec, the routing key and the line reader.

Runs atheris (libFuzzer for Python) over at least 1 M inputs, seeded with tests/fuzz/corpus.py.
Every input must decode to an event or raise EventError with a reason of DEAD_LETTER_REASONS;
anything else is a crash (atheris stops and saves the input). At the end, one summary line:
inputs, events, dead letters by reason, crashes (0), seconds.

    python -m tests.fuzz.atheris_codec [-atheris_runs=N] [libFuzzer flags...]
"""

from __future__ import annotations

import atexit
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from valeur_monitor.catalogue import active
    from valeur_monitor.codec import Codec, routing_key
    from valeur_monitor.errors import EventError
    from valeur_monitor.reasons import DEAD_LETTER_REASONS
    from valeur_monitor.runner.inputs import LineSplitter

from tests.fuzz.corpus import SEEDS

CODEC = Codec(active(), max_bytes=2048, max_depth=32)   # inputs reach 4 KiB: too_large too
REASONS = frozenset(DEAD_LETTER_REASONS)
STATS: Counter[str] = Counter()
STARTED = time.monotonic()


def one_input(data: bytes) -> None:
    STATS["inputs"] += 1
    try:
        event = CODEC.decode(data)
    except EventError as exc:
        if exc.reason not in REASONS or not exc.detail:
            raise AssertionError(f"unknown reason {exc.reason!r}") from None
        STATS[exc.reason] += 1
    else:
        STATS["events"] += 1
        key = routing_key(data)
        if key != event.customer.encode():
            raise AssertionError(f"routing key {key!r} is not the customer {event.customer!r}")
    splitter = LineSplitter(256)
    lines = splitter.feed(data) + splitter.end()
    if any(len(line) > 259 for line in lines):
        raise AssertionError("a line longer than the limit was kept")


def _summary() -> None:
    seconds = time.monotonic() - STARTED
    dead = {k: v for k, v in sorted(STATS.items()) if k in REASONS}
    print(f"fuzz summary: {STATS['inputs']:,} inputs in {seconds:,.0f} s, {STATS['events']:,} "
          f"events, {sum(dead.values()):,} dead letters {dead}, crashes 0", flush=True)


def main() -> None:
    corpus = Path(tempfile.mkdtemp(prefix="valeur-fuzz-"))
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
    args = [sys.argv[0], *sys.argv[1:]]
    if not any(a.startswith("-atheris_runs=") or a.startswith("-runs=") for a in args):
        args.append("-atheris_runs=1000000")
    args += ["-max_len=4096", str(corpus)]
    atexit.register(_summary)
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
