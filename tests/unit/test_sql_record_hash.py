"""The SQL record hash (``dq_stores.sql._chain``): every part counts, boundaries cannot shift."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from dq_stores.sql._chain import finish, hash_sql, prefix, prefix_sql, stamp, stamp_of

AT = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)
BASE = ("acme", "prod", "contract", "orders", False, "ab" * 32, '{"s":["x"]}', "001")


def record_hash(*parts: object) -> str:
    """A row's record hash from its 9 prefix parts, its revision and its link."""
    return finish(prefix(*parts[:9]), parts[9], parts[10])  # type: ignore[arg-type]


def _hash(*parts: object, revision: int = 3, prev: str | None = "p" * 64) -> str:
    return record_hash(*parts, stamp(AT), revision, prev)


def test_every_part_changes_the_hash() -> None:
    reference = _hash(*BASE)
    for i, part in enumerate(BASE):
        changed = list(BASE)
        changed[i] = (not part) if isinstance(part, bool) else f"{part}x"
        assert _hash(*changed) != reference, i
    assert _hash(*BASE, revision=4) != reference
    assert _hash(*BASE, prev=None) != reference
    later = stamp(AT + timedelta(microseconds=1))
    assert record_hash(*BASE, later, 3, "p" * 64) != reference


def test_the_record_hash_is_sha256_of_the_tagged_length_prefixed_parts() -> None:
    parts = [*BASE[:4], "0", *BASE[5:], stamp(AT), "3", "p" * 64]
    text = "dq-sql-record-1" + "".join(f";{len(p.encode())}:{p}" for p in parts)
    assert _hash(*BASE) == hashlib.sha256(text.encode()).hexdigest()
    assert prefix("t", "é", "k", "key", True, "", "", "", "s").startswith(
        "dq-sql-record-1;1:t;2:é;"
    )
    assert _hash(*BASE, prev=None) == _hash(*BASE, prev="")  # no link: the empty string


@given(st.text(max_size=8), st.text(min_size=1, max_size=8), st.integers(1, 8))
def test_moving_text_across_a_boundary_changes_the_hash(a: str, b: str, k: int) -> None:
    k = min(k, len(b))
    split = record_hash("t", "e", "k", "key", False, a, b, "", "s", 1, None)
    moved = record_hash("t", "e", "k", "key", False, a + b[:k], b[k:], "", "s", 1, None)
    assert split != moved


def test_stamp_is_utc_and_fixed_width() -> None:
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    assert stamp(paris) == stamp(AT) == "2026-12-01T12:00:00.123456+00:00"
    assert stamp(AT.replace(microsecond=0)) == "2026-12-01T12:00:00.000000+00:00"
    assert stamp_of(AT.isoformat()) == stamp(AT)  # SQLite's stored text


def test_the_sql_forms() -> None:
    assert hash_sql(False, ":pre", "revision + 1", "record_hash") == (
        "dq_record_hash(:pre, revision + 1, record_hash)"
    )
    pg = hash_sql(True, ":pre", "1", "NULL")
    assert pg.startswith("encode(sha256(convert_to(CAST(:pre AS text)")
    assert "coalesce(NULL, '')" in pg
    built = prefix_sql([f"p{i}" for i in range(9)])
    assert built.startswith("('dq-sql-record-1' || ';' || octet_length(convert_to(CAST(p0")
    assert "CASE WHEN p4 THEN '1' ELSE '0' END" in built
