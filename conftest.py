"""Root conftest: assertion rewriting for the shipped conformance suite, service plugins."""

import pytest

pytest.register_assert_rewrite("dq_stores.testing")

# Fixtures that find (or start) PostgreSQL and Azurite; see docs/testing.md.
pytest_plugins = ["tests.support.postgres", "tests.support.azurite"]
