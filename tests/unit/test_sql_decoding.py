"""Row decoding of the SQL backend and page-token encoding (hot paths kept byte-stable)."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata.scope import Scope
from dq_stores import FieldFilter, IndexEntry, Query
from dq_stores.documents import PageCursor
from dq_stores.sql._statements import IndexFields, decode_document, decode_documents, encode_fields

SCOPE = Scope("acme", "prod")
FIELDS = {"dataset": ("orders", "été"), "status": ("active",)}


def row(environment: str = "prod", written_at: object = None) -> tuple[object, ...]:
    at = written_at or datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return (environment, "contract", "c1", 3, b"{}", "ab" * 32, encode_fields(FIELDS), "s", at, 0)


def test_index_fields_behave_like_the_parsed_dict() -> None:
    fields = IndexFields(encode_fields(FIELDS))
    assert fields == FIELDS
    assert FIELDS == fields  # noqa: SIM300 - dict on the left: the reflected __eq__
    assert fields != {"dataset": ("orders",)}
    assert fields == IndexFields(encode_fields(FIELDS))
    assert fields != "not a mapping"
    assert dict(fields) == FIELDS
    assert list(fields) == sorted(FIELDS)
    assert len(fields) == 2
    assert "status" in fields
    assert "missing" not in fields
    assert fields["status"] == ("active",)
    assert fields.get("missing", ()) == ()
    assert dict(fields.items()) == FIELDS
    assert repr(fields) == repr(dict(sorted(FIELDS.items())))
    with pytest.raises(KeyError):
        fields["missing"]
    with pytest.raises(TypeError):
        hash(fields)


def test_index_fields_copy_and_pickle_as_plain_dicts() -> None:
    fields = IndexFields(encode_fields(FIELDS))
    for clone in (pickle.loads(pickle.dumps(fields)), copy.copy(fields), copy.deepcopy(fields)):
        assert type(clone) is dict
        assert clone == FIELDS
    entry = IndexEntry(fields, "s")
    assert pickle.loads(pickle.dumps(entry)) == IndexEntry(FIELDS, "s")
    assert json.loads(encode_fields(fields)) == {k: list(v) for k, v in FIELDS.items()}


def test_decoded_documents_reuse_the_scope_and_normalise_timestamps() -> None:
    berlin = timezone(timedelta(hours=1))
    docs = decode_documents(
        SCOPE,
        [
            row(),
            row("dev"),
            row("dev", datetime(2026, 1, 2, 4, 4, 5, tzinfo=berlin)),
            row(written_at="2026-01-02T03:04:05+00:00"),  # SQLite stores text
        ],
    )
    assert docs[0].scope is SCOPE
    assert docs[1].scope == Scope("acme", "dev")
    assert docs[2].scope is docs[1].scope
    for doc in docs:
        assert doc.written_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert doc.written_at.tzinfo is UTC
        assert doc.index == IndexEntry(FIELDS, "s")
        assert doc.deleted is False
        assert type(doc.body) is bytes
    assert decode_document(SCOPE, row()) == docs[0]


def test_page_token_format_is_stable() -> None:
    """Tokens issued by earlier releases must still decode: the bytes must not change."""
    query = Query(
        filters=(FieldFilter("status", ("b", "a")), FieldFilter("dataset", ("été",))),
        descending=True,
        sort_key_min='0"1',
    )
    assert query.fingerprint() == '[[["dataset",["été"]],["status",["a","b"]]],true,"0\\"1",null]'
    cursor = PageCursor("sé\\", 'k/"1', "prod")
    token = cursor.encode(query)
    assert token == (
        "eyJzIjoic8OpXFwiLCJrIjoiay9cIjEiLCJlIjoicHJvZCIsInEiOiJbW1tcImRhdGFzZXRcIixbXCLDqXTDqVwi"
        "XV0sW1wic3RhdHVzXCIsW1wiYVwiLFwiYlwiXV1dLHRydWUsXCIwXFxcIjFcIixudWxsXSJ9"
    )
    assert (
        PageCursor.decode(
            Query(filters=query.filters, descending=True, sort_key_min='0"1', page_token=token)
        )
        == cursor
    )


@given(st.dictionaries(st.text(), st.lists(st.text()).map(tuple), max_size=6))
def test_encode_fields_writes_what_json_dumps_writes(fields: dict[str, tuple[str, ...]]) -> None:
    # the fields column is compared and parsed as stored: its bytes must not change
    expected = json.dumps(
        {name: list(values) for name, values in fields.items()},
        separators=(",", ":"),
        ensure_ascii=False,
        sort_keys=True,
    )
    assert encode_fields(fields) == expected
