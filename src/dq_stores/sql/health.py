"""``dq doctor`` checks of a SQL database: schema at head, the connecting role's
grants, and (PostgreSQL) that row-level security is in force for that role.

The grants are those of ``docs/operations.md`` (least privilege): the application
role needs ``USAGE`` on the schema, ``SELECT, INSERT, UPDATE, DELETE`` on the
document and results tables and ``SELECT`` on ``alembic_version``; the owner role
runs ``dq db upgrade``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, create_engine, pool, text

from dq_metadata.errors import DQError
from dq_stores.health import Check
from dq_stores.sql import _errors
from dq_stores.sql._url import parse_url
from dq_stores.sql.schema import current_revision, head_revision

__all__ = ["APP_TABLES", "TABLE_PRIVILEGES", "grant_statement", "sql_checks"]

#: Tables the application role reads and writes (migrations 0001-0003).
APP_TABLES = ("dq_revisions", "dq_heads", "dq_postings", "dq_results", "dq_result_chunks")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
_UPGRADE_FIX = "run `dq db upgrade` as the owner role (see docs/operations.md)"


def grant_statement(privileges: str, target: str, role: str) -> str:
    return f'GRANT {privileges} ON {target} TO "{role}";'


def sql_checks(url: str, store: str) -> list[Check]:
    """Schema, grants and row-level security of the database at ``url``.

    Raises whatever connecting raises (``guarded`` turns it into an error check).
    """
    parsed = parse_url(url)
    engine = create_engine(parsed, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            checks = [_schema(conn, store)]
            if conn.dialect.name == "postgresql":
                checks.extend(_postgres(conn, store))
            conn.rollback()
        return checks
    except DQError:
        raise
    except Exception as exc:
        secrets = (parsed.password,) if parsed.password else ()
        raise _errors.translate(exc, secrets=secrets) from exc
    finally:
        engine.dispose()


def _schema(conn: Connection, store: str) -> Check:
    head = head_revision()
    try:
        at = current_revision(conn)
    except Exception as exc:  # no SELECT on alembic_version, most likely
        conn.rollback()
        return Check(
            "schema", store, "error", f"cannot read the schema version: {exc}", _UPGRADE_FIX
        )
    if at == head:
        return Check("schema", store, "ok", f"at migration head {head}")
    shown = "empty (no schema)" if at is None else f"at {at}"
    return Check(
        "schema", store, "error", f"database is {shown}; this library needs {head}", _UPGRADE_FIX
    )


def _one(conn: Connection, sql: str, **params: Any) -> Any:
    return conn.execute(text(sql), params).one()


def _postgres(conn: Connection, store: str) -> list[Check]:
    role, superuser, bypass = _one(
        conn,
        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    # The tables' schema, found even when the role cannot use it (current_schema()
    # would then skip it): that missing USAGE is one of the things to report.
    found = conn.execute(
        text(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = 'dq_revisions' AND c.relkind IN ('r', 'p') LIMIT 1"
        )
    ).first()
    schema = "public" if found is None else str(found[0])
    return [
        _role(role, superuser, bypass, store),
        *_grants(conn, role, schema, store),
        _policies(conn, schema, store),
    ]


def _role(role: str, superuser: bool, bypass: bool, store: str) -> Check:
    fix = (
        "connect as an application role created NOSUPERUSER NOBYPASSRLS with the grants of "
        "docs/operations.md"
    )
    if superuser:
        return Check(
            "row-level-security", store, "warning",
            f"connected as superuser {role!r}: row-level security is bypassed", fix,
        )  # fmt: skip
    if bypass:
        return Check(
            "row-level-security", store, "warning",
            f"role {role!r} has BYPASSRLS: row-level security is bypassed", fix,
        )  # fmt: skip
    return Check(
        "row-level-security", store, "ok", f"role {role!r} is subject to row-level security"
    )


def _grants(conn: Connection, role: str, schema: str, store: str) -> list[Check]:
    missing: list[str] = []
    if not _one(conn, "SELECT has_schema_privilege(:s, 'USAGE')", s=schema)[0]:
        missing.append(grant_statement("USAGE", f"SCHEMA {schema}", role))
    rows = conn.execute(
        text(
            "SELECT c.relname, has_table_privilege(c.oid, 'SELECT'),"
            " has_table_privilege(c.oid, 'INSERT'), has_table_privilege(c.oid, 'UPDATE'),"
            " has_table_privilege(c.oid, 'DELETE')"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :s AND c.relname = ANY(:t) ORDER BY c.relname"
        ),
        {"s": schema, "t": [*APP_TABLES, "alembic_version"]},
    ).all()  # tables not there yet are the schema check's to report
    for name, *granted in rows:
        wanted = ("SELECT",) if name == "alembic_version" else TABLE_PRIVILEGES
        have = dict(zip(TABLE_PRIVILEGES, granted, strict=True))
        lacking = [p for p in wanted if not have[p]]
        if lacking:
            missing.append(grant_statement(", ".join(lacking), name, role))
    if missing:
        return [
            Check(
                "grants", store, "error",
                f"role {role!r} lacks privileges the library needs",
                "as the owner role run: " + " ".join(missing),
            )
        ]  # fmt: skip
    return [Check("grants", store, "ok", f"role {role!r} has every privilege the library needs")]


def _policies(conn: Connection, schema: str, store: str) -> Check:
    rows = conn.execute(
        text(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " EXISTS (SELECT 1 FROM pg_policies p WHERE p.tablename = c.relname"
            "         AND p.schemaname = :s AND p.policyname = 'dq_scope')"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :s AND c.relname = ANY(:tables)"
        ),
        {"s": schema, "tables": list(APP_TABLES)},
    ).all()
    weak = [f"{name} ({'no policy' if not policy else 'not forced' if not forced else 'disabled'})"
            for name, enabled, forced, policy in rows if not (enabled and forced and policy)]  # fmt: skip
    if weak:
        return Check(
            "row-level-security-policies", store, "error",
            "row-level security is not in force on " + ", ".join(weak), _UPGRADE_FIX,
        )  # fmt: skip
    return Check(
        "row-level-security-policies", store, "ok",
        f"policy dq_scope enabled and forced on {len(rows)} tables",
    )  # fmt: skip
