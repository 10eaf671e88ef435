"""Backend URLs: parsed and checked once, never printed with their password.

A URL may carry credentials in two places: the user-info part
(``postgresql+psycopg://user:PASSWORD@host/db``) and query parameters that
SQLAlchemy passes to the driver (``?password=…``, ``?sslpassword=…``). Both are
masked by :func:`render_url`, and both are in :func:`url_secrets` (the literals
error translation scrubs from driver messages).
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dq_metadata.errors import MisconfiguredError
from dq_stores._redact import MASK, is_secret_name, redact

__all__ = ["parse_url", "render_url", "url_secrets"]


def parse_url(url: str) -> URL:
    """``url`` parsed and checked; ``MisconfiguredError`` (never quoting it) if unusable."""
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if authority.count("@") > 1:
        # drivers split at the first "@": the password's tail would become the host
        # name and be printed in every "failed to resolve host" error
        raise MisconfiguredError(
            "invalid SQL backend URL: '@' appears more than once before the host; "
            "percent-encode '@' in the user name or password as %40"
        )
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


def url_secrets(url: URL) -> tuple[str, ...]:
    """Every credential literal in ``url``: the password and secret query values."""
    found = [str(url.password)] if url.password else []
    for name, value in url.query.items():
        if is_secret_name(name):
            values = (value,) if isinstance(value, str) else tuple(value)
            found.extend(v for v in values if v)
    return tuple(found)


def render_url(url: URL) -> str:
    """``url`` as text with its password and credential query parameters masked (``***``)."""
    masked = {name: (MASK if is_secret_name(name) else value) for name, value in url.query.items()}
    text = url.set(query=masked).render_as_string(hide_password=True)
    return redact(text, url_secrets(url))
