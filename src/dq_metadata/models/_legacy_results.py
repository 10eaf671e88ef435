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
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["LegacyName", "parse_legacy_uri"]

LegacyName = tuple[str, str, str, str]  # tenant, environment, run id, name

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
        return (
            (tenant, environment, run, obj) if run and obj and _scope(tenant, environment) else None
        )
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
    run_id, name = _decode_storage_name(segments[-2]), _decode_storage_name(segments[-1])
    if not run_id or not name or not _scope(tenant, environment):
        return None
    return (tenant, environment, run_id, name)
