"""A bank-transfer workload of multi-document commits, and the invariants it keeps.

Each transfer is one ``commit``: two account updates at their read revisions, the
transfer counter at its read revision, a new ledger entry (``MUST_NOT_EXIST``)
with a unique token, the delete of the ledger entry ``KEEP`` transfers back, and
two read-guards (a config document at revision 1, a key that must stay absent).
A commit applied in part breaks at least one invariant of ``check_snapshot`` or
``check_quiescent``.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from typing import Any

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores import DocumentBackend, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.documents import (
    ANY,
    MUST_NOT_EXIST,
    ConditionCheck,
    Delete,
    Operation,
    Put,
    StoredDocument,
    at_revision,
)

SCOPE = Scope("acme", "prod")
ACCOUNT = "account"
LEDGER = "ledger"
ACCOUNTS = ("a0", "a1", "a2", "a3")
START = 100
KEEP = 5  # live ledger entries


def _write(key: str, value: dict[str, Any], fields: dict[str, tuple[str, ...]]) -> DocumentWrite:
    body = canonical_json({"id": key, **value})
    return DocumentWrite(key, body, content_hash(body), IndexEntry(fields, key))


def value(doc: StoredDocument) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(doc.body)
    return loaded


def entry_key(n: int) -> str:
    return f"t{n:06d}"


def seed(backend: DocumentBackend) -> None:
    """Accounts at ``START``, the counter at 0 and the guarded config document."""
    ops: list[Operation] = [
        Put(ACCOUNT, _write(a, {"balance": START}, {"role": ("account",)}), MUST_NOT_EXIST)
        for a in ACCOUNTS
    ]
    ops.append(Put(ACCOUNT, _write("counter", {"n": 0}, {"role": ("counter",)}), MUST_NOT_EXIST))
    ops.append(Put(LEDGER, _write("config", {"keep": KEEP}, {}), MUST_NOT_EXIST))
    backend.commit(SCOPE, ops)


def snapshot(backend: DocumentBackend) -> dict[str, StoredDocument]:
    """Accounts and counter read in ONE statement (a consistent snapshot on SQL)."""
    return {d.key: d for d in backend.iter_documents(SCOPE, ACCOUNT)}


def check_snapshot(docs: dict[str, StoredDocument]) -> int:
    """Invariants of one consistent read; returns the transfer count."""
    assert set(docs) == {*ACCOUNTS, "counter"}, sorted(docs)
    counter = docs["counter"]
    n = int(value(counter)["n"])
    assert counter.revision == n + 1, (counter.revision, n)
    balances = {a: value(docs[a])["balance"] for a in ACCOUNTS}
    assert sum(balances.values()) == START * len(ACCOUNTS), balances
    revisions = {a: docs[a].revision for a in ACCOUNTS}
    assert sum(r - 1 for r in revisions.values()) == 2 * n, (revisions, n)
    return n


def transfer(backend: DocumentBackend, rng: random.Random) -> tuple[int, str]:
    """One guarded transfer commit; returns (its number, its token). Raises what commit raises."""
    ops, n, token = plan_transfer(backend, rng)
    backend.commit(SCOPE, ops)
    return n, token


def plan_transfer(backend: DocumentBackend, rng: random.Random) -> tuple[list[Operation], int, str]:
    """Read the accounts; the operations of a transfer from that state, its number and token."""
    docs = snapshot(backend)
    src, dst = rng.sample(ACCOUNTS, 2)
    counter = docs["counter"]
    n = int(value(counter)["n"]) + 1
    token = uuid.uuid4().hex
    ops: list[Operation] = [
        Put(
            ACCOUNT,
            _write(src, {"balance": value(docs[src])["balance"] - 1}, {"role": ("account",)}),
            at_revision(docs[src].revision),
        ),
        Put(
            ACCOUNT,
            _write(dst, {"balance": value(docs[dst])["balance"] + 1}, {"role": ("account",)}),
            at_revision(docs[dst].revision),
        ),
        ConditionCheck(LEDGER, "config", at_revision(1)),
        Put(
            ACCOUNT,
            _write("counter", {"n": n}, {"role": ("counter",)}),
            at_revision(counter.revision),
        ),
        Put(
            LEDGER,
            _write(entry_key(n), {"token": token, "from": src, "to": dst}, {"party": (src, dst)}),
            MUST_NOT_EXIST,
        ),
        ConditionCheck(ACCOUNT, "frozen", MUST_NOT_EXIST),
    ]
    if n > KEEP:
        ops.append(Delete(LEDGER, entry_key(n - KEEP), ANY))
    return ops, n, token


def check_quiescent(backend: DocumentBackend) -> dict[str, int]:
    """Every invariant once no writer runs; returns each applied token's transfer number."""
    n = check_snapshot(snapshot(backend))
    tokens: dict[str, int] = {}
    for a in (*ACCOUNTS, "counter"):
        history = backend.history(SCOPE, ACCOUNT, a)
        assert [d.revision for d in history] == list(range(1, len(history) + 1))
    for k in range(1, n + 1):
        history = backend.history(SCOPE, LEDGER, entry_key(k))
        assert [d.deleted for d in history] == ([False, True] if k <= n - KEEP else [False])
        tokens[value(history[0])["token"]] = k
    live = {d.key: value(d) for d in backend.iter_documents(SCOPE, LEDGER)}
    assert set(live) == {"config"} | {entry_key(k) for k in range(max(1, n - KEEP + 1), n + 1)}
    with_a0 = backend.query(SCOPE, LEDGER, Query((FieldFilter("party", ("a0",)),), limit=1000))
    assert {d.key for d in with_a0.items} == {
        k for k, v in live.items() if "a0" in (v.get("from"), v.get("to"))
    }
    assert backend.count(SCOPE, ACCOUNT, (FieldFilter("role", ("account",)),)) == len(ACCOUNTS)
    try:
        backend.history(SCOPE, ACCOUNT, "frozen")
    except NotFoundError:
        pass
    else:
        raise AssertionError("the guarded key 'frozen' was written")
    assert list(backend.list_environments(SCOPE.tenant)) == [SCOPE.environment]
    return tokens


def sqlite_placeholders(path: str) -> int:
    """Head rows at revision 0 left in a SQLite database (must be none)."""
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM dq_heads WHERE revision = 0").fetchone()[0])
