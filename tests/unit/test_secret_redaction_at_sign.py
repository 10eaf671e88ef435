"""A password with an unencoded ``@`` (``user:p@ss@host``) is common in practice.

SQLAlchemy and libpq split such a URL at the *first* ``@``, so the tail of the
password became the host name and appeared in "failed to resolve host" errors,
``dq doctor`` and ``dq config show``. The URL is now refused up front without
echoing it, and redaction masks the user-info up to the last ``@``.
"""

from __future__ import annotations

import traceback

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata.errors import MisconfiguredError
from dq_stores._redact import redact
from dq_stores.sql import SqlBackend

PASSWORD = "S3CR@Tpw"
URL = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/db"


def test_a_url_with_an_unencoded_at_sign_in_its_password_is_refused_unechoed() -> None:
    with pytest.raises(MisconfiguredError) as caught:
        SqlBackend(URL)
    text = "".join(traceback.format_exception(caught.value))
    assert "%40" in str(caught.value)
    assert "Tpw" not in text
    assert "S3CR" not in text


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="/?#@ \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"),
        min_size=1,
        max_size=8,
    ),
    st.text(
        alphabet=st.characters(blacklist_characters="/?#@ \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"),
        min_size=1,
        max_size=8,
    ),
)
def test_redaction_masks_the_whole_password_up_to_the_last_at_sign(head: str, tail: str) -> None:
    text = redact(f"url postgresql://app:{head}@{tail}ZZ@db.example:5432/x failed")
    assert f"{head}@{tail}ZZ" not in text
    assert f"{tail}ZZ@" not in text
    assert "postgresql://app:***@db.example:5432/x failed" in text
