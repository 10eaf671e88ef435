"""SQL document backend: PostgreSQL (psycopg 3) and SQLite through one adapter.

Needs the ``postgres`` or ``sqlite`` extra. Schema changes ship as Alembic
migrations in this package; apply them with ``dq db upgrade``.
"""

from dq_stores.sql.backend import SqlBackend

__all__ = ["SqlBackend"]
