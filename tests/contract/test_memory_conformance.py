from collections.abc import Callable

import pytest

from dq_stores import DocumentBackend, MemoryBackend
from dq_stores.testing import DocumentBackendConformance, SearchConformance


class TestMemoryConformance(DocumentBackendConformance, SearchConformance):
    supports_multiprocess = False

    @pytest.fixture
    def backend_factory(self) -> Callable[[], DocumentBackend]:
        shared = MemoryBackend()
        return lambda: shared
