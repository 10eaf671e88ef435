"""Results references inside job-run bodies: find them, relink them, normalize them.

A run whose results were offloaded keeps ``result_object`` in its body: a logical
name (tenant, environment, run id, name, size, sha256, content type — ADR 0012),
or, in documents written before ADR 0012, a ``uri``. Moving the run moves the
object too: the copy is uploaded to the target's results store under the same
logical name, and revisions that still carry an old-style ``uri`` are rewritten
to the logical form of the copy (a location from the source machine means
nothing on the target). Verification compares bodies with every reference in
its logical form, so a moved run and its source agree exactly when the results
are the same bytes under the same name.

This module is the one place that knows where a results reference sits in a
document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pydantic

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import ValidationError
from dq_metadata.models.base import problems_from
from dq_metadata.models.job_run import ResultObject
from dq_stores.documents import StoredDocument
from dq_stores.results import ResultRef

__all__ = ["RUN_KIND", "normalize_body", "relink", "result_name", "result_refs"]

RUN_KIND = "job_run"
_FIELD = "result_object"


def _result_object(kind: str, body: bytes) -> tuple[dict[str, Any], ResultRef] | None:
    """The parsed body and its results reference (logical), if it has one."""
    if kind != RUN_KIND or b'"result_object":{' not in body:
        return None
    data = json.loads(body)
    obj = data.get(_FIELD)
    if not isinstance(obj, dict):
        return None
    try:
        found = ResultObject.of_run(data)
        assert found is not None
        return data, ResultRef.of(found)
    except pydantic.ValidationError as exc:
        raise ValidationError(
            f"run {data.get('run_id')!r} holds a results reference that cannot be read",
            problems_from(exc),
        ) from None


def result_refs(history: Sequence[StoredDocument]) -> list[tuple[str, ResultRef]]:
    """Distinct ``(run_id, ref)`` of the results objects a run's revisions reference."""
    out: dict[tuple[str, str], tuple[str, ResultRef]] = {}
    for doc in history:
        found = None if doc.deleted else _result_object(doc.kind, doc.body)
        if found is None:
            continue
        ref = found[1]
        out.setdefault((ref.run_id, ref.name), (ref.run_id, ref))
    return list(out.values())


def result_name(ref: ResultRef) -> str:
    """The name the copy of ``ref`` gets in the target store: its own logical name."""
    return ref.name


def _logical(data: dict[str, Any], ref: ResultRef) -> bytes:
    data[_FIELD] = ref.to_object().model_dump(mode="json")
    return canonical_json(data)


def relink(
    history: list[StoredDocument], links: Mapping[tuple[str, str], ResultRef]
) -> list[StoredDocument]:
    """``history`` with each results reference in the logical form of its copy.

    ``links`` maps ``(run_id, name)`` to the copy's reference. Revisions already in
    that form are kept byte for byte.
    """
    if not links:
        return history
    out = []
    for doc in history:
        found = None if doc.deleted else _result_object(doc.kind, doc.body)
        new = links.get((found[1].run_id, found[1].name)) if found is not None else None
        if found is None or new is None:
            out.append(doc)
            continue
        body = _logical(found[0], new)
        out.append(doc if body == doc.body else replace(doc, body=body, sha256=content_hash(body)))
    return out


def normalize_body(kind: str, body: bytes) -> bytes:
    """``body`` as it counts for verification: its results reference in logical form.

    A ``digest_name`` reference (an old ``uri`` holding a long name's digest) is
    copied under the digest as its name, so it counts as that plain name.
    """
    found = _result_object(kind, body)
    if found is None:
        return body
    data, ref = found
    return _logical(data, replace(ref, digest_name=False))
