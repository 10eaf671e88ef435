"""Results references inside job-run bodies: find them, relink them, normalize them.

A run whose results were offloaded keeps ``result_object`` (``uri``, ``size``,
``sha256``, ``content_type``) in its body. Moving the run moves the object too:
the copy in the target's results store gets a reference of its own, and the
run's revisions are rewritten to point at it. Verification compares bodies with
the reference's location blanked (size, sha256 and content type still count),
so a moved run and its source agree exactly when the results are the same bytes.

This module is the one place that knows where a results reference sits in a
document; with location-free (logical) references relinking becomes a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

from dq_metadata.canonical import canonical_json, content_hash
from dq_stores.documents import StoredDocument
from dq_stores.results import ResultRef

__all__ = ["RUN_KIND", "normalize_body", "relink", "result_name", "result_refs"]

RUN_KIND = "job_run"
_FIELD = "result_object"


def _result_object(kind: str, body: bytes) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if kind != RUN_KIND or b'"result_object":{' not in body:
        return None
    data = json.loads(body)
    obj = data.get(_FIELD)
    return (data, obj) if isinstance(obj, dict) and "uri" in obj else None


def result_refs(history: Sequence[StoredDocument]) -> list[tuple[str, ResultRef]]:
    """Distinct ``(run_id, ref)`` of the results objects a run's revisions reference."""
    out: dict[str, tuple[str, ResultRef]] = {}
    for doc in history:
        found = None if doc.deleted else _result_object(doc.kind, doc.body)
        if found is None:
            continue
        data, obj = found
        ref = ResultRef(
            str(obj["uri"]),
            int(obj["size"]),
            str(obj["sha256"]),
            str(obj.get("content_type", "application/octet-stream")),
        )
        out.setdefault(ref.uri, (str(data.get("run_id", doc.key)), ref))
    return list(out.values())


def result_name(ref: ResultRef) -> str:
    """The name the copy of ``ref`` gets in the target store (from its location)."""
    path = urlsplit(ref.uri).path or ref.uri
    return unquote(path.rstrip("/").rsplit("/", 1)[-1]) or ref.sha256


def relink(history: list[StoredDocument], links: Mapping[str, ResultRef]) -> list[StoredDocument]:
    """``history`` with each results reference replaced by its copy's (from ``links``)."""
    if not links:
        return history
    out = []
    for doc in history:
        found = None if doc.deleted else _result_object(doc.kind, doc.body)
        new = links.get(str(found[1]["uri"])) if found is not None else None
        if found is None or new is None:
            out.append(doc)
            continue
        data, obj = found
        data[_FIELD] = {**obj, "uri": new.uri}
        body = canonical_json(data)
        out.append(replace(doc, body=body, sha256=content_hash(body)))
    return out


def normalize_body(kind: str, body: bytes) -> bytes:
    """``body`` as it counts for verification: a results reference without its location."""
    found = _result_object(kind, body)
    if found is None:
        return body
    data, obj = found
    data[_FIELD] = {**obj, "uri": ""}
    return canonical_json(data)
