"""Canonical JSON: the one byte form every backend stores and hashes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dq_metadata.errors import ValidationError

__all__ = ["canonical_json", "content_hash", "loads"]


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON: sorted keys, compact, UTF-8, no NaN/Infinity.

    Equal values give equal bytes, so the sha256 of the result identifies content.

    Raises:
        ValidationError: the value is not JSON-serialisable or holds NaN/Infinity.
    """
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"document is not canonical-JSON serialisable: {exc}") from exc
    return text.encode("utf-8")


def content_hash(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def loads(data: bytes) -> Any:
    """Decode JSON bytes (the inverse of :func:`canonical_json`)."""
    return json.loads(data)
