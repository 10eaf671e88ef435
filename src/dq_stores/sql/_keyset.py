"""Keyset pagination: every row of a query, read in bounded batches."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["Reader", "keyset_rows"]

Reader = Callable[[str, list[Any]], list[Any]]  # (sql, params) -> rows, in the scope


def keyset_rows(
    read: Reader,
    select: str,
    params: Sequence[Any],
    order: Sequence[str],
    ph: str,
    batch: int = 1000,
) -> Iterator[Any]:
    """Every row of ``select`` in ``order``, ``batch`` rows per ``read``.

    ``select`` is a ``SELECT … WHERE …`` without ``ORDER BY`` or ``LIMIT``, its
    placeholders bound by ``params``; ``order`` names the columns it is ordered by,
    which must be unique per row and be the first ``len(order)`` columns it selects.
    Each read after the first adds ``AND (order…) > (ph, …)`` bound to the last row
    read (keyset pagination: no offset, no cursor or transaction held between reads);
    reading stops after a batch shorter than ``batch``. Rows are yielded as ``read``
    returns them, one batch read at a time (lazily).
    """
    columns = ", ".join(order)
    after = f" AND ({columns}) > ({', '.join([ph] * len(order))})"
    tail = f" ORDER BY {columns} LIMIT {batch}"
    mark: list[Any] = []
    while True:
        rows = read(select + (after if mark else "") + tail, [*params, *mark])
        yield from rows
        if len(rows) < batch:
            return
        mark = list(rows[-1][: len(order)])
