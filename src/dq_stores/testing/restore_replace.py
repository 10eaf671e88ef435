"""Conformance: ``restore_many(..., replace=True)`` swaps histories atomically.

Each key of the batch ends with exactly the given history — its former
revisions and index entries gone, and its pruned-history marker too when the
given history starts at revision 1 — while other keys, kinds and scopes keep
theirs. The batch is all-or-nothing: a refused batch changes nothing, and a
reader racing a replace sees every key whole, as before or as given. A backend
that cannot replace atomically (``supports_atomic_replace = False``) must refuse
with ``MisconfiguredError`` and write nothing.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from dq_metadata.errors import (
    ConflictError,
    MisconfiguredError,
    NotFoundError,
    ValidationError,
)
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, FieldFilter, IndexEntry, Query, StoredDocument
from dq_stores.retention import PRUNED_KIND, marker_key
from dq_stores.testing._helpers import HOSTILE_KEYS, KIND, OTHER_SCOPES, SCOPE, doc

__all__ = ["ReplaceConformance"]

_OLD = datetime(2021, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
_KEYS = ("k", *HOSTILE_KEYS[:5])


def _made(
    key: str, n: int, tag: str, *, first: int = 1, deleted_last: bool = False
) -> list[StoredDocument]:
    """Revisions ``first..first+n-1`` of ``key``, tagged ``tag``, written long ago."""
    out: list[StoredDocument] = []
    for rev in range(first, first + n):
        at = _OLD + timedelta(hours=rev)
        if deleted_last and rev == first + n - 1:
            out.append(StoredDocument(SCOPE, KIND, key, rev, b"", "", IndexEntry(), at, True))
            continue
        w = doc(key, f"{tag}-{rev}", sort_key=f"{tag}{rev:03d}", tag=tag)
        out.append(StoredDocument(SCOPE, KIND, key, rev, w.body, w.sha256, w.index, at))
    return out


def _shape(docs: list[StoredDocument]) -> list[tuple[object, ...]]:
    return [(d.revision, d.body, d.written_at, d.deleted, d.index) for d in docs]


class ReplaceConformance:
    """``restore_many(scope, kind, histories, replace=True)``."""

    supports_atomic_replace: ClassVar[bool] = True

    def _existing(self, backend: DocumentBackend) -> None:
        for key in _KEYS:
            for n in range(4):
                backend.put(SCOPE, KIND, doc(key, n, sort_key=f"old{n}", tag="old"), ANY)
        backend.delete(SCOPE, KIND, _KEYS[1])
        for scope in OTHER_SCOPES[:2]:
            backend.put(scope, KIND, doc("k", "theirs", tag="old"), ANY)

    def test_replace_swaps_each_history_and_nothing_else(self, backend: DocumentBackend) -> None:
        self._existing(backend)
        others = {s: _shape(backend.history(s, KIND, "k")) for s in OTHER_SCOPES[:2]}
        given = {
            "k": _made("k", 2, "new"),  # shorter than the 4 revisions it replaces
            _KEYS[1]: _made(_KEYS[1], 7, "new"),  # longer; was deleted, is live now
            _KEYS[2]: _made(_KEYS[2], 3, "new", deleted_last=True),  # live, now deleted
            "fresh": _made("fresh", 2, "new"),  # had no history at all
        }
        batch = list(given.items())
        if not self.supports_atomic_replace:
            with pytest.raises(MisconfiguredError):
                backend.restore_many(SCOPE, KIND, batch, replace=True)
            assert [d.revision for d in backend.history(SCOPE, KIND, "k")] == [1, 2, 3, 4]
            with pytest.raises(NotFoundError):
                backend.history(SCOPE, KIND, "fresh")
            return
        assert backend.restore_many(SCOPE, KIND, batch, replace=True) == 4
        for key, docs in given.items():
            assert _shape(backend.history(SCOPE, KIND, key)) == _shape(docs)
        with pytest.raises(NotFoundError):
            backend.get_revision(SCOPE, KIND, "k", 3)  # beyond the new history
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, KIND, _KEYS[2])
        assert backend.get(SCOPE, KIND, _KEYS[1]).revision == 7
        untouched = [key for key in _KEYS if key not in given]
        for key in untouched:
            assert [d.revision for d in backend.history(SCOPE, KIND, key)] == [1, 2, 3, 4]
        old, new = FieldFilter("tag", ("old",)), FieldFilter("tag", ("new",))
        assert backend.count(SCOPE, KIND, (old,)) == len(untouched)
        assert backend.count(SCOPE, KIND, (new,)) == 3
        page = backend.query(SCOPE, KIND, Query(filters=(new,), limit=10))
        assert [d.key for d in page.items] == ["fresh", "k", _KEYS[1]]  # new002 x2, new007
        for scope, shape in others.items():  # another tenant / environment: untouched
            assert _shape(backend.history(scope, KIND, "k")) == shape
        assert backend.put(SCOPE, KIND, doc("k", "after"), ANY).revision == 3  # numbering goes on

    def test_a_refused_replace_changes_nothing(self, backend: DocumentBackend) -> None:
        self._existing(backend)
        before = {key: _shape(backend.history(SCOPE, KIND, key)) for key in _KEYS}
        bad = [
            ("k", _made("k", 2, "new")),
            (_KEYS[2], _made(_KEYS[2], 2, "new", first=3)),  # pruned start, no marker
        ]
        with pytest.raises((ValidationError, MisconfiguredError)):
            backend.restore_many(SCOPE, KIND, bad, replace=True)
        assert {key: _shape(backend.history(SCOPE, KIND, key)) for key in _KEYS} == before
        assert backend.count(SCOPE, KIND, (FieldFilter("tag", ("new",)),)) == 0

    def test_replace_by_a_whole_history_drops_the_keys_pruned_marker(
        self, backend: DocumentBackend
    ) -> None:
        """A key pruned in the target (its marker records revisions 1..2 gone) gets
        a history starting at revision 1: the marker goes with the old history, in
        the same batch, so nothing says revisions of it were pruned. A history
        starting after revision 1 keeps the marker it needs; other keys' markers,
        and a marker key replaced in its own batch, are left to their batch."""
        if not self.supports_atomic_replace:
            pytest.skip("the backend cannot replace histories")
        for key in ("whole", "pruned", "other"):
            for n in range(4):
                backend.put(SCOPE, KIND, doc(key, n, tag="old"), ANY)
            backend.prune_history(SCOPE, KIND, key, 3)
        kept = backend.pruned_prefix(SCOPE, KIND, "pruned")
        markers = backend.count(SCOPE, PRUNED_KIND)
        batch = [
            ("whole", _made("whole", 2, "new")),
            ("pruned", _made("pruned", 2, "new", first=3)),
        ]
        backend.restore_many(SCOPE, KIND, batch, replace=True)
        assert backend.pruned_prefix(SCOPE, KIND, "whole") is None
        assert _shape(backend.history(SCOPE, KIND, "whole")) == _shape(_made("whole", 2, "new"))
        first = backend.get_revision(SCOPE, KIND, "whole", 1)  # not "pruned"
        assert _shape([first]) == _shape(_made("whole", 1, "new"))
        assert backend.pruned_prefix(SCOPE, KIND, "pruned") == kept
        assert backend.pruned_prefix(SCOPE, KIND, "other") is not None
        assert backend.count(SCOPE, PRUNED_KIND) == markers - 1
        listed = [h[-1].key for h in backend.iter_histories(SCOPE, PRUNED_KIND)]
        assert marker_key(KIND, "whole") not in listed
        assert len(listed) == markers - 1
        with pytest.raises(NotFoundError):
            backend.history(SCOPE, PRUNED_KIND, marker_key(KIND, "whole"))
        backend.prune_history(SCOPE, KIND, "whole", 2)  # prunes again from scratch
        assert backend.pruned_prefix(SCOPE, KIND, "whole") is not None

    @pytest.mark.parametrize("length", [2, 4, 7], ids=["shorter", "as-long", "longer"])
    @pytest.mark.parametrize("when", ["before-the-marker", "after-the-marker"])
    def test_a_replace_racing_a_prune_loses_no_revision_of_the_new_history(
        self, backend: DocumentBackend, when: str, length: int
    ) -> None:
        """``prune_history(k, 5)`` reads revisions 1..5, then — before it writes the
        pruned-history marker, or after it, before removing anything — a replace gives
        ``k`` a new history of ``length`` revisions. The prune must remove nothing of
        the new history (it removed revisions 1..4 of it: data loss) and say so:
        ``ConflictError``; the new history then reads whole, with no marker claiming a
        prune, and a prune run again works."""
        if not self.supports_atomic_replace:
            pytest.skip("the backend cannot replace histories")
        for n in range(5):
            backend.put(SCOPE, KIND, doc("k", n, tag="old"), ANY)
        new = _made("k", length, "new")
        real = backend._advance_marker

        def replace() -> None:
            backend.restore_many(SCOPE, KIND, [("k", new)], replace=True)

        def advance(*args: object) -> object:
            if when == "before-the-marker":
                replace()
                return real(*args)  # type: ignore[arg-type]
            written = real(*args)  # type: ignore[arg-type]
            replace()
            return written

        backend._advance_marker = advance  # type: ignore[method-assign, assignment]
        try:
            with pytest.raises(ConflictError, match="replaced while it was being pruned"):
                backend.prune_history(SCOPE, KIND, "k", 5)
        finally:
            del backend._advance_marker
        assert _shape(backend.history(SCOPE, KIND, "k")) == _shape(new)
        assert _shape([backend.get(SCOPE, KIND, "k")]) == _shape(new[-1:])
        assert backend.pruned_prefix(SCOPE, KIND, "k") is None
        assert [_shape(h) for h in backend.iter_histories(SCOPE, KIND) if h[-1].key == "k"] == [
            _shape(new)
        ]
        assert backend.prune_history(SCOPE, KIND, "k", length) == length - 1
        assert [d.revision for d in backend.history(SCOPE, KIND, "k")] == [length]

    def test_replace_requires_a_bool(self, backend: DocumentBackend) -> None:
        with pytest.raises(ValidationError):
            backend.restore_many(SCOPE, KIND, [("k", _made("k", 1, "x"))], replace="yes")  # type: ignore[arg-type]
        with pytest.raises(NotFoundError):
            backend.history(SCOPE, KIND, "k")

    def test_readers_racing_a_replace_see_whole_batches(self, backend: DocumentBackend) -> None:
        if not self.supports_atomic_replace:
            return  # it refuses replace: test_replace_swaps_each_history_and_nothing_else
        keys = ["a", "b", "c"]
        versions = {
            tag: [(key, _made(key, n, tag)) for key in keys] for tag, n in (("one", 2), ("two", 5))
        }
        backend.restore_many(SCOPE, KIND, versions["one"])
        shapes = {tag: {k: _shape(h) for k, h in batch} for tag, batch in versions.items()}
        stop = threading.Event()
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                while not stop.is_set():
                    seen = {key: _shape(backend.history(SCOPE, KIND, key)) for key in keys}
                    for key, shape in seen.items():
                        assert shape in (shapes["one"][key], shapes["two"][key]), key
                    for tag in ("one", "two"):  # one count is one read: never a mix
                        count = backend.count(SCOPE, KIND, (FieldFilter("tag", (tag,)),))
                        assert count in (0, len(keys)), (tag, count)
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for i in range(12):
                backend.restore_many(
                    SCOPE, KIND, versions["two" if i % 2 == 0 else "one"], replace=True
                )
        finally:
            stop.set()
            thread.join()
        assert not errors, errors
        assert {k: _shape(backend.history(SCOPE, KIND, k)) for k in keys} == shapes["one"]
