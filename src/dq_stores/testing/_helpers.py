"""Small builders shared by the conformance classes."""

from __future__ import annotations

from typing import Any

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores.documents import DocumentWrite, IndexEntry

KIND = "widget"
SCOPE = Scope("acme", "prod")
OTHER_SCOPES = (Scope("acme", "dev"), Scope("globex", "prod"), Scope("globex", "dev"))

#: Keys from real documents that must all be stored intact and never collide.
HOSTILE_KEYS = (
    "..",
    ".",
    "../x",
    "../../etc/passwd",
    "/",
    "/abs",
    "a/b",
    "a%2Fb",
    "a%2fb",
    "%2e%2e",
    "%2E%2E%2Fx",
    "\\",
    "a\\b",
    "..\\..\\x",
    "Air_Quality",
    "air_quality",
    "AIR_QUALITY",
    "A",
    "a",
    "Zürich",
    "zürich",
    "日本語",
    "emoji-😀",
    "with space",
    " lead",
    "trail ",
    "tab\there",
    "new\nline",
    "CON",
    "nul",
    "_41",
    "_h00",
    "-dash",
    "x" * 300,
    "X" * 300,
    "é" * 500,
    "k" * 1024,
    "53581432-6c55-4ba2-a65f-72344a91553a",
    "orders@1.0.0",
)

#: Tenant / environment / kind values that must be refused before any I/O.
HOSTILE_IDS = (
    "",
    "..",
    ".",
    "a..b",
    "../x",
    "a/b",
    "a\\b",
    "a\x00b",
    "%2e%2e",
    "Upper",
    "ACME",
    "x" * 64,
    "zürich",
    "-lead",
    "_lead",
    ".hidden",
    " space",
    "tab\t",
)


def doc(
    key: str,
    value: Any = None,
    *,
    sort_key: str = "",
    **fields: str | tuple[str, ...],
) -> DocumentWrite:
    """A write whose body is ``{"key": key, "value": value}``."""
    body = canonical_json({"key": key, "value": value})
    index = {name: (v,) if isinstance(v, str) else tuple(v) for name, v in fields.items()}
    return DocumentWrite(key, body, content_hash(body), IndexEntry(index, sort_key))


def value_of(stored_body: bytes) -> Any:
    import json

    return json.loads(stored_body)["value"]
