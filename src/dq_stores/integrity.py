"""What the verifier reports, and the check any backend can run through the port.

Kept apart from :mod:`dq_stores.verify` so that ``backend.py`` can name these
types for its optional hook without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from dq_metadata.canonical import content_hash
from dq_metadata.errors import DQError, NotFoundError
from dq_metadata.scope import Scope

if TYPE_CHECKING:
    from dq_stores.backend import DocumentBackend
    from dq_stores.documents import StoredDocument

__all__ = ["IntegrityProblem", "ProblemCode", "VerifyCounts", "verify_through_port"]

#: ``record``: a stored record fails its hash, format or identity check;
#: ``history``: a revision is missing, out of order or not linked to its predecessor;
#: ``head``: the head is not the newest revision (rollback, removed head);
#: ``index``: derived index data disagrees with the documents;
#: ``results``: a results object is missing or fails its size / sha256;
#: ``unreadable``: the check itself could not read something.
ProblemCode = Literal["record", "history", "head", "index", "results", "unreadable"]


@dataclass(frozen=True, slots=True)
class IntegrityProblem:
    """One thing found wrong. ``kind``/``key`` are ``None`` when not about one document."""

    scope: Scope
    code: ProblemCode
    message: str
    kind: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = f"{self.scope}"
        if self.kind is not None:
            where += f" {self.kind}"
        if self.key is not None:
            where += f" {self.key!r}"
        return f"{where}: [{self.code}] {self.message}"

    def to_json(self) -> dict[str, str | None]:
        return {
            "tenant": self.scope.tenant,
            "environment": self.scope.environment,
            "kind": self.kind,
            "key": self.key,
            "code": self.code,
            "message": self.message,
        }


@dataclass(slots=True)
class VerifyCounts:
    """Running totals, updated while the verifier streams (read them at any time)."""

    scopes: int = 0
    documents: int = 0
    revisions: int = 0
    results: int = 0
    legacy_records: int = 0  # format-1 filesystem records: identity bound to kind/key only
    #: uncommitted revision files an interrupted write left (a power loss lost its
    #: note): not problems — never part of history, replaced by the key's next write
    interrupted: int = 0
    #: superseded filesystem revision files that are not sealed (written before
    #: seals, or a writer stopped between its head move and its seal): not problems;
    #: ``repair_index`` seals them
    unsealed: int = 0
    #: SQL revision rows written before the record-hash chain (migration 0005): not
    #: problems — their hash is ``NULL``; ``--repair-index`` never computes one
    unchained: int = 0
    problems: int = 0
    repaired: list[Scope] = field(default_factory=list)
    #: scopes whose index ``repair_index`` left alone: they hold damaged records,
    #: which a rebuilt index would leave out (queries and exports would skip them)
    not_repaired: list[Scope] = field(default_factory=list)


def verify_through_port(
    backend: DocumentBackend, scope: Scope, counts: VerifyCounts
) -> Iterator[IntegrityProblem]:
    """The checks the port alone allows: every listed document's body and its full
    history verify, each body matches its sha256, the history ends at the document and
    is numbered 1..N (from the oldest kept revision after ``prune_history``). Backends with derived
    data of their own override :meth:`DocumentBackend.verify_scope` to do more."""
    listed = backend.iter_documents(scope)
    while True:
        try:
            doc = next(listed)
        except StopIteration:
            return
        except DQError as exc:
            yield IntegrityProblem(scope, "unreadable", f"listing stopped: {exc}")
            return
        counts.documents += 1
        if not doc.deleted and content_hash(doc.body) != doc.sha256:
            # the document as reads return it (SQL keeps its own copy in the head row)
            yield IntegrityProblem(
                scope, "record", "the document's body fails its sha256", doc.kind, doc.key
            )
        try:
            history = backend.history(scope, doc.kind, doc.key)
        except NotFoundError as exc:
            # removed since the listing (or removed and written again): read it again
            missing = _reread(backend, scope, doc, ("history", str(exc)))
            if missing is not None:
                yield IntegrityProblem(scope, missing[0], missing[1], doc.kind, doc.key)
            continue
        except DQError as exc:
            yield IntegrityProblem(scope, "history", str(exc), doc.kind, doc.key)
            continue
        counts.revisions += len(history)
        for revision in history:
            if not revision.deleted and content_hash(revision.body) != revision.sha256:
                yield IntegrityProblem(
                    scope,
                    "record",
                    f"revision {revision.revision}: the body fails its sha256",
                    doc.kind,
                    doc.key,
                )
        try:
            first = _first_kept(backend, scope, doc.kind, doc.key)
        except DQError as exc:  # a malformed marker: the key's problem, not the walk's end
            yield IntegrityProblem(scope, "history", str(exc), doc.kind, doc.key)
            continue
        found = _numbering(doc, history, first)
        if found is not None:
            # A write or prune between the listing (a backend may list ahead, in
            # batches) and the reads above is not damage: read the key again until one
            # read is of one moment (the head the same before and after); a
            # rolled-back head or a missing revision reads the same again.
            found = _reread(backend, scope, doc, found)
        if found is not None:
            yield IntegrityProblem(scope, found[0], found[1], doc.kind, doc.key)


#: Reads of a key whose numbering or head looks wrong, looking for one made at one
#: moment (a store being written while it is verified).
_RECHECKS = 8


def _numbering(
    doc: StoredDocument, history: list[StoredDocument], first: int
) -> tuple[ProblemCode, str] | None:
    if first > doc.revision:
        # ``prune_history`` never prunes the head (a marker at or past it: tampered,
        # or restored from a tampered archive — a history from revision 1 is not
        # checked against the marker restored before it)
        return "history", (
            f"the pruned-history marker records revisions 1..{first - 1} as pruned, "
            f"the head is revision {doc.revision}"
        )
    numbers = [d.revision for d in history]
    # revisions before ``first`` may still be there: a prune writes its marker first
    # and removes them after (interrupted, or not yet: ADR 0014); none may be missing
    start = min(numbers[0], first) if numbers else first
    if numbers != list(range(start, start + len(history))):
        return "history", f"revisions are {numbers}, not {first}..N"
    if history[-1].revision != doc.revision or history[-1].sha256 != doc.sha256:
        return "head", "the document is not its newest revision"
    return None


def _reread(
    backend: DocumentBackend, scope: Scope, doc: StoredDocument, found: tuple[ProblemCode, str]
) -> tuple[ProblemCode, str] | None:
    """What a read of ``doc``'s key made at one moment shows: its head, its history,
    the oldest kept revision, and its head again — equal heads mean no write came in
    between (every write moves the head; a prune writes its marker before it removes
    anything, so a history read before the marker shows at most extra revisions); a
    key absent before and after is read once more, its history ending at the same
    tombstone; a key gone (head and history) is not reported.
    A key written between every pair of reads is reported with what the first read
    showed, saying so."""
    missing = 0  # re-reads whose history was not found while the key had a head
    for _ in range(_RECHECKS):
        try:
            before = _head(backend, scope, doc)
            history = backend.history(scope, doc.kind, doc.key)
            first = _first_kept(backend, scope, doc.kind, doc.key)
            after = _head(backend, scope, doc)
            if before != after:
                continue  # written meanwhile: read again
            if after is None:  # deleted: the head is its newest tombstone
                if not history or not history[-1].deleted:
                    return found
                # absent before and after is no proof of no write between (put,
                # delete again, prune): the history must end at that tombstone still
                if backend.history(scope, doc.kind, doc.key)[-1] != history[-1]:
                    continue
                after = history[-1]
        except NotFoundError:
            # a replace from revision 1 removes its key's pruned-history marker,
            # history and all (and a prune may write one again): gone is no damage
            if _gone(backend, scope, doc):
                return None
            missing += 1
            continue
        except DQError:
            return found  # (the first reads succeeded: report what they showed)
        return _numbering(after, history, first)
    if missing == _RECHECKS:
        return found  # a head without a history, every time
    return found[0], f"{found[1]} (the key was written throughout {_RECHECKS} re-reads)"


def _gone(backend: DocumentBackend, scope: Scope, doc: StoredDocument) -> bool:
    """Whether a listed key whose history read "not found" has no head either now: it
    was removed since the listing (a replace from revision 1 removes its key's
    pruned-history marker, history and all — the only key that can go)."""
    try:
        return _head(backend, scope, doc) is None
    except DQError:
        return False


def _head(backend: DocumentBackend, scope: Scope, doc: StoredDocument) -> StoredDocument | None:
    try:
        return backend.get(scope, doc.kind, doc.key)
    except NotFoundError:
        return None


def _first_kept(backend: DocumentBackend, scope: Scope, kind: str, key: str) -> int:
    """The oldest revision ``prune_history`` left (1 when nothing was pruned)."""
    prefix = backend.pruned_prefix(scope, kind, key)
    return 1 if prefix is None else prefix.pruned_through + 1
