"""Forged records (valid hash, odd content) at the edges of what ``get`` computes.

``get`` decides whether a head is fresh from ``written_at.timestamp()``; for a
naive time at the calendar's edge that raises ``ValueError`` ("year 0 is out of
range") in a zone west of UTC — which escaped ``get`` on both read paths. Such a
head is now simply not fresh (checked as any other).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem._records import encode_record

pytestmark = pytest.mark.usefixtures("fs_read_path")

SCOPE = Scope("t", "e")


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _forged_head(root: Path, when: datetime) -> StoredDocument:
    """One revision whose head (and so its revision file: one inode) is rewritten in
    place with ``written_at`` = ``when``, hash and all."""
    backend = FilesystemBackend(root, durability="process")
    body = canonical_json({"a": 1})
    backend.put(SCOPE, "k", DocumentWrite("key", body, content_hash(body)), ANY)
    (head,) = root.glob("t/e/docs/k/*.head")
    forged = dataclasses.replace(backend.get(SCOPE, "k", "key"), written_at=when)
    with open(head, "r+b") as f:  # in place: the inode (and its two names) stay
        f.write(encode_record("k", forged))
        f.truncate()
    os.utime(head)
    return forged


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize(
    "when",
    [
        datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59))),
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59))),
    ],
    ids=["year1", "year9999", "year1+23:59", "year9999-23:59"],
)
def test_a_written_at_at_the_calendars_edge_is_not_a_crash(tmp_path: Path, when: datetime) -> None:
    forged = _forged_head(tmp_path, when)
    try:
        got = FilesystemBackend(tmp_path, durability="process").get(SCOPE, "k", "key")
    except IntegrityError:
        return  # the index disagrees: fine, either verdict is one of ours
    assert got == forged
