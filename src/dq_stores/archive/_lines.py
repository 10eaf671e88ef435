"""One key's history as one JSON Lines line, and the digests that prove a scope.

A line (see ``docs/archive-format.md``)::

    {"kind": "...", "key": "...", "revisions": [
        {"revision": 1, "written_at": "2026-01-02T03:04:05.123456+00:00",
         "deleted": false, "sha256": "…", "sort_key": "…",
         "fields": {"status": ["open"]}, "body": "<the canonical JSON text>"}]}

The body is kept as the exact stored text (a JSON string), so bytes round-trip
exactly; ``jq '.revisions[].body | fromjson'`` shows it as JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dq_metadata.errors import IntegrityError, ValidationError
from dq_metadata.scope import Scope
from dq_stores.backend import check_history
from dq_stores.documents import IndexEntry, StoredDocument

__all__ = [
    "BodyNormalizer",
    "ScopeTally",
    "decode_line",
    "encode_line",
    "history_digest",
    "loads_strict",
]

#: ``(kind, body) -> body`` as it should count for verification (``None``: as stored).
BodyNormalizer = Callable[[str, bytes], bytes]

_MOD = 1 << 256
_DUMP = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def _revision(doc: StoredDocument) -> dict[str, Any]:
    return {
        "revision": doc.revision,
        "written_at": doc.written_at.astimezone(UTC).isoformat(),
        "deleted": doc.deleted,
        "sha256": doc.sha256,
        "sort_key": doc.index.sort_key,
        "fields": {name: list(values) for name, values in sorted(doc.index.fields.items())},
        "body": doc.body.decode("utf-8"),
    }


def encode_line(history: Sequence[StoredDocument]) -> bytes:
    """The archive line of one key's history (oldest first), with a trailing newline."""
    head = history[-1]
    obj = {"kind": head.kind, "key": head.key, "revisions": [_revision(d) for d in history]}
    return _DUMP(obj).encode("utf-8") + b"\n"


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose names are distinct (readers disagree on which of two counts)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"the JSON name {name!r} appears twice in one object")
            seen.add(name)
    return obj


_STRICT = json.JSONDecoder(object_pairs_hook=_unique_names)


def loads_strict(data: bytes | str) -> Any:
    """``json.loads`` of UTF-8 ``data``, refusing an object with a name twice.

    Raises ``ValueError`` (``UnicodeDecodeError`` and ``JSONDecodeError`` are ones).
    """
    return _STRICT.decode(data.decode("utf-8") if isinstance(data, bytes) else data)


def decode_line(
    line: bytes, scope: Scope, where: str, *, validate: bool = True
) -> list[StoredDocument]:
    """Parse one archive line back into the history it holds (in ``scope``).

    ``validate``: also check the history as ``DocumentBackend.restore_many`` would
    (kind, key, revisions ``k..n`` without gaps, timezone-aware times, bodies
    matching their sha256, valid index entries), so an archive a target would
    refuse part-way is refused while it is verified, before anything is written.

    Raises:
        IntegrityError: the line is not a history line of this format (a JSON
            object naming a member twice included), or (with
            ``validate``) not a history a store accepts (``where`` says which
            member and line).
    """
    try:
        obj = loads_strict(line)
        kind, key = str(obj["kind"]), str(obj["key"])
        out = []
        for rev in obj["revisions"]:
            index = IndexEntry(
                {str(k): tuple(str(v) for v in vs) for k, vs in rev["fields"].items()},
                str(rev["sort_key"]),
            )
            out.append(
                StoredDocument(
                    scope,
                    kind,
                    key,
                    int(rev["revision"]),
                    str(rev["body"]).encode("utf-8"),
                    str(rev["sha256"]),
                    index,
                    datetime.fromisoformat(str(rev["written_at"])),
                    bool(rev["deleted"]),
                )
            )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"{where}: not a document history line ({exc})") from exc
    if not out:
        raise IntegrityError(f"{where}: a history without revisions")
    if validate:
        try:
            check_history(scope, kind, key, out)
        except ValidationError as exc:
            raise IntegrityError(f"{where}: not a valid history: {exc}") from exc
    return out


def history_digest(history: Sequence[StoredDocument], normalize: BodyNormalizer | None) -> int:
    """sha256 (as an int) of one key's history as it counts for verification.

    Covers kind, key and, per revision, its number, time, tombstone flag, sort key,
    indexed fields and body (normalized: a results reference may name another store).
    """
    revisions = []
    for doc in history:
        body = doc.body if normalize is None or doc.deleted else normalize(doc.kind, doc.body)
        entry = _revision(doc)
        entry["body"] = body.decode("utf-8")
        del entry["sha256"]  # a function of the body
        revisions.append(entry)
    head = history[-1]
    text = _DUMP({"kind": head.kind, "key": head.key, "revisions": revisions})
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")


@dataclass
class ScopeTally:
    """Counts and an order-independent digest of one scope's histories and results.

    The digest is the sum modulo 2**256 of each key's :func:`history_digest`, so
    two stores that list keys in different orders agree exactly when they hold the
    same histories (a multiset hash).
    """

    keys: int = 0
    revisions: int = 0
    deleted_keys: int = 0
    results: int = 0
    result_bytes: int = 0
    kinds: dict[str, list[int]] = field(default_factory=dict)  # kind -> [keys, revisions]
    _digest: int = 0
    _results_digest: int = 0

    def add_history(
        self, history: Sequence[StoredDocument], normalize: BodyNormalizer | None
    ) -> None:
        self.keys += 1
        self.revisions += len(history)
        self.deleted_keys += history[-1].deleted
        counts = self.kinds.setdefault(history[-1].kind, [0, 0])
        counts[0] += 1
        counts[1] += len(history)
        self._digest = (self._digest + history_digest(history, normalize)) % _MOD

    def add_result(self, sha256: str, size: int, content_type: str) -> None:
        self.results += 1
        self.result_bytes += size
        text = _DUMP([sha256, size, content_type]).encode("utf-8")
        value = int.from_bytes(hashlib.sha256(text).digest(), "big")
        self._results_digest = (self._results_digest + value) % _MOD

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "revisions": self.revisions,
            "deleted_keys": self.deleted_keys,
            "kinds": {k: {"keys": v[0], "revisions": v[1]} for k, v in sorted(self.kinds.items())},
            "results": self.results,
            "result_bytes": self.result_bytes,
            "digest": f"{self._digest:064x}",
            "results_digest": f"{self._results_digest:064x}",
        }
