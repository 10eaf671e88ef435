"""Conformance: ``dq_stores.verify`` on every backend — what it walks.

A scope or tenant that holds nothing (a typo) raises ``NotFoundError`` instead of
verifying as a clean, empty scope; the doctor's reserved scratch tenant is left
out of whole-store walks (``iter_scopes``) but can still be asked for by name.
"""

from __future__ import annotations

import pytest

from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.backend import RESERVED_TENANT, DocumentBackend
from dq_stores.documents import ANY
from dq_stores.health import PROBE_SCOPE, probe_backend
from dq_stores.testing._helpers import KIND, OTHER_SCOPES, SCOPE, doc
from dq_stores.verify import VerifyCounts, has_scope, verify


class VerifyConformance:
    """What ``verify`` walks: existing scopes only; never the doctor's."""

    def test_a_scope_or_tenant_that_does_not_exist_is_not_found(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, KIND, doc("k", 1), ANY)
        backend.put(OTHER_SCOPES[0], KIND, doc("k", 1), ANY)  # acme/dev
        assert list(verify(backend, SCOPE)) == []
        assert list(verify(backend, tenant=SCOPE.tenant)) == []
        typo = Scope(SCOPE.tenant, "prdo")
        assert not has_scope(backend, typo)
        with pytest.raises(NotFoundError, match="does not exist") as caught:
            list(verify(backend, typo))
        assert "dev, prod" in str(caught.value)  # names the environments that exist
        with pytest.raises(NotFoundError, match="does not exist"):
            list(verify(backend, Scope("nobody", "prod")))
        counts = VerifyCounts()
        with pytest.raises(NotFoundError, match="tenant 'nobody' does not exist"):
            list(verify(backend, tenant="nobody", counts=counts))
        assert counts.scopes == 0

    def test_the_doctor_probe_is_left_out_of_whole_store_walks(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, KIND, doc("k", 1), ANY)
        for _ in range(2):
            assert probe_backend(backend, "store").status in {"ok", "warning"}
        assert PROBE_SCOPE.tenant == RESERVED_TENANT
        assert list(backend.iter_scopes()) == [SCOPE]
        counts = VerifyCounts()
        assert list(verify(backend, counts=counts)) == []
        assert (counts.scopes, counts.documents) == (1, 1)
        # asked for by name, the scratch scope is still there (and verifies clean)
        assert backend.list_environments(RESERVED_TENANT) == [PROBE_SCOPE.environment]
        assert list(verify(backend, PROBE_SCOPE)) == []
