"""Prove a whole store: ``verify(backend, ...)`` walks scopes and yields problems.

    from dq_stores.verify import verify, VerifyCounts
    counts = VerifyCounts()
    for problem in verify(backend, tenant="acme", results=results_store, counts=counts):
        print(problem)
    print(counts.documents, counts.problems)

Each scope is checked by the backend's :meth:`~dq_stores.backend.DocumentBackend.verify_scope`
hook (records, identity, history chain, head vs. newest revision, index vs.
documents — whatever the backend can check; the port's generic walk otherwise),
then every job run's results object is streamed back through the results store,
which checks its size and sha256. Streaming: memory stays bounded by one
document (and one results chunk) whatever the store's size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

from dq_metadata.errors import DQError, NotFoundError
from dq_metadata.models.job_run import ResultObject
from dq_metadata.scope import Scope, validate_id
from dq_stores.backend import RESERVED_TENANT, DocumentBackend
from dq_stores.integrity import IntegrityProblem, ProblemCode, VerifyCounts
from dq_stores.results import ResultRef, ResultsStore

__all__ = [
    "IntegrityProblem",
    "ProblemCode",
    "VerifyCounts",
    "has_scope",
    "missing_scope",
    "scopes_of",
    "verify",
]

_RUN_KIND = "job_run"


def has_scope(
    backend: DocumentBackend, scope: Scope | None = None, tenant: str | None = None
) -> bool:
    """Whether ``backend`` holds (or held) documents in ``scope`` / of ``tenant``.

    ``True`` for the whole store (neither given), even an empty one.

    Raises:
        ValidationError: an invalid tenant id.
    """
    if scope is not None:
        return scope.environment in backend.list_environments(scope.tenant) or any(
            s == scope for s in backend.iter_index_scopes()
        )
    if tenant is not None:
        return bool(_environments(backend, validate_id(tenant, "tenant")))
    return True


def _environments(backend: DocumentBackend, tenant: str) -> list[str]:
    """``tenant``'s environments with documents, or with index data only (stray rows)."""
    stray = {s.environment for s in backend.iter_index_scopes() if s.tenant == tenant}
    return sorted(set(backend.list_environments(tenant)) | stray)


def _whole_store(backend: DocumentBackend) -> Iterator[Scope]:
    """Every scope with documents, then every scope with index data but none."""
    seen: set[Scope] = set()
    for scope in backend.iter_scopes():
        seen.add(scope)
        yield scope
    stray = backend.iter_index_scopes()
    yield from (s for s in stray if s not in seen and s.tenant != RESERVED_TENANT)


def missing_scope(
    backends: Iterable[DocumentBackend], scope: Scope | None = None, tenant: str | None = None
) -> NotFoundError:
    """The error for a ``scope`` / ``tenant`` none of ``backends`` holds, naming what exists."""
    if scope is not None:
        known = sorted({e for b in backends for e in b.list_environments(scope.tenant)})
        if known:
            return NotFoundError(
                f"scope {scope} does not exist: tenant {scope.tenant!r} has the "
                f"environment(s) {', '.join(known)}"
            )
        return NotFoundError(f"scope {scope} does not exist: no tenant {scope.tenant!r}")
    return NotFoundError(f"tenant {tenant!r} does not exist (it holds no documents)")


def scopes_of(
    backend: DocumentBackend, scope: Scope | None = None, tenant: str | None = None
) -> Iterable[Scope]:
    """The scopes to walk: ``scope``; else every environment of ``tenant``; else all.

    Raises:
        NotFoundError: ``scope`` or ``tenant`` holds no documents in ``backend`` (a
            typo must not verify as a clean, empty scope).
    """
    if scope is not None:
        if tenant is not None:
            raise ValueError("give scope or tenant, not both")
        if not has_scope(backend, scope):
            raise missing_scope([backend], scope)
        return [scope]
    if tenant is not None:
        envs = _environments(backend, validate_id(tenant, "tenant"))
        if not envs:
            raise missing_scope([backend], tenant=tenant)
        return [Scope(tenant, env) for env in envs]
    return _whole_store(backend)


def verify(
    backend: DocumentBackend,
    scope: Scope | None = None,
    tenant: str | None = None,
    results: ResultsStore | None = None,
    *,
    counts: VerifyCounts | None = None,
    repair_index: bool = False,
    on_scope: Callable[[Scope], None] | None = None,
) -> Iterator[IntegrityProblem]:
    """Yield every problem in one scope, one tenant's scopes, or the whole store.

    ``counts`` (optional) is updated as the walk goes. ``repair_index=True``
    rebuilds a scope's derived index from its documents after its check found an
    ``index`` problem (documents are never touched) — or, on the filesystem,
    superseded revision files that are not sealed (``counts.unsealed``), which the
    rebuild seals (a ``chmod``); those scopes are listed in ``counts.repaired``. A
    scope whose check also found a damaged record (``record``) is not rebuilt but
    listed in ``counts.not_repaired``, and so is one with a rolled-back head
    (``head``): a rebuilt index would leave the record out, and queries, counts and
    exports that now raise ``IntegrityError`` on it would skip it silently. ``on_scope`` is called before each scope (progress).

    Raises:
        ValueError: both ``scope`` and ``tenant``.
        NotFoundError: ``scope`` or ``tenant`` holds no documents (before yielding).
        ValidationError: an invalid tenant id.
        StoreUnavailableError: the backend cannot be reached.
    """
    counts = VerifyCounts() if counts is None else counts
    for current in scopes_of(backend, scope, tenant):
        if on_scope is not None:
            on_scope(current)
        counts.scopes += 1
        index_broken = damaged = False
        unsealed = counts.unsealed
        for problem in backend.verify_scope(current, counts):
            counts.problems += 1
            index_broken |= problem.code == "index"
            damaged |= problem.code in ("record", "head")  # damaged or rolled back
            yield problem
        index_broken |= counts.unsealed > unsealed  # the filesystem's repair seals them
        if index_broken and repair_index:
            if damaged:  # a rebuilt index would drop them: reads would stop raising
                counts.not_repaired.append(current)
            elif backend.repair_index(current):
                counts.repaired.append(current)
        if results is not None:
            for problem in _verify_results(backend, current, results, counts):
                counts.problems += 1
                yield problem


class _UnreadableRef(Exception):
    """A run's ``result_object`` is there but does not validate."""


def _result_ref(body: bytes) -> ResultRef | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None  # a damaged record: the scope check reports it
    try:
        # the logical reference, or one written before ADR 0012 (read into it)
        obj = ResultObject.of_run(data)
        return None if obj is None else ResultRef.of(obj)
    except (ValueError, KeyError, TypeError, AttributeError, DQError) as exc:
        raise _UnreadableRef from exc


def _verify_results(
    backend: DocumentBackend, scope: Scope, results: ResultsStore, counts: VerifyCounts
) -> Iterator[IntegrityProblem]:
    """Stream every run's results object back; the store checks size and sha256."""
    try:
        for run in backend.iter_documents(scope, _RUN_KIND):
            try:
                ref = _result_ref(run.body)
            except _UnreadableRef:
                message = "its result_object cannot be read: its results are not checked"
                yield IntegrityProblem(scope, "results", message, _RUN_KIND, run.key)
                continue
            if ref is None:
                continue
            counts.results += 1
            try:
                for _chunk in results.open(scope, ref):
                    pass
            except DQError as exc:
                yield IntegrityProblem(scope, "results", str(exc), _RUN_KIND, run.key)
    except DQError as exc:
        yield IntegrityProblem(scope, "unreadable", f"job runs: {exc}", _RUN_KIND)
