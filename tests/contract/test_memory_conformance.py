from collections.abc import Callable

import pytest

from dq_stores import DocumentBackend, MemoryBackend
from dq_stores.testing import DocumentBackendConformance


class TestMemoryConformance(DocumentBackendConformance):
    supports_multiprocess = False

    @pytest.fixture
    def backend_factory(self) -> Callable[[], DocumentBackend]:
        shared = MemoryBackend()
        return lambda: shared
