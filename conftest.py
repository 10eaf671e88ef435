"""Root conftest: assertion rewriting for the shipped conformance suite, service plugins."""

import pytest
from hypothesis import HealthCheck, settings

pytest.register_assert_rewrite("dq_stores.testing")

# Fixtures that find (or start) PostgreSQL and Azurite; see docs/testing.md.
pytest_plugins = [
    "tests.support.postgres",
    "tests.support.azurite",
    "tests.support.canary",
    "tests.support.telemetry",  # the `otel` fixture: in-memory span exporter and metric reader
    "tests.support.fs_read",  # `fs_read_path`: a filesystem test once per get read path (C, Python)
]

# Property tests check correctness, not speed: a loaded 2-core CI machine must not
# turn a slow example into a failure.
settings.register_profile(
    "dq", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100
)
settings.load_profile("dq")
