"""Conformance: exporting whole histories and restoring them exactly (``restore``).

A history read with ``iter_histories`` from one scope and restored into another
must answer ``get``, ``get_revision``, ``history``, ``query`` and ``count`` exactly
as the original does — revision numbers, ``written_at`` times, tombstones and
index entries included — and restore must never overwrite an existing history.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from dq_metadata.errors import ConflictError, NotFoundError, ValidationError
from dq_metadata.scope import Scope
from dq_stores.backend import DocumentBackend
from dq_stores.documents import (
    ANY,
    MUST_NOT_EXIST,
    FieldFilter,
    IndexEntry,
    Query,
    StoredDocument,
)
from dq_stores.retention import PRUNED_KIND
from dq_stores.testing._helpers import HOSTILE_KEYS, KIND, SCOPE, doc
from dq_stores.testing.restore_replace import ReplaceConformance
from dq_stores.verify import verify

__all__ = ["RestoreConformance", "comparable"]

TARGET = Scope("restored", "prod")
_OLD = datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def comparable(d: StoredDocument) -> tuple[object, ...]:
    """What must survive a restore, without the scope (it moves)."""
    return (
        d.kind,
        d.key,
        d.revision,
        d.body,
        d.sha256,
        dict(d.index.fields),
        d.index.sort_key,
        d.written_at,
        d.deleted,
    )


def _history(key: str, n: int, *, deleted_last: bool = False) -> list[StoredDocument]:
    """A synthetic history of ``n`` revisions written long ago, a day apart."""
    out: list[StoredDocument] = []
    for rev in range(1, n + 1):
        at = _OLD + timedelta(days=rev)
        if deleted_last and rev == n:
            out.append(StoredDocument(SCOPE, KIND, key, rev, b"", "", IndexEntry(), at, True))
            continue
        w = doc(key, rev, sort_key=f"s{rev:03d}", status="open" if rev % 2 else "closed")
        out.append(StoredDocument(SCOPE, KIND, key, rev, w.body, w.sha256, w.index, at))
    return out


def _seed(backend: DocumentBackend) -> None:
    for i, key in enumerate(HOSTILE_KEYS[:12]):
        backend.put(SCOPE, KIND, doc(key, 0, sort_key=f"a{i}", tag="t"), ANY)
        backend.put(SCOPE, KIND, doc(key, 1, sort_key=f"b{i}", tag=("t", "u")), ANY)
        if i % 3 == 0:
            backend.delete(SCOPE, KIND, key)
        if i % 6 == 0:
            backend.put(SCOPE, KIND, doc(key, 2, sort_key=f"c{i}", tag="v"), ANY)


def restore_scope(backend: DocumentBackend, source: Scope, target: Scope) -> None:
    """Copy every history of ``source`` into ``target``, pruned-history markers first."""
    for kind in (PRUNED_KIND, None):
        batch: dict[str, list[tuple[str, list[StoredDocument]]]] = {}
        for hist in backend.iter_histories(source, kind):
            if kind is None and hist[0].kind == PRUNED_KIND:
                continue
            batch.setdefault(hist[0].kind, []).append((hist[0].key, hist))
        for name, items in batch.items():
            backend.restore_many(target, name, items)


class RestoreConformance(ReplaceConformance):
    """``iter_histories`` / ``restore`` / ``restore_many`` (``replace`` in the base)."""

    def test_iter_histories_yields_every_key_with_full_history_including_deleted(
        self, backend: DocumentBackend
    ) -> None:
        _seed(backend)
        backend.put(Scope("other", "prod"), KIND, doc("elsewhere"), ANY)
        got = {h[-1].key: h for h in backend.iter_histories(SCOPE)}
        assert set(got) == set(HOSTILE_KEYS[:12])
        for key, hist in got.items():
            assert [comparable(d) for d in hist] == [
                comparable(d) for d in backend.history(SCOPE, KIND, key)
            ]
            assert all(d.scope == SCOPE for d in hist)
        assert list(backend.iter_histories(SCOPE, "nothing")) == []

    def test_restored_history_answers_exactly_as_the_source(self, backend: DocumentBackend) -> None:
        _seed(backend)
        histories = [(h[-1].key, h) for h in backend.iter_histories(SCOPE, KIND)]
        assert backend.restore_many(TARGET, KIND, histories) == len(histories)
        for key, hist in histories:
            restored = backend.history(TARGET, KIND, key)
            assert [comparable(d) for d in restored] == [comparable(d) for d in hist]
            assert all(d.scope == TARGET for d in restored)
            assert comparable(backend.get_revision(TARGET, KIND, key, 1)) == comparable(hist[0])
            if hist[-1].deleted:
                with pytest.raises(NotFoundError):
                    backend.get(TARGET, KIND, key)
            else:
                assert comparable(backend.get(TARGET, KIND, key)) == comparable(hist[-1])
        for flt in ((), (FieldFilter("tag", ("u",)),), (FieldFilter("tag", ("v",)),)):
            assert backend.count(TARGET, KIND, flt) == backend.count(SCOPE, KIND, flt)
            for descending in (False, True):
                q = Query(filters=flt, descending=descending, limit=5)
                assert _all_pages(backend, TARGET, q) == _all_pages(backend, SCOPE, q)

    def test_restore_keeps_original_numbers_and_times_and_writes_continue(
        self, backend: DocumentBackend
    ) -> None:
        backend.restore(TARGET, KIND, "k", _history("k", 3))
        hist = backend.history(TARGET, KIND, "k")
        assert [(d.revision, d.written_at) for d in hist] == [
            (r, _OLD + timedelta(days=r)) for r in (1, 2, 3)
        ]
        assert backend.count(TARGET, KIND, (FieldFilter("status", ("open",)),)) == 1
        nxt = backend.put(TARGET, KIND, doc("k", "next"), ANY)
        assert nxt.revision == 4
        assert nxt.written_at > _OLD + timedelta(days=3)

    def test_restore_of_a_deleted_key_reads_absent_and_can_be_recreated(
        self, backend: DocumentBackend
    ) -> None:
        backend.restore(TARGET, KIND, "gone", _history("gone", 2, deleted_last=True))
        with pytest.raises(NotFoundError):
            backend.get(TARGET, KIND, "gone")
        assert backend.count(TARGET, KIND) == 0
        assert [d.deleted for d in backend.history(TARGET, KIND, "gone")] == [False, True]
        again = backend.put(TARGET, KIND, doc("gone", "back"), MUST_NOT_EXIST)
        assert again.revision == 3

    @pytest.mark.parametrize("existing", ["live", "deleted"])
    def test_restore_never_overwrites_a_history(
        self, backend: DocumentBackend, existing: str
    ) -> None:
        backend.put(TARGET, KIND, doc("taken", "mine"), ANY)
        if existing == "deleted":
            backend.delete(TARGET, KIND, "taken")
        before = [comparable(d) for d in backend.history(TARGET, KIND, "taken")]
        batch = [("fresh", _history("fresh", 2)), ("taken", _history("taken", 3))]
        with pytest.raises(ConflictError):
            backend.restore_many(TARGET, KIND, batch)
        assert [comparable(d) for d in backend.history(TARGET, KIND, "taken")] == before
        with pytest.raises(NotFoundError):
            backend.history(TARGET, KIND, "fresh")

    def test_a_pruned_history_exports_and_restores_exactly(self, backend: DocumentBackend) -> None:
        keys = ["k", *HOSTILE_KEYS[:4]]
        for key in keys:
            for n in range(5):
                backend.put(SCOPE, KIND, doc(key, n, sort_key=f"s{n}", tag="t"), ANY)
            backend.prune_history(SCOPE, KIND, key, 4)
        backend.put(SCOPE, KIND, doc("whole", 0), ANY)
        backend.delete(SCOPE, KIND, keys[1])
        backend.prune_history(SCOPE, KIND, keys[1], 100)  # only the tombstone is left
        exported = {h[-1].key: h for h in backend.iter_histories(SCOPE, KIND)}
        assert [d.revision for d in exported["k"]] == [4, 5]  # from the oldest kept revision
        assert [d.revision for d in exported[keys[1]]] == [6]
        restore_scope(backend, SCOPE, TARGET)
        for key in [*keys, "whole"]:
            source = backend.history(SCOPE, KIND, key)
            restored = backend.history(TARGET, KIND, key)
            assert [comparable(d) for d in restored] == [comparable(d) for d in source]
            assert backend.pruned_prefix(TARGET, KIND, key) == backend.pruned_prefix(
                SCOPE, KIND, key
            )
        for pruned in (1, 2, 3):
            with pytest.raises(NotFoundError):
                backend.get_revision(TARGET, KIND, "k", pruned)
        assert comparable(backend.get_revision(TARGET, KIND, "k", 4)) == comparable(
            exported["k"][0]
        )
        with pytest.raises(NotFoundError):
            backend.get(TARGET, KIND, keys[1])
        flt = (FieldFilter("tag", ("t",)),)
        assert backend.count(TARGET, KIND, flt) == backend.count(SCOPE, KIND, flt) == 4
        assert list(verify(backend, TARGET)) == []
        assert backend.put(TARGET, KIND, doc("k", "next"), ANY).revision == 6
        assert backend.prune_history(TARGET, KIND, "k", 6) == 2  # pruning goes on from there
        assert [d.revision for d in backend.history(TARGET, KIND, "k")] == [6]
        assert list(verify(backend, TARGET)) == []

    def test_a_pruned_history_needs_its_marker_first(self, backend: DocumentBackend) -> None:
        for n in range(5):
            backend.put(SCOPE, KIND, doc("k", n), ANY)
        backend.prune_history(SCOPE, KIND, "k", 4)
        (marker,) = backend.iter_histories(SCOPE, PRUNED_KIND)
        (hist,) = backend.iter_histories(SCOPE, KIND)
        with pytest.raises(ValidationError, match="marker"):
            backend.restore(TARGET, KIND, "k", hist)  # no marker in the target yet
        with pytest.raises(NotFoundError):
            backend.history(TARGET, KIND, "k")
        backend.restore(TARGET, PRUNED_KIND, marker[0].key, marker)
        with pytest.raises(ValidationError, match="pruned_through=3"):
            backend.restore(TARGET, KIND, "k", hist[1:])  # starts at 5: marker says 1..3
        with pytest.raises(NotFoundError):
            backend.history(TARGET, KIND, "k")
        backend.restore(TARGET, KIND, "k", hist)
        assert [d.revision for d in backend.history(TARGET, KIND, "k")] == [4, 5]

    def test_malformed_histories_are_refused_before_any_write(
        self, backend: DocumentBackend
    ) -> None:
        good = _history("k", 3)
        bad_cases = [
            good[1:],  # starts at 2 without a pruned-history marker
            [good[0], good[2]],  # gap
            [good[0], replace(good[1], body=b'{"x":1}')],  # body does not match sha256
            [replace(good[0], key="other")],  # another key's revision
            [replace(good[0], written_at=datetime(2020, 1, 1))],  # naive time
            [replace(_history("k", 1, deleted_last=True)[0], body=b"{}")],  # tombstone body
            [],
        ]
        for revisions in bad_cases:
            with pytest.raises(ValidationError):
                backend.restore(TARGET, KIND, "k", revisions)
        with pytest.raises(ValidationError):
            backend.restore_many(TARGET, KIND, [("k", good), ("k", good)])
        with pytest.raises(NotFoundError):
            backend.history(TARGET, KIND, "k")


def _all_pages(backend: DocumentBackend, scope: Scope, query: Query) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    while True:
        page = backend.query(scope, KIND, query)
        out += [comparable(d) for d in page.items]
        if page.next_token is None:
            return out
        query = replace(query, page_token=page.next_token)
