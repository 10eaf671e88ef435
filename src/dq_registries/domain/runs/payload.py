"""Turning ``finish(results=...)`` input into an inline document or a results-store object."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from dq_metadata.canonical import canonical_json, check_json, loads
from dq_metadata.errors import Problem, ValidationError

__all__ = ["JSON_CONTENT_TYPE", "ResultsInput", "Spooled", "classify_results"]

JSON_CONTENT_TYPE = "application/json"

ResultsInput = Mapping[str, Any] | bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]


@dataclass(frozen=True, slots=True)
class Spooled:
    """What to do with a results argument: keep ``inline`` or upload ``source``."""

    inline: dict[str, Any] | None = None
    source: BinaryIO | Iterable[bytes] | None = None
    content_type: str = JSON_CONTENT_TYPE


def classify_results(results: ResultsInput, inline_limit: int, content_type: str | None) -> Spooled:
    """Mappings whose canonical JSON fits ``inline_limit`` stay inline; bigger ones and
    all bytes/streams are uploaded (opaque bytes have no JSON form, and a stream's
    size is unknown until it has been read).

    Raises:
        ValidationError: not a mapping, bytes, binary file or iterable of bytes, or a
            mapping that is not JSON-serialisable.
    """
    if isinstance(results, Mapping):
        check_json(dict(results), "results", what="invalid results")  # the path starts at results
        body = canonical_json(dict(results))
        if len(body) <= inline_limit:
            inline: dict[str, Any] = loads(body)
            return Spooled(inline=inline)
        return Spooled(source=[body], content_type=content_type or JSON_CONTENT_TYPE)
    octets = content_type or "application/octet-stream"
    if isinstance(results, bytes | bytearray | memoryview):
        return Spooled(source=[bytes(results)], content_type=octets)
    if hasattr(results, "read"):
        return Spooled(source=results, content_type=octets)
    if isinstance(results, Iterable) and not isinstance(results, str):
        return Spooled(source=_only_bytes(results), content_type=octets)
    raise ValidationError(
        "invalid results",
        [Problem("results", "give a mapping, bytes, a binary file or an iterable of bytes")],
    )


def _only_bytes(chunks: Iterable[Any]) -> Iterable[bytes]:
    for i, chunk in enumerate(chunks):
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise ValidationError(
                "invalid results", [Problem(f"results[{i}]", "chunks must be bytes")]
            )
        yield bytes(chunk)
