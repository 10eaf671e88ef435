"""Conformance: bulk writes through the typed API (``Store.put_many`` / ``create_many``).

Typed bulk writes validate the whole batch before any I/O, then use the backend's
bulk path (``put_many``) or its atomic ``commit`` (``create_many``, in commits of
``MAX_COMMIT_OPERATIONS``). These tests prove both on the backend under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dq_metadata.errors import ConflictError, ValidationError
from dq_metadata.models.job_run import JobRun, RunStatus
from dq_stores.backend import DocumentBackend
from dq_stores.documents import MAX_COMMIT_OPERATIONS
from dq_stores.testing._helpers import SCOPE
from dq_stores.typed import JobRunStore

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _runs(n: int, *, job: str = "j", start: int = 0) -> list[JobRun]:
    return [
        JobRun(run_id=f"r{i:04d}", job_id=job, created_at=_T0 + timedelta(seconds=i))
        for i in range(start, start + n)
    ]


class TypedBulkConformance:
    """Bulk writes of a typed store: same validation and expectations as single writes."""

    def test_put_many_writes_every_item_indexed_and_rewrites_as_next_revision(
        self, backend: DocumentBackend
    ) -> None:
        store = JobRunStore(backend)
        assert store.put_many(SCOPE, _runs(30)) == 30
        assert store.count(SCOPE, {"job_id": "j"}) == 30
        again = [r.model_copy(update={"status": RunStatus.RUNNING}) for r in _runs(3)]
        assert store.put_many(SCOPE, iter(again)) == 3
        got = store.get(SCOPE, "r0001")
        assert (got.revision, got.item.status) == (2, RunStatus.RUNNING)
        assert store.count(SCOPE, {"status": "running"}) == 3
        assert store.put_many(SCOPE, []) == 0

    def test_put_many_validates_the_whole_batch_before_writing(
        self, backend: DocumentBackend
    ) -> None:
        store = JobRunStore(backend)
        bad: list[object] = [*_runs(5), {"run_id": "x", "job_id": "j"}, *_runs(2, start=9)]
        with pytest.raises(ValidationError, match=r"items\[5\]") as caught:
            store.put_many(SCOPE, bad)  # type: ignore[arg-type]
        assert any(p.loc.startswith("items[5].created_at") for p in caught.value.problems)
        twice = [*_runs(3), *_runs(1, start=1)]
        with pytest.raises(ValidationError, match="also items"):
            store.put_many(SCOPE, twice)
        assert store.count(SCOPE) == 0

    def test_create_many_returns_revision_1_of_each_in_order(
        self, backend: DocumentBackend
    ) -> None:
        store = JobRunStore(backend)
        runs = _runs(MAX_COMMIT_OPERATIONS + 5)
        stored = store.create_many(SCOPE, runs)
        assert [(v.key, v.revision) for v in stored] == [(r.run_id, 1) for r in runs]
        assert all(v.item is r for v, r in zip(stored, runs, strict=True))
        assert store.count(SCOPE) == len(runs)
        assert store.create_many(SCOPE, []) == []

    def test_create_many_of_one_commit_is_all_or_nothing(self, backend: DocumentBackend) -> None:
        store = JobRunStore(backend)
        store.create(SCOPE, _runs(1, job="old", start=7)[0])
        with pytest.raises(ConflictError):
            store.create_many(SCOPE, _runs(10))
        assert store.count(SCOPE) == 1
        assert store.get(SCOPE, "r0007").item.job_id == "old"
        with pytest.raises(ValidationError):
            store.create_many(SCOPE, [*_runs(2, start=20), {"run_id": "bad id!"}])  # type: ignore[list-item]
        assert store.count(SCOPE) == 1

    def test_create_many_over_one_commit_says_how_many_were_created(
        self, backend: DocumentBackend
    ) -> None:
        store = JobRunStore(backend)
        size = MAX_COMMIT_OPERATIONS + 3
        store.create(SCOPE, _runs(1, job="old", start=size - 1)[0])
        with pytest.raises(ConflictError, match=f"first {MAX_COMMIT_OPERATIONS} items"):
            store.create_many(SCOPE, _runs(size))
        assert store.count(SCOPE, {"job_id": "j"}) == MAX_COMMIT_OPERATIONS
        assert store.find(SCOPE, f"r{MAX_COMMIT_OPERATIONS:04d}") is None
