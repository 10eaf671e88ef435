"""Root conftest: assertion rewriting for the shipped conformance suite, service plugins."""

import pytest

pytest.register_assert_rewrite("dq_stores.testing")
