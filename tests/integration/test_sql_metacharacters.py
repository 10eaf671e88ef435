"""SQL metacharacters in keys, indexed values and sort keys pass through every public
method as plain data, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores import (
    ANY,
    MUST_NOT_EXIST,
    DocumentWrite,
    FieldFilter,
    IndexEntry,
    Query,
    at_revision,
)
from dq_stores.sql import SqlBackend

SCOPE = Scope("acme", "prod")
NASTY = [
    "'",
    "''",
    '"',
    ";",
    "--",
    "/* x */",
    "%s",
    "%(t)s",
    "%%",
    "%b",
    "?",
    ":key",
    "$1",
    "\\",
    "\\x00",
    "*",
    "_%",
    "a'); DROP TABLE dq_heads; --",
    "x' OR '1'='1",
    'Robert"); DELETE FROM dq_revisions;--',
    "ü∂ 𝄞 漢字",
    "\t\n\r",
    "{a,b}",
    "NULL",
]


@pytest.fixture(params=["postgres", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlBackend]:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        url = str(request.getfixturevalue("postgres_url"))
    else:
        url = f"sqlite:///{tmp_path / 'dq.sqlite'}"
    with SqlBackend(url) as backend:
        yield backend


def _write(key: str, value: str, n: int = 0) -> DocumentWrite:
    body = canonical_json({"id": key, "value": value, "n": n})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({"f": (value, "plain")}, value))


@pytest.mark.parametrize("nasty", NASTY)
def test_metacharacters_are_data_everywhere(backend: SqlBackend, nasty: str) -> None:
    key = f"k{nasty}"
    first = backend.put(SCOPE, "contract", _write(key, nasty), MUST_NOT_EXIST)
    second = backend.put(SCOPE, "contract", _write(key, nasty, 1), at_revision(1))
    backend.put_many(SCOPE, "contract", [_write(nasty, nasty), _write("other", "plain")])

    assert backend.get(SCOPE, "contract", key).body == second.body
    assert backend.get_revision(SCOPE, "contract", key, 1).body == first.body
    assert [d.revision for d in backend.history(SCOPE, "contract", key)] == [1, 2]
    assert backend.get(SCOPE, "contract", nasty).index.fields["f"] == (nasty, "plain")

    by_value = Query(filters=(FieldFilter("f", (nasty,)),), limit=1)
    page = backend.query(SCOPE, "contract", by_value)
    assert [d.key for d in page.items] == sorted([key, nasty])[:1]
    assert page.next_token is not None
    rest = backend.query(
        SCOPE, "contract", Query(filters=by_value.filters, limit=1, page_token=page.next_token)
    )
    assert [d.key for d in rest.items] == sorted([key, nasty])[1:]
    bounded = Query(sort_key_min=nasty, sort_key_max=nasty + "\x01")
    assert sorted(d.key for d in backend.query(SCOPE, "contract", bounded).items) == sorted(
        [key, nasty]
    )
    assert backend.count(SCOPE, "contract", (FieldFilter("f", (nasty, "plain")),)) == 3
    tenant_page = backend.query_tenant("acme", "contract", by_value)
    assert {d.key for d in tenant_page.items} <= {key, nasty}
    assert {d.key for d in backend.iter_documents(SCOPE, "contract")} == {key, nasty, "other"}

    backend.delete(SCOPE, "contract", key, at_revision(2))
    assert backend.count(SCOPE, "contract", (FieldFilter("f", (nasty,)),)) == 1
    backend.put(SCOPE, "contract", _write(key, nasty, 2), ANY)
    assert backend.get(SCOPE, "contract", key).revision == 4
    assert backend.count(SCOPE, "contract") == 3  # the tables are all still there
