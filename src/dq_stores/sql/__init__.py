"""SQL adapters: PostgreSQL (psycopg 3) and SQLite through one implementation.

Needs the ``postgres`` or ``sqlite`` extra. ``PostgresBackend`` and ``SqliteBackend``
are the document backends (``SqlBackend`` is their shared implementation, kept as a
name for compatibility); ``SqlResultsStore`` keeps run results in the same
database. Schema changes ship as Alembic migrations in this package; apply them
with ``dq db upgrade``.
"""

from dq_stores.sql.backend import PostgresBackend, SqlBackend, SqliteBackend
from dq_stores.sql.results import SqlResultsStore

__all__ = ["PostgresBackend", "SqlBackend", "SqlResultsStore", "SqliteBackend"]
