"""SIGKILL a writer at random moments; the store must stay whole and self-consistent.

The second half kills writers in the middle of multi-document commits: each commit
must then be visible whole or not at all, to fresh readers and to readers that had
the store open all along (one in this process, one in another process that reads
continuously while the writers are being killed).

After every kill a *fresh* backend (a reopen: it replays the dead writer's intent)
must read every key as a complete revision, and its index must answer queries
and counts exactly as the documents do. At the end every history is checked for
holes and every revision for completeness.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import ConflictError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import (
    ANY,
    MUST_NOT_EXIST,
    ConditionCheck,
    Delete,
    DocumentWrite,
    FieldFilter,
    IndexEntry,
    Operation,
    Put,
    Query,
    StoredDocument,
    at_revision,
)
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem.backend import Durability

SCOPE = Scope("crash", "test")
KIND = "doc"
KEYS = (*(f"key-{i}" for i in range(6)), "Key/With/Slashes", "x" * 300)
BUCKETS = ("red", "green", "blue")


def _write(key: str, n: int, rng: random.Random) -> DocumentWrite:
    # the padding makes torn writes observable: a partial body would not parse
    body = canonical_json({"key": key, "n": n, "pad": "p" * rng.randrange(0, 20_000)})
    tags = tuple(rng.sample(BUCKETS, rng.randrange(1, 3)))
    index = IndexEntry({"bucket": tags, "parity": (str(n % 2),)}, f"{rng.randrange(50):03d}")
    return DocumentWrite(key, body, content_hash(body), index)


def _writer(root: str, seed: int, durability: Durability = "full") -> None:
    rng = random.Random(seed)
    backend = FilesystemBackend(root, durability=durability)
    n = 0
    while True:
        n += 1
        roll = rng.random()
        if roll < 0.15:
            backend.put_many(SCOPE, KIND, (_write(k, n, rng) for k in rng.sample(KEYS, 4)))
        elif roll < 0.25:
            with contextlib.suppress(NotFoundError):
                backend.delete(SCOPE, KIND, rng.choice(KEYS))
        else:
            backend.put(SCOPE, KIND, _write(rng.choice(KEYS), n, rng), ANY)


def _live(backend: FilesystemBackend) -> dict[str, tuple[int, IndexEntry]]:
    live = {}
    for key in KEYS:
        try:
            doc = backend.get(SCOPE, KIND, key)
        except NotFoundError:
            continue
        assert json.loads(doc.body)["key"] == key, "a document is torn or misplaced"
        live[key] = (doc.revision, doc.index)
    return live


def _query_all(
    backend: FilesystemBackend, query: Query, scope: Scope = SCOPE, kind: str = KIND
) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    while True:
        page = backend.query(scope, kind, query)
        out += [(d.key, d.revision) for d in page.items]
        if page.next_token is None:
            return out
        query = Query(query.filters, query.descending, query.limit, page.next_token)


def assert_index_agrees(root: Path) -> dict[str, tuple[int, IndexEntry]]:
    with FilesystemBackend(root) as backend:
        # a query opens the scope, which replays whatever the dead writer left
        everything = _query_all(backend, Query(limit=3))
        live = _live(backend)
        assert sorted(everything) == sorted((k, rev) for k, (rev, _) in live.items())
        in_order = sorted(live, key=lambda k: (live[k][1].sort_key, k))
        assert [k for k, _ in everything] == in_order
        assert backend.count(SCOPE, KIND) == len(live)
        for name, values in [("bucket", (b,)) for b in BUCKETS] + [
            ("bucket", ("red", "blue")),
            ("parity", ("0",)),
        ]:
            expected = sorted(
                k for k, (_, ix) in live.items() if set(ix.fields[name]) & set(values)
            )
            query = Query((FieldFilter(name, values),), descending=True, limit=2)
            assert sorted(k for k, _ in _query_all(backend, query)) == expected
            assert backend.count(SCOPE, KIND, [FieldFilter(name, values)]) == len(expected)
        both = [FieldFilter("bucket", ("green",)), FieldFilter("parity", ("1",))]
        expected_both = {
            k
            for k, (_, ix) in live.items()
            if "green" in ix.fields["bucket"] and ix.fields["parity"] == ("1",)
        }
        assert backend.count(SCOPE, KIND, both) == len(expected_both)
        leftovers = [
            p.name
            for p in (root / "crash" / "test" / "docs" / KIND).iterdir()
            if p.name.startswith(".")
        ]
        assert leftovers == [], "replay must remove unfinished writes"
    return live


def assert_histories_whole(root: Path) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    with FilesystemBackend(root) as backend:
        for key in KEYS:
            try:
                history = backend.history(SCOPE, KIND, key)  # IntegrityError on a hole
            except NotFoundError:
                continue
            assert [d.revision for d in history] == list(range(1, len(history) + 1))
            for doc in history:
                if doc.deleted:
                    outcomes["tombstones"] += 1
                    continue
                assert json.loads(doc.body)["key"] == key
                outcomes["revisions"] += 1
    return outcomes


def _crash_loop(root: Path, kills: int, writers: int, durability: Durability = "full") -> None:
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(2024)
    for round_ in range(kills):
        procs = [
            ctx.Process(
                target=_writer,
                args=(str(root), rng.randrange(1 << 30), durability),
                daemon=True,
            )
            for _ in range(writers)
        ]
        for proc in procs:
            proc.start()
        time.sleep(rng.uniform(0.02, 0.12))
        for proc in procs:
            assert proc.is_alive(), "the writer died on its own"
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.join(10)
            assert proc.exitcode == -signal.SIGKILL
        if round_ % 5 == 4 or round_ == kills - 1:
            assert_index_agrees(root)
    outcomes = assert_histories_whole(root)
    assert outcomes["revisions"] > kills, "the writers barely wrote anything"


@pytest.mark.parametrize("durability", ["full", "process"])
def test_sigkilled_writer_leaves_whole_documents_and_an_agreeing_index(
    tmp_path: Path, durability: Durability
) -> None:
    _crash_loop(tmp_path / "store", kills=60, writers=1, durability=durability)


@pytest.mark.slow
def test_many_sigkilled_concurrent_writers(tmp_path: Path) -> None:
    _crash_loop(tmp_path / "store", kills=400, writers=3)


# -- multi-document commits ------------------------------------------------------
# A ledger: accounts whose values always sum to TOTAL, changed only by commits that
# move value between accounts (and bump a clock), plus single puts and bulk batches
# that rewrite an account with its own value. A commit seen in part breaks the sum.
LEDGER = Scope("crash", "ledger")
ACCT, META = "acct", "meta"
ACCOUNTS = (*(f"acct-{i}" for i in range(6)), "Acct/With/Slashes", "y" * 300)
TOTAL = 100 * len(ACCOUNTS)


def _account(key: str, value: int, stamp: int, rng: random.Random) -> DocumentWrite:
    body = canonical_json(
        {"key": key, "value": value, "stamp": stamp, "pad": "p" * rng.randrange(8_000)}
    )
    tags = tuple(rng.sample(BUCKETS, rng.randrange(1, 3)))
    return DocumentWrite(
        key, body, content_hash(body), IndexEntry({"bucket": tags}, f"{rng.randrange(50):03d}")
    )


def _clock(value: int) -> DocumentWrite:
    body = canonical_json({"key": "clock", "value": value})
    return DocumentWrite("clock", body, content_hash(body))


def _val(doc: StoredDocument) -> int:
    return int(json.loads(doc.body)["value"])


def _ledger_step(backend: FilesystemBackend, rng: random.Random, bulk: bool) -> None:
    clock = backend.get(LEDGER, META, "clock")
    stamp = _val(clock) + 1
    tick = Put(META, _clock(stamp), at_revision(clock.revision))
    live = {}
    for key in ACCOUNTS:
        with contextlib.suppress(NotFoundError):
            live[key] = backend.get(LEDGER, ACCT, key)
    dead = [k for k in ACCOUNTS if k not in live]
    keys = rng.sample(sorted(live), min(3, len(live)))
    roll = rng.random()
    ops: list[Operation]
    if roll < 0.45 and len(keys) >= 2:  # transfer between two accounts
        (a, da), (b, db) = ((k, live[k]) for k in keys[:2])
        amount = rng.randrange(1, 6)
        ops = [
            Put(ACCT, _account(a, _val(da) - amount, stamp, rng), at_revision(da.revision)),
            Put(ACCT, _account(b, _val(db) + amount, stamp, rng), at_revision(db.revision)),
            tick,
        ]
    elif roll < 0.6 and len(keys) == 3:  # rotate three, guarded by a fourth key
        ops = [
            Put(
                ACCT,
                _account(k, _val(live[keys[i - 1]]), stamp, rng),
                at_revision(live[k].revision),
            )
            for i, k in enumerate(keys)
        ]
        guard = rng.choice(ACCOUNTS)
        if guard not in keys:
            expect = at_revision(live[guard].revision) if guard in live else MUST_NOT_EXIST
            ops.append(ConditionCheck(ACCT, guard, expect))
        ops.append(tick)
    elif roll < 0.7 and len(keys) >= 2:  # close an account into another
        (a, da), (b, db) = ((k, live[k]) for k in keys[:2])
        ops = [
            Delete(ACCT, a, at_revision(da.revision)),
            Put(ACCT, _account(b, _val(db) + _val(da), stamp, rng), at_revision(db.revision)),
            tick,
        ]
    elif roll < 0.8 and dead:  # reopen an account empty: a one-document commit
        ops = [Put(ACCT, _account(rng.choice(dead), 0, stamp - 1, rng), MUST_NOT_EXIST)]
    elif roll < 0.9 and keys:  # single put rewriting one account with its own value
        key = keys[0]
        backend.put(
            LEDGER,
            ACCT,
            _account(key, _val(live[key]), stamp - 1, rng),
            at_revision(live[key].revision),
        )
        return
    elif bulk:  # unconditional rewrites: only safe with one writer (no lost update)
        backend.put_many(LEDGER, ACCT, (_account(k, _val(live[k]), stamp - 1, rng) for k in keys))
        return
    else:
        return
    rng.shuffle(ops)
    backend.commit(LEDGER, ops)


def _ledger_writer(root: str, seed: int, bulk: bool, durability: Durability = "full") -> None:
    rng = random.Random(seed)
    backend = FilesystemBackend(root, durability=durability)
    while True:
        with contextlib.suppress(ConflictError, NotFoundError):  # concurrent writers
            _ledger_step(backend, rng, bulk)


def _check_snapshot(docs: list[StoredDocument]) -> None:
    """One consistent snapshot: the sum holds and no account is ahead of the clock."""
    accounts = [d for d in docs if d.kind == ACCT]
    (clock,) = [d for d in docs if d.kind == META]
    assert sum(_val(d) for d in accounts) == TOTAL, "a commit is visible in part"
    assert all(json.loads(d.body)["stamp"] <= _val(clock) for d in accounts)


def check_ledger(backend: FilesystemBackend) -> dict[str, int]:
    """Every read path agrees with ``get``, and the ledger is whole. Returns revisions."""
    gets = {}
    for key in ACCOUNTS:
        with contextlib.suppress(NotFoundError):
            gets[key] = backend.get(LEDGER, ACCT, key)
    clock = backend.get(LEDGER, META, "clock")
    assert all(json.loads(d.body)["key"] == k for k, d in gets.items()), "torn or misplaced"
    _check_snapshot([*gets.values(), clock])
    revisions = {k: d.revision for k, d in gets.items()}
    listed = _query_all(backend, Query(limit=3), LEDGER, ACCT)
    assert sorted(listed) == sorted(revisions.items())
    assert [k for k, _ in listed] == sorted(gets, key=lambda k: (gets[k].index.sort_key, k))
    assert backend.count(LEDGER, ACCT) == len(gets)
    iterated = list(backend.iter_documents(LEDGER))
    assert {(d.kind, d.key): d.revision for d in iterated} == {
        **{(ACCT, k): r for k, r in revisions.items()},
        (META, "clock"): clock.revision,
    }
    for bucket in BUCKETS:
        expected = sorted(k for k, d in gets.items() if bucket in d.index.fields["bucket"])
        query = Query((FieldFilter("bucket", (bucket,)),), descending=True, limit=2)
        assert sorted(k for k, _ in _query_all(backend, query, LEDGER, ACCT)) == expected
        assert backend.count(LEDGER, ACCT, [FieldFilter("bucket", (bucket,))]) == len(expected)
    return revisions


def _ledger_reader(
    root: str | FilesystemBackend, stop: Any, failures: Any, quiet: Any, checked: Any
) -> None:
    """A long-lived reader running through every kill: snapshots must stay whole, and
    ``get`` and ``query`` must never go back in time relative to each other. Each
    time the test says no writer is running (``quiet``: the round whose writers are
    all dead, and stay so until this reader reports), every read path — ``get``,
    ``query``, ``count`` and iteration — must agree (:func:`check_ledger`); it then
    sets ``checked`` to that round. ``root`` may be a backend shared with other
    threads. (Two events, "quiet" and "checked", were racy: a reader could see the
    old round's "quiet" and the next round's cleared "checked", and check the
    ledger while the next writer ran.)"""
    backend = root if isinstance(root, FilesystemBackend) else FilesystemBackend(root)
    rng = random.Random(5)
    while not stop.is_set():
        try:
            round_ = quiet.value
            if round_ > checked.value:  # no writer runs until checked says round_
                check_ledger(backend)
                checked.value = round_
                continue
            _check_snapshot(list(backend.iter_documents(LEDGER)))
            key = rng.choice(ACCOUNTS)
            got_first = rng.random() < 0.5
            if got_first:
                got = _revision_or_zero(backend, key)
            listed = dict(_query_all(backend, Query(limit=50), LEDGER, ACCT))
            after = _revision_or_zero(backend, key)
            if got_first and 0 < listed.get(key, got) < got:
                raise AssertionError(f"query saw {key} at {listed[key]} after get saw {got}")
            if 0 < after < listed.get(key, 0):
                raise AssertionError(f"get saw {key} at {after} after query saw {listed[key]}")
        except Exception as exc:  # report to the test, which fails on any
            with failures.get_lock():
                failures.value += 1
            print(f"ledger reader: {exc!r}", flush=True)
            checked.value = max(checked.value, quiet.value)  # reported: the test fails


def _revision_or_zero(backend: FilesystemBackend, key: str) -> int:
    try:
        return backend.get(LEDGER, ACCT, key).revision
    except NotFoundError:
        return 0


def _interrupted(root: Path) -> str:
    scope_dir = root / LEDGER.tenant / LEDGER.environment
    note = (scope_dir / ".lock").read_bytes()
    if (scope_dir / ".applying").read_bytes()[:1] == b"\x01":
        return "applying"
    first_line = note.split(b"\n", 1)[0]
    return "journal" if note.startswith(b"commit ") else "intent" if first_line else "idle"


def _ledger_crash_loop(
    root: Path, kills: int, writers: int, durability: Durability = "full"
) -> Counter[str]:
    ctx = multiprocessing.get_context("fork")
    seed = FilesystemBackend(root)
    seed.commit(
        LEDGER,
        [
            Put(META, _clock(0)),
            *(Put(ACCT, _account(k, 100, 0, random.Random(k))) for k in ACCOUNTS),
        ],
    )
    long_lived = seed  # opened before the first kill, kept open across all of them
    stop, failures = ctx.Event(), ctx.Value("i", 0)
    quiet = [ctx.Value("i", -1), ctx.Value("i", -1)]  # per reader: round whose writers died
    checked = [ctx.Value("i", -1), ctx.Value("i", -1)]  # per reader: last round it checked
    reader = ctx.Process(
        target=_ledger_reader, args=(str(root), stop, failures, quiet[0], checked[0]), daemon=True
    )
    reader.start()
    # a long-lived reader thread sharing the main thread's backend (its own connection)
    thread = threading.Thread(
        target=_ledger_reader, args=(long_lived, stop, failures, quiet[1], checked[1]), daemon=True
    )
    thread.start()
    rng = random.Random(99)
    seen: Counter[str] = Counter()
    try:
        for round_ in range(kills):
            procs = [
                ctx.Process(
                    target=_ledger_writer,
                    args=(str(root), rng.randrange(1 << 30), writers == 1, durability),
                    daemon=True,
                )
                for _ in range(writers)
            ]
            for proc in procs:
                proc.start()
            time.sleep(rng.uniform(0.03, 0.15))
            for proc in procs:
                assert proc.is_alive(), "the writer died on its own"
                assert proc.pid is not None
                os.kill(proc.pid, signal.SIGKILL)
            for proc in procs:
                proc.join(10)
                assert proc.exitcode == -signal.SIGKILL
            seen[_interrupted(root)] += 1
            for value in quiet:
                value.value = round_
            check_ledger(long_lived)
            for done in checked:
                deadline = time.monotonic() + 60
                while done.value < round_:
                    assert time.monotonic() < deadline, "a long-lived reader did not check"
                    time.sleep(0.001)
                seen["reader checks"] += 1
            if round_ % 5 == 4:
                with FilesystemBackend(root) as fresh:
                    check_ledger(fresh)
    finally:
        stop.set()
        reader.join(30)
        thread.join(30)
    assert reader.exitcode == 0
    assert not thread.is_alive()
    assert failures.value == 0, "a long-lived reader saw a partial commit (see stdout)"
    seen["commits"] = _val(long_lived.get(LEDGER, META, "clock"))
    long_lived.close()
    return seen


@pytest.mark.parametrize("durability", ["full", "process"])
def test_sigkilled_committer_leaves_each_commit_whole_or_absent(
    tmp_path: Path, durability: Durability
) -> None:
    seen = _ledger_crash_loop(tmp_path / "store", kills=200, writers=1, durability=durability)
    print(dict(seen))
    assert seen["reader checks"] == 2 * 200  # a process and a thread, after every kill
    # commits cost ~4 fsyncs each: on a loaded machine a round fits only a few
    assert seen["commits"] > 50, "the writers barely committed anything"
    assert seen["applying"] + seen["journal"] > 0, "no kill landed inside a commit's apply"


@pytest.mark.slow
def test_many_sigkilled_concurrent_committers(tmp_path: Path) -> None:
    seen = _ledger_crash_loop(tmp_path / "store", kills=400, writers=3)
    assert seen["commits"] > 100
