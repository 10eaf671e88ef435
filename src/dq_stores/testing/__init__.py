"""The Store conformance suite: abstract pytest classes every backend subclasses once.

The classes are not collected on their own (their names do not start with
``Test``). A backend — ours or a third party's — proves the Store contract with::

    import functools, pytest
    from dq_stores.testing import DocumentBackendConformance

    class TestMyBackendConformance(DocumentBackendConformance):
        supports_multiprocess = True        # False for process-local backends

        @pytest.fixture
        def backend_factory(self, tmp_path):
            # a picklable zero-argument callable; each call opens a new client
            # on the SAME empty store (child processes call it too)
            return functools.partial(MyBackend, tmp_path / "store")

A backend that implements full-text search (``_search``) adds ``SearchConformance``
to the bases: ``class TestMyBackendConformance(DocumentBackendConformance,
SearchConformance)``.

Register assertion rewriting for nicer failures in your ``conftest.py``:
``pytest.register_assert_rewrite("dq_stores.testing")``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from dq_stores.backend import DocumentBackend
from dq_stores.testing.bulk import TypedBulkConformance
from dq_stores.testing.commit import CommitConformance
from dq_stores.testing.concurrency import ConcurrencyConformance
from dq_stores.testing.crud import CrudConformance, IsolationConformance
from dq_stores.testing.fuzz import FuzzConformance
from dq_stores.testing.queries import QueryConformance
from dq_stores.testing.restore import RestoreConformance
from dq_stores.testing.results import ResultsStoreConformance
from dq_stores.testing.retention import RetentionConformance
from dq_stores.testing.search import SearchConformance
from dq_stores.testing.verifying import VerifyConformance

__all__ = ["DocumentBackendConformance", "ResultsStoreConformance", "SearchConformance"]


class DocumentBackendConformance(
    CrudConformance,
    IsolationConformance,
    QueryConformance,
    ConcurrencyConformance,
    CommitConformance,
    FuzzConformance,
    TypedBulkConformance,
    RetentionConformance,
    RestoreConformance,
    VerifyConformance,
):
    """Every invariant of the Store contract (DESIGN §3). Subclass and supply
    ``backend_factory``."""

    @pytest.fixture
    def backend_factory(self) -> Callable[[], DocumentBackend]:
        raise NotImplementedError("subclasses provide a backend_factory fixture")

    @pytest.fixture
    def backend(self, backend_factory: Callable[[], DocumentBackend]) -> Iterator[DocumentBackend]:
        backend = backend_factory()
        try:
            yield backend
        finally:
            backend.close()
