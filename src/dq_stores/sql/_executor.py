"""What the backend needs from a database: one executor per SQL dialect.

The backend holds the logic (validation, retries, error translation, paging);
an executor runs the statements for one operation on a DBAPI connection.
PostgreSQL sends each operation as one round trip inside one transaction with
the row-level-security scope set; SQLite runs the same steps in-process under
``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dq_metadata.scope import Scope
from dq_stores.documents import DocumentWrite, Expectation, ExpectKind
from dq_stores.sql._chain import hash_sql, prefix, stamp_of
from dq_stores.sql._statements import encode_fields, postings

if TYPE_CHECKING:
    from dq_stores.sql._commit import Refused, Step

__all__ = ["ALL", "Executor", "Revision", "head_statement", "pyformat"]

#: Row-level-security wildcard: every tenant / every environment (admin listings).
ALL = "*"

_COLS = (
    "tenant, environment, kind, key, revision, deleted, body, sha256, fields, sort_key,"
    " written_at, record_hash, prev_hash"
)
_SET = (
    "deleted = excluded.deleted, body = excluded.body, sha256 = excluded.sha256,"
    " fields = excluded.fields, sort_key = excluded.sort_key, written_at = excluded.written_at"
)


def _hash(postgres: bool, revision: str, prev: str) -> str:
    """The new revision's record hash: the client's prefix (``:pre``), finished with
    the revision and link only the statement knows (``_chain``)."""
    return hash_sql(postgres, ":pre", revision, prev)


def _upsert(postgres: bool) -> str:
    # DO UPDATE's right-hand sides read the existing row: its revision and record hash
    # are the predecessor's, under the row lock the upsert holds.
    return (
        f"INSERT INTO dq_heads ({_COLS}) VALUES (:t, :e, :k, :key, 1, :deleted, :body, :sha,"
        f" :fields, :sk, :at, {_hash(postgres, '1', 'NULL')}, NULL)"
        " ON CONFLICT (tenant, environment, kind, key) DO UPDATE SET"
        f" revision = dq_heads.revision + 1, {_SET}, prev_hash = dq_heads.record_hash,"
        f" record_hash = {_hash(postgres, 'dq_heads.revision + 1', 'dq_heads.record_hash')}"
    )


def _update(postgres: bool) -> str:
    # SET's right-hand sides read the row before the update (revision, record_hash)
    return (
        "UPDATE dq_heads SET revision = revision + 1, deleted = :deleted, body = :body,"
        " sha256 = :sha, fields = :fields, sort_key = :sk, written_at = :at,"
        f" prev_hash = record_hash, record_hash = {_hash(postgres, 'revision + 1', 'record_hash')}"
        " WHERE tenant = :t AND environment = :e AND kind = :k AND key = :key AND NOT deleted"
    )


_STATEMENTS = {pg: (_upsert(pg), _update(pg)) for pg in (False, True)}
RETURNING = f" RETURNING {_COLS}"
#: Every column of a head row, which is also the revision row it copies.
HEAD_COLUMNS = _COLS


@dataclass(frozen=True, slots=True)
class Revision:
    """A revision about to be written (a tombstone when ``deleted``)."""

    key: str
    deleted: bool
    body: bytes
    sha256: str
    fields: str
    sort_key: str
    postings: list[tuple[str, str]]

    @classmethod
    def of(cls, write: DocumentWrite) -> Revision:
        return cls(
            write.key,
            False,
            write.body,
            write.sha256,
            encode_fields(write.index.fields),
            write.index.sort_key,
            postings(write.index.fields),
        )

    @classmethod
    def tombstone(cls, key: str) -> Revision:
        return cls(key, True, b"", "", "{}", "", [])

    def params(self, scope: Scope, kind: str, at: Any) -> dict[str, Any]:
        return {
            "t": scope.tenant,
            "e": scope.environment,
            "k": kind,
            "key": self.key,
            "deleted": self.deleted,
            "body": self.body,
            "sha": self.sha256,
            "fields": self.fields,
            "sk": self.sort_key,
            "at": at,
            "pre": prefix(
                scope.tenant,
                scope.environment,
                kind,
                self.key,
                self.deleted,
                self.sha256,
                self.fields,
                self.sort_key,
                stamp_of(at),
            ),
        }


def head_statement(expect: Expectation, deleted: bool, postgres: bool) -> str:
    """Move the head to the next revision iff ``expect`` holds; no row changed otherwise.

    The database checks the expectation in the same statement that writes (upsert
    or conditional update), so concurrent writers can never both succeed. The same
    statement links the new revision's record hash to the one it replaces.
    """
    upsert, update = _STATEMENTS[postgres]
    if expect.kind is ExpectKind.ABSENT:
        return upsert + " WHERE dq_heads.deleted"
    if expect.kind is ExpectKind.REVISION:
        return update + " AND revision = :rev"
    return update if deleted else upsert


_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")


def pyformat(sql: str) -> str:
    """``:name`` placeholders → psycopg's ``%(name)s``."""
    return _NAMED.sub(r"%(\1)s", sql)


class Executor(ABC):
    """Runs one operation's statements on a DBAPI connection of its dialect."""

    placeholder: str
    #: appended to correlated subqueries so the planner keeps them as per-row probes
    subquery_fence: str

    @abstractmethod
    def on_connect(self, dbapi_connection: Any) -> None:
        """Prepare a new pooled connection (autocommit, pragmas, session settings)."""

    def looks_alive(self, dbapi_connection: Any) -> bool:
        """Cheap local check (no round trip) that a pooled connection is usable."""
        return True

    @abstractmethod
    def read(
        self, conn: Any, tenant: str, environment: str, sql: str, params: Sequence[Any]
    ) -> list[Any]:
        """Rows of one SELECT, run with the row-level-security scope set."""

    @abstractmethod
    def write(
        self,
        conn: Any,
        scope: Scope,
        kind: str,
        rev: Revision,
        expect: Expectation,
        at: datetime,
    ) -> int | None:
        """Append ``rev`` if ``expect`` holds; the new revision number, or ``None``."""

    def refresh_statistics(self, conn: Any, written: int) -> None:
        """After a bulk write of ``written`` documents: refresh planner statistics if due."""
        return

    @abstractmethod
    def write_many(
        self, conn: Any, scope: Scope, kind: str, revs: Sequence[Revision], at: datetime
    ) -> None:
        """Unconditionally append one revision to each of ``revs`` (distinct keys)."""

    @abstractmethod
    def commit(
        self, conn: Any, scope: Scope, steps: Sequence[Step], at: datetime
    ) -> list[int | None] | Refused:
        """Apply ``steps`` in one transaction, each only if its expectation holds.

        Returns the new revision of each step (``None`` for guards), or ``Refused``
        for the first step (in order) that did not hold, having written nothing.
        """
