"""Credentials never show in rendered URLs, config output or log records."""

from __future__ import annotations

import logging
import traceback
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.errors import DQError
from dq_stores._redact import RedactingFilter, install_log_redaction, redact
from dq_stores.sql import SqlBackend
from dq_stores.sql._url import parse_url, render_url, url_secrets

secrets = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=40
).filter(lambda s: "postgres" not in s and "host" not in s)


@given(secret=secrets, other=secrets)
def test_render_url_masks_user_info_and_query_passwords(secret: str, other: str) -> None:
    url = parse_url(
        f"postgresql+psycopg://app:{quote(secret, safe='')}@dbhost/dq"
        f"?password={quote(secret, safe='')}&sslpassword={quote(other, safe='')}&sslmode=require"
    )
    rendered = render_url(url)
    for value in (secret, other, quote(secret, safe=""), quote(other, safe="")):
        assert value not in rendered
    assert "sslmode=require" in rendered
    assert rendered.startswith("postgresql+psycopg://app:***@dbhost/dq?")
    assert set(url_secrets(url)) == {secret, other}


def test_repr_of_a_backend_hides_a_query_password() -> None:
    secret = "Qu3ry-Pa55word-xyz"
    with pytest.raises(DQError) as caught:
        SqlBackend(
            f"postgresql+psycopg://app@127.0.0.1:1/db?password={secret}",
            connect_timeout=1,
            retry_attempts=1,
        )
    assert secret not in "".join(traceback.format_exception(caught.value))


@given(sig=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789%+/=", min_size=6))
def test_redact_masks_sas_signatures_and_account_keys(sig: str) -> None:
    text = (
        f"GET /c/b?se=2030-01-01&sp=r&sig={sig}&sv=2023 200; "
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={sig};"
        f"SharedAccessSignature=sv=1&sig={sig}; postgresql://u:{quote(sig, safe='')}@h/db"
    )
    out = redact(text)
    assert sig not in out
    assert "AccountName=acct" in out
    assert "sp=r" in out


def test_ordinary_pairs_are_kept() -> None:
    text = "key=orders design=x tenant=acme status=ok"
    assert redact(text) == text


def test_sdk_request_lines_are_redacted_once_installed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s',
        "https",
        "acct",
        443,
        "GET",
        "/c/b?sig=S1GNATURE",
        "HTTP/1.1",
        200,
        5,
    )
    logging.getLogger("dq_stores.sql.backend").warning(
        "could not connect: %s", "postgresql://u:Pa55w0rdX@h/db"
    )
    assert "S1GNATURE" not in caplog.text
    assert "Pa55w0rdX" not in caplog.text
    assert "sig=***" in caplog.text


def test_the_filter_redacts_exception_text() -> None:
    record = logging.LogRecord("azure", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        raise RuntimeError("AccountKey=K3yK3yK3y==;")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert record.exc_text is not None
    assert "K3yK3yK3y" not in record.exc_text


@settings(max_examples=20, deadline=None)
@given(secret=secrets, field=st.sampled_from(["sslmode", "hostaddr"]))
def test_a_driver_message_quoting_the_password_is_scrubbed_in_the_whole_chain(
    secret: str, field: str
) -> None:
    """libpq echoes an invalid ``sslmode``/``hostaddr``; when that value is the password
    (pasted into the wrong parameter), the chained driver exceptions must not show it."""
    encoded = quote(secret, safe="")
    with pytest.raises(DQError) as caught:
        SqlBackend(
            f"postgresql+psycopg://app:{encoded}@127.0.0.1:1/db?{field}={encoded}",
            connect_timeout=1,
            retry_attempts=1,
        )
    shown = "".join(traceback.format_exception(caught.value))
    assert secret not in shown
    assert encoded not in shown


def test_a_logger_created_after_installation_is_redacted_too() -> None:
    """The SDKs import modules (and create their loggers) lazily, after a client was
    built: a filter per existing logger would miss them."""
    install_log_redaction()
    name = f"azure.storage.blob._lazy_{id(object())}"
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    root, handler = logging.getLogger(), Keep(logging.DEBUG)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        logging.getLogger(name).debug("GET %s", "https://a/c/b?sv=1&sig=L4teS3cretSig")
        logging.getLogger("urllib3.util.retry_later").debug(
            "Incremented Retry for (url='%s')", "/c/b?se=1&sig=L4teS3cretSig"
        )
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert len(records) == 2
    assert not any("L4teS3cretSig" in text for text in records), records
