"""Backend URLs: parsed and checked once, never printed with their password."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dq_metadata.errors import MisconfiguredError

__all__ = ["parse_url"]


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError) as exc:
        raise MisconfiguredError(
            "invalid SQL backend URL (expected postgresql+psycopg:// or sqlite:///path)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.get_driver_name() not in {"psycopg", "postgresql", ""}:
            raise MisconfiguredError(
                "PostgreSQL URLs must use the psycopg 3 driver: postgresql+psycopg://"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise MisconfiguredError("SQLite needs a file path (sqlite:///path/to/db.sqlite)")
        return parsed
    raise MisconfiguredError(
        f"unsupported SQL backend {backend!r}: use postgresql+psycopg or sqlite"
    )
