"""A Redis commit prepared in one thread and compressed by the sending one (redis_commit.Prepared):
the same script arguments, byte for byte, as compressing every head and frame at once."""

from __future__ import annotations

import os
import threading

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valeur_monitor.engine.ledger import LedgerEntry
from valeur_monitor.engine.state import CustomerState, Score
from valeur_monitor.store.base import Commit
from valeur_monitor.store.keys import Keys
from valeur_monitor.store.record import (
    ENTRY_CODEC,
    HEAD_CODEC,
    MAX_PAYLOAD,
    codec_byte,
    compressed,
    compressor,
    encode_frame,
    encode_head,
    encode_update,
    entry_raw,
    head_raw,
)
from valeur_monitor.store.redis_commit import _open_counts, commit_call

pytestmark = pytest.mark.unit

text = st.text(max_size=30)
floats = st.floats(allow_nan=False)


def entry(customer: str, seq: int, explain: str = "x") -> LedgerEntry:
    return LedgerEntry(customer, seq, "r", "kept", "time", 1.0, 1.0, 1_794_000_000_123 + seq,
                       ("e",), explain)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]),
                       st.tuples(floats, st.integers(0, 5), st.dictionaries(text, floats,
                                                                           max_size=3)),
                       max_size=4))
def test_prepared_arguments_are_the_bytes_of_compressing_each_at_once(
        customers: dict[str, tuple[float, int, dict[str, float]]]) -> None:
    commit = Commit(watermark=1_794_000_000_000)
    for name, (total, entries, reasons) in customers.items():
        state = CustomerState(name, seq=entries, score=Score(total=total), reasons=reasons)
        commit.states[name] = state
        commit.due[name] = -1 if entries % 2 else 1_794_000_100_000 + entries
        # out of seq order: the commit sorts a customer's entries by seq
        commit.entries += [entry(name, s) for s in reversed(range(1, entries + 1))]
    prepared = commit_call(Keys("t:"), commit, 20, 30 * 86_400_000)
    expected = [encode_update(state, _open_counts(state),
                              [encode_frame(entry(name, s))
                               for s in range(1, state.seq + 1)])
                for name, state in commit.states.items()]
    keys, args = prepared.call()
    # the merge form (nothing known of the stored values): an empty meta, then the update
    assert args[7:-1:2] == [b""] * len(customers)
    assert args[8:-1:2] == expected
    assert msgspec.msgpack.decode(args[-1]) == []    # no known form: every score ranked
    assert args[6] == str(len(customers))
    assert keys == ["t:epoch", "t:watermark", "t:ranking", "t:due", "t:open-promises",
                    *(f"t:{{c:{c}}}" for c in customers)]
    assert msgspec.msgpack.decode(args[3]) == [
        x for c, s in commit.states.items() for x in (repr(float(s.score.total)), c)]
    assert msgspec.msgpack.decode(args[4]) == [
        x for c, at in commit.due.items() if at >= 0 for x in (str(at), c)]
    assert msgspec.msgpack.decode(args[5]) == [c for c, at in commit.due.items() if at < 0]
    assert prepared.call()[1] is args            # a retried send sends the same bytes
    plain = commit_call(Keys("t:"), commit, 20, 30 * 86_400_000, compress=False)
    assert plain.call()[1][8::2] == [
        encode_update(state, _open_counts(state),
                      [encode_frame(entry(name, s), compress=False)
                       for s in range(1, state.seq + 1)], compress=False)
        for name, state in commit.states.items()]


def compress_all(kind: str, raws: list[bytes]) -> list[bytes]:
    """Each record as the commit thread sends it: codec byte, then `compressed`'s buffer."""
    return [codec_byte(kind) + bytes(c) for c in compressed(kind, raws)]


def test_compress_all_matches_one_by_one_and_each_thread_has_its_own_compressor() -> None:
    states = [CustomerState(f"c-{i}", seq=i, reasons={f"rule-{i}": float(i)}) for i in range(50)]
    raws = [head_raw(s) for s in states]
    assert compress_all("head", raws) == [encode_head(s) for s in states]
    frames = [entry_raw(entry("c", i)) for i in range(1, 30)]
    want = [bytes((ENTRY_CODEC,)) + compressor("entry", ENTRY_CODEC).compress(r)
            for r in frames]
    assert compress_all("entry", frames) == want
    assert compress_all("head", []) == []
    results: list[bool] = []
    heads = [encode_head(s) for s in states]

    def work() -> None:
        for _ in range(20):
            results.append(compress_all("head", raws) == heads
                           and [encode_head(s) for s in states] == heads)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 60 and HEAD_CODEC == 2


def test_without_the_c_backend_each_is_compressed_alone_to_the_same_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from valeur_monitor.store import record

    raws = [head_raw(CustomerState(f"c-{i}", seq=i)) for i in range(5)]
    want = compress_all("head", raws)
    monkeypatch.setattr(record, "_MULTI", False)
    assert compress_all("head", raws) == want


def test_an_entry_too_long_once_compressed_is_refused_when_prepared() -> None:
    state = CustomerState("a", seq=2)
    too_long = entry("a", 1, os.urandom(100_000).hex())  # 200 KB: 100 KB compressed
    commit = Commit(states={"a": state}, entries=[too_long], watermark=1)
    with pytest.raises(OverflowError, match=f"limit {MAX_PAYLOAD}"):
        commit_call(Keys("t:"), commit, 20)
    # long but compressible: accepted, its frame compressed within the limit
    long_ok = entry("a", 2, "abc" * 30_000)
    commit = Commit(states={"a": state}, entries=[long_ok], watermark=1)
    args = commit_call(Keys("t:"), commit, 20).call()[1]
    assert args[7:-1] == [b"", encode_update(state, _open_counts(state),
                                             [encode_frame(long_ok)])]
