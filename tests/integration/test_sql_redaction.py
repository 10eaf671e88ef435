"""The database password never shows in repr, error messages or logs."""

from __future__ import annotations

import logging

import pytest

from dq_metadata.errors import DQError, MisconfiguredError, StoreUnavailableError
from dq_stores.sql import SqlBackend

PASSWORD = "Sup3r-s3cret-pw"


def test_repr_hides_the_password() -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        SqlBackend(
            f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/db",
            connect_timeout=1,
            retry_attempts=1,
        )
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


@pytest.mark.postgres
def test_repr_of_a_live_backend_hides_the_password(postgres_url: str) -> None:
    from tests.support.postgres import TEST_PASSWORD

    with SqlBackend(postgres_url) as backend:
        assert TEST_PASSWORD in postgres_url
        assert TEST_PASSWORD not in repr(backend)
        assert "***" in repr(backend)


@pytest.mark.postgres
def test_a_wrong_database_error_hides_the_password(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support.postgres import TEST_PASSWORD

    caplog.set_level(logging.DEBUG)
    wrong = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(MisconfiguredError) as caught:
        SqlBackend(wrong)
    assert "no_such_database" in str(caught.value)
    assert TEST_PASSWORD not in str(caught.value)
    assert TEST_PASSWORD not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://app:{PASSWORD}@host/db",
        f"postgresql+psycopg2://app:{PASSWORD}@host/db",
        f"postgresql+psycopg://app:{PASSWORD}@[::1",
    ],
)
def test_rejected_urls_are_not_echoed(url: str) -> None:
    with pytest.raises(DQError) as caught:
        SqlBackend(url)
    assert PASSWORD not in str(caught.value)
    assert caught.value.__cause__ is None or PASSWORD not in str(caught.value.__cause__)


def test_unreachable_server_logs_no_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreUnavailableError, match="database unavailable"):
        SqlBackend(
            f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/db",
            connect_timeout=1,
            retry_attempts=2,
        )
    assert PASSWORD not in caplog.text
