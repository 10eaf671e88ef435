"""Keyset pagination (``dq_stores.sql._keyset``): every row once, in order, in bounded reads."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from dq_stores.sql._keyset import keyset_rows


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5])  # empty, short, full+empty, full+short
def test_every_row_once_in_order(count: int) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (scope TEXT, a TEXT, b INTEGER, v TEXT, PRIMARY KEY (scope, a, b))")
    wanted = [("x", f"k{i // 2}", i % 2, f"v{i}") for i in range(count)]
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [*wanted, ("y", "k0", 0, "other")])
    reads: list[tuple[str, list[Any]]] = []

    def read(sql: str, params: list[Any]) -> list[Any]:
        reads.append((sql, params))
        return db.execute(sql, params).fetchall()

    select = "SELECT a, b, v FROM t WHERE scope = ?"
    rows = list(keyset_rows(read, select, ["x"], ("a", "b"), "?", batch=2))
    assert rows == [row[1:] for row in wanted]
    assert len(reads) == count // 2 + 1  # a short (possibly empty) batch ends it
    assert reads[0] == (select + " ORDER BY a, b LIMIT 2", ["x"])
    for (sql, params), last in zip(reads[1:], wanted[1::2], strict=True):
        assert sql == select + " AND (a, b) > (?, ?) ORDER BY a, b LIMIT 2"
        assert params == ["x", last[1], last[2]]


def test_reads_lazily_one_batch_at_a_time() -> None:
    reads: list[list[Any]] = []

    def read(sql: str, params: list[Any]) -> list[Any]:
        reads.append(params)
        return [(len(reads), 0)] * 2

    rows = keyset_rows(read, "SELECT k, n FROM t WHERE s = %s", ["s"], ("k", "n"), "%s", batch=2)
    assert next(rows) == (1, 0)
    assert len(reads) == 1
    assert next(rows) == (1, 0)
    assert len(reads) == 1  # the batch's rows first, then the next read
    assert next(rows) == (2, 0)
    assert reads[-1] == ["s", 1, 0]
