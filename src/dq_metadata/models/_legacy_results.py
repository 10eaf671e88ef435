"""Old-style results references (before ADR 0012): a ``uri`` → the logical name.

Run documents written before logical references kept the object's location:

- ``memory://<tenant>/<env>/<run>/<name>`` and ``sql://<tenant>/<env>/<run>/<name>``
  (run and name percent-encoded);
- ``file://<root>/<tenant>/<env>/results/<run>/<name>`` (run and name in the
  storage-name encoding of ``dq_stores.keys.encode_key``);
- ``https://<account>/<container>/[<prefix>]<tenant>/<env>/_results/<run>/<name>``,
  possibly with a SAS query (``?se=…&sig=…``), same name encoding.

Those formats are frozen: this module reads them as they were written, so it keeps
its own decoder of the storage-name encoding rather than following future changes.
The location (root, account, container, SAS) is dropped: the configured store
resolves the logical name with its current settings.

A run id or name whose storage encoding was longer than 180 characters was stored
under its digest, ``_h`` + the sha256 hex of its UTF-8 bytes, and the ``uri``
carries only that digest: the original is not in the reference. Such a part is
returned as the digest itself with its ``*_digest`` flag set; the caller recovers
a run id from the run document, and keeps a name as a digest reference that the
results stores resolve (ADR 0012, "Long names").
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

__all__ = ["DIGEST_NAME", "LegacyName", "digest_of", "parse_legacy_uri", "upgrade"]


class LegacyName(NamedTuple):
    """The logical name read from an old ``uri``; a ``*_digest`` part is ``_h<sha256>``."""

    tenant: str
    environment: str
    run_id: str
    name: str
    run_digest: bool = False
    name_digest: bool = False


#: The digest form of a storage name: ``_h`` + sha256 hex of the original's UTF-8.
DIGEST_NAME = re.compile(r"_h[0-9a-f]{64}")

_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_STORAGE_NAME = re.compile(r"(?:[a-z0-9-]|_[0-9a-f]{2})+")


def _decode_storage_name(name: str) -> str | None:
    """Invert the storage-name encoding; ``None`` for digest (``_h…``) or bad names."""
    if not _STORAGE_NAME.fullmatch(name):
        return None
    raw = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "_":
            raw.append(int(name[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(name[i]))
            i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _scope(tenant: str, environment: str) -> bool:
    return all(_ID.fullmatch(part) and ".." not in part for part in (tenant, environment))


def parse_legacy_uri(uri: str) -> LegacyName | None:
    """The logical name behind an old-style results ``uri``, or ``None`` if unreadable."""
    parts = urlsplit(uri)
    if parts.scheme in ("memory", "sql"):
        segments = [parts.netloc, *parts.path.lstrip("/").split("/")]
        if len(segments) != 4:
            return None
        tenant, environment, run, obj = segments[:2] + [unquote(s) for s in segments[2:]]
        ok = run and obj and _scope(tenant, environment)
        return LegacyName(tenant, environment, run, obj) if ok else None
    if parts.scheme == "file":
        segments = unquote(parts.path).split("/")
        marker = "results"
    elif parts.scheme in ("http", "https"):
        segments = unquote(parts.path).split("/")
        marker = "_results"
    else:
        return None
    if len(segments) < 5 or segments[-3] != marker:
        return None
    tenant, environment = segments[-5], segments[-4]
    run_digest, name_digest = (bool(DIGEST_NAME.fullmatch(s)) for s in segments[-2:])
    run_id = segments[-2] if run_digest else _decode_storage_name(segments[-2])
    name = segments[-1] if name_digest else _decode_storage_name(segments[-1])
    if not run_id or not name or not _scope(tenant, environment):
        return None
    return LegacyName(tenant, environment, run_id, name, run_digest, name_digest)


def digest_of(key: str) -> str:
    """The digest storage name of ``key``: ``_h`` + sha256 hex of its UTF-8 bytes."""
    return "_h" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def upgrade(data: dict[str, Any], owner_run_id: object = None) -> dict[str, Any]:
    """``data`` (an old ``{"uri", "size", …}`` object) in the logical form.

    ``owner_run_id`` is the run id of the run document holding the reference: a run
    id stored as a digest is recovered from it when its digest matches.

    Raises:
        ValueError: the ``uri`` cannot be read (the message does not quote it).
    """
    uri = data["uri"]
    found = parse_legacy_uri(uri) if isinstance(uri, str) else None
    if found is None:
        raise ValueError(
            "uri: an old-style results reference this version cannot read "
            "(expected memory://, sql://, file:// or an Azure blob URL)"
        )
    run_id = found.run_id
    if found.run_digest:
        if not isinstance(owner_run_id, str) or digest_of(owner_run_id) != run_id:
            raise ValueError(
                "uri: an old-style results reference whose run id was stored as a digest "
                "names another run than the run holding it"
            )
        run_id = owner_run_id
    upgraded = {k: v for k, v in data.items() if k != "uri"}
    upgraded.update(
        tenant=found.tenant, environment=found.environment, run_id=run_id, name=found.name
    )
    if found.name_digest:
        upgraded["digest_name"] = True
    return upgraded
