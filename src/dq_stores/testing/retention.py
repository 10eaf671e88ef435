"""Conformance: ``prune_history`` removes a prefix of one key's history, recorded.

The pruned prefix is recorded (``pruned_prefix``), the current revision is never
removed, numbering continues, other keys and scopes are untouched, and writers
racing a pruner lose nothing: the history stays a contiguous suffix.
"""

from __future__ import annotations

import threading

import pytest

from dq_metadata.errors import NotFoundError, ValidationError
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, FieldFilter, Query
from dq_stores.retention import PRUNED_KIND
from dq_stores.testing._helpers import HOSTILE_KEYS, KIND, OTHER_SCOPES, SCOPE, doc, value_of
from dq_stores.verify import verify


def _write(backend: DocumentBackend, key: str, count: int) -> list[str]:
    """``count`` revisions of ``key``; their sha256s, oldest first."""
    return [backend.put(SCOPE, KIND, doc(key, n, tag="t"), ANY).sha256 for n in range(count)]


def _revisions(backend: DocumentBackend, key: str) -> list[int]:
    return [d.revision for d in backend.history(SCOPE, KIND, key)]


class RetentionConformance:
    """``DocumentBackend.prune_history`` and ``pruned_prefix``."""

    def test_prune_removes_the_prefix_and_records_it(self, backend: DocumentBackend) -> None:
        hashes = _write(backend, "k", 5)
        assert backend.pruned_prefix(SCOPE, KIND, "k") is None
        assert backend.prune_history(SCOPE, KIND, "k", 4) == 3
        assert _revisions(backend, "k") == [4, 5]
        prefix = backend.pruned_prefix(SCOPE, KIND, "k")
        assert prefix is not None
        assert (prefix.kind, prefix.key, prefix.pruned_through) == (KIND, "k", 3)
        assert prefix.anchor_sha256 == hashes[2]
        for pruned in (1, 2, 3):
            with pytest.raises(NotFoundError):
                backend.get_revision(SCOPE, KIND, "k", pruned)
        assert value_of(backend.get_revision(SCOPE, KIND, "k", 4).body) == 3
        assert value_of(backend.get(SCOPE, KIND, "k").body) == 4
        assert backend.put(SCOPE, KIND, doc("k", 5), ANY).revision == 6  # numbering goes on
        assert _revisions(backend, "k") == [4, 5, 6]

    def test_verify_finds_no_problem_after_pruning(self, backend: DocumentBackend) -> None:
        _write(backend, "k", 5)
        _write(backend, "gone", 3)
        backend.delete(SCOPE, KIND, "gone")
        backend.prune_history(SCOPE, KIND, "k", 4)
        backend.prune_history(SCOPE, KIND, "gone", 1000)
        assert list(verify(backend, SCOPE)) == []
        backend.put(SCOPE, KIND, doc("k", 9), ANY)
        assert list(verify(backend, SCOPE)) == []

    def test_the_current_revision_is_never_pruned(self, backend: DocumentBackend) -> None:
        _write(backend, "k", 3)
        assert backend.prune_history(SCOPE, KIND, "k", 1000) == 2
        assert _revisions(backend, "k") == [3]
        assert backend.prune_history(SCOPE, KIND, "k", 1000) == 0
        backend.delete(SCOPE, KIND, "k")
        assert backend.prune_history(SCOPE, KIND, "k", 1000) == 1
        (tombstone,) = backend.history(SCOPE, KIND, "k")
        assert tombstone.deleted
        assert tombstone.revision == 4
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, KIND, "k")
        assert backend.put(SCOPE, KIND, doc("k", "again"), ANY).revision == 5

    def test_pruning_is_idempotent_and_only_moves_forward(self, backend: DocumentBackend) -> None:
        _write(backend, "k", 6)
        assert backend.prune_history(SCOPE, KIND, "k", 4) == 3
        assert backend.prune_history(SCOPE, KIND, "k", 4) == 0
        assert backend.prune_history(SCOPE, KIND, "k", 2) == 0
        prefix = backend.pruned_prefix(SCOPE, KIND, "k")
        assert prefix is not None
        assert prefix.pruned_through == 3
        assert backend.prune_history(SCOPE, KIND, "k", 1) == 0
        assert _revisions(backend, "k") == [4, 5, 6]

    def test_other_keys_scopes_and_queries_are_untouched(self, backend: DocumentBackend) -> None:
        _write(backend, "k", 3)
        _write(backend, "other", 3)
        for scope in OTHER_SCOPES:
            for n in range(3):
                backend.put(scope, KIND, doc("k", n), ANY)
        backend.prune_history(SCOPE, KIND, "k", 3)
        assert _revisions(backend, "other") == [1, 2, 3]
        for scope in OTHER_SCOPES:
            assert [d.revision for d in backend.history(scope, KIND, "k")] == [1, 2, 3]
            assert backend.pruned_prefix(scope, KIND, "k") is None
        assert backend.count(SCOPE, KIND, [FieldFilter("tag", ("t",))]) == 2
        assert {d.key for d in backend.query(SCOPE, KIND, Query()).items} == {"k", "other"}

    def test_hostile_keys_prune_and_keep_their_own_marker(self, backend: DocumentBackend) -> None:
        keys = HOSTILE_KEYS[:12]
        for key in keys:
            _write(backend, key, 2)
        for key in keys:
            assert backend.prune_history(SCOPE, KIND, key, 2) == 1
        for key in keys:
            assert _revisions(backend, key) == [2]
            prefix = backend.pruned_prefix(SCOPE, KIND, key)
            assert prefix is not None
            assert prefix.key == key

    def test_bad_arguments_are_refused(self, backend: DocumentBackend) -> None:
        _write(backend, "k", 2)
        for bad in (0, -1, True, 1.5, "2", None):
            with pytest.raises(ValidationError):
                backend.prune_history(SCOPE, KIND, "k", bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            backend.prune_history(SCOPE, PRUNED_KIND, "k", 2)
        with pytest.raises(NotFoundError):
            backend.prune_history(SCOPE, KIND, "never-written", 2)
        assert _revisions(backend, "k") == [1, 2]

    def test_writers_racing_a_pruner_lose_nothing(self, backend: DocumentBackend) -> None:
        _write(backend, "k", 1)
        writes = 40
        done = threading.Event()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                for n in range(writes):
                    backend.put(SCOPE, KIND, doc("k", n), ANY)
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=writer)
        thread.start()
        while not done.is_set():
            head = backend.get(SCOPE, KIND, "k").revision
            backend.prune_history(SCOPE, KIND, "k", max(1, head - 2))
            prefix = backend.pruned_prefix(SCOPE, KIND, "k")
            history = _revisions(backend, "k")  # starts right after the pruned prefix
            assert history[0] == (1 if prefix is None else prefix.pruned_through + 1)
            assert history == sorted(set(history))
        thread.join()
        assert not errors, errors
        history = _revisions(backend, "k")
        assert history[-1] == writes + 1
        prefix = backend.pruned_prefix(SCOPE, KIND, "k")
        first = 1 if prefix is None else prefix.pruned_through + 1
        assert history == list(range(first, writes + 2))
