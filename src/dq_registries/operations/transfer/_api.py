"""Export, import, migrate and verify: the Python API under ``dq export`` & co."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator, Sequence

from dq_metadata.errors import (
    ConflictError,
    IntegrityError,
    MisconfiguredError,
    NotFoundError,
    Problem,
    ValidationError,
)
from dq_metadata.scope import Scope
from dq_registries.operations.transfer._endpoint import Endpoint, select_scopes
from dq_registries.operations.transfer._events import (
    Event,
    HistoryEvent,
    ProgressFn,
    ResultEvent,
    TransferReport,
    archive_events,
    backend_events,
    compare_tallies,
    tally_endpoint,
)
from dq_registries.operations.transfer._results import normalize_body, result_refs
from dq_registries.operations.transfer._sink import Sink
from dq_stores.archive import ArchiveEnd, ArchiveHeader, ArchiveWriter, ResultMeta, read_archive

__all__ = ["export_archive", "import_archive", "migrate", "verify_archive"]

#: Kinds the typed stores write, counted to estimate a total for progress (ETA).
KNOWN_KINDS = (
    "contract",
    "contract_head",
    "job_definition",
    "action_profile",
    "job_run",
    "report",
    "usage_stamp",
)


def _estimate(endpoint: Endpoint, scopes: Sequence[Scope]) -> int:
    """Live documents of the known kinds: a lower bound of the keys to move."""
    return sum(endpoint.backend.count(s, k) for s in scopes for k in KNOWN_KINDS)


def _drive(
    events: Iterator[Event],
    report: TransferReport,
    progress: ProgressFn | None,
    total: int | None,
    on_history: Callable[[HistoryEvent], None],
    on_result: Callable[[ResultEvent], None],
) -> None:
    for event in events:
        if isinstance(event, HistoryEvent):
            on_history(event)
            report.keys += 1
            report.revisions += len(event.history)
            if progress is not None:
                progress(report.keys, total)
        else:
            on_result(event)


def export_archive(
    source: Endpoint,
    path: str | os.PathLike[str],
    *,
    tenant: str | None = None,
    environment: str | None = None,
    verify: bool = False,
    progress: ProgressFn | None = None,
) -> TransferReport:
    """Write every history and results object of the selected scopes to ``path``.

    ``verify``: read the archive back and compare its counts and digests, scope by
    scope, with the source as it is now (``report.differences``).

    Raises:
        MisconfiguredError: ``environment`` without ``tenant``; offloaded results
            without a source results store.
        IntegrityError: a stored revision or results object fails its hash; the
            partial archive is removed.
    """
    started = time.perf_counter()
    report = TransferReport("export")
    scopes = select_scopes(source.backend, tenant, environment)
    total = _estimate(source, scopes) if progress is not None else None
    with ArchiveWriter(path, normalize=normalize_body) as writer:
        writer.begin(scopes, source.label)

        def on_result(event: ResultEvent) -> None:
            ref = event.ref
            meta = ResultMeta(
                event.run_id,
                event.name,
                ref.sha256,
                ref.size,
                ref.content_type,
                {
                    "size": ref.size,
                    "sha256": ref.sha256,
                    "content_type": ref.content_type,
                },
            )
            writer.add_result(event.scope, meta, event.chunks)
            report.results_copied += 1

        _drive(
            backend_events(source, scopes),
            report,
            progress,
            total,
            lambda e: writer.add_history(e.scope, e.history),
            on_result,
        )
        manifest = writer.finish()
    report.scopes = manifest["scopes"]
    if verify:
        archived = verify_archive(path)
        report.differences += archived.differences
        now = tally_endpoint(source, scopes, report.differences)
        report.differences += compare_tallies(now, manifest["scopes"], ("source", "archive"))
        report.verified = not report.differences
    report.seconds = time.perf_counter() - started
    return report


class _ReferencedObjects:
    """Every results object a run references is in the archive, before the run, as
    the writer places it; otherwise the import would write a run whose results
    cannot be opened. Memory: one entry per results object of the current scope."""

    def __init__(self) -> None:
        self._scope: Scope | None = None
        self._objects: set[tuple[str, str, str, int]] = set()

    def _enter(self, scope: Scope) -> None:
        if scope != self._scope:
            self._scope, self._objects = scope, set()

    def result(self, event: ResultEvent) -> None:
        self._enter(event.scope)
        ref = event.ref
        self._objects.add((ref.run_id, ref.name, ref.sha256, ref.size))

    def history(self, event: HistoryEvent) -> None:
        self._enter(event.scope)
        for run_id, ref in result_refs(event.history):
            if (ref.run_id, ref.name, ref.sha256, ref.size) not in self._objects:
                raise IntegrityError(
                    f"run {run_id!r} in {event.scope} references results object "
                    f"{ref.name!r}, which the archive does not hold before it: the archive "
                    "is incomplete or was altered"
                )


def verify_archive(
    path: str | os.PathLike[str] | io.BufferedReader, *, progress: ProgressFn | None = None
) -> TransferReport:
    """Read the whole archive; compare what it holds with its manifest.

    ``report.differences`` lists every mismatch (counts, digests, the archive
    digest); ``report.verified`` is True when there is none.

    Raises:
        NotFoundError: no file at ``path``.
        ValidationError: not a dq archive or an unreadable version.
        IntegrityError: a damaged or truncated archive, or one lacking a results
            object a run references (before the run, where the writer puts it).
    """
    started = time.perf_counter()
    report = TransferReport("verify-archive")
    ends: list[ArchiveEnd] = []
    items = read_archive(path, normalize=normalize_body)
    next(items)  # the header
    referenced = _ReferencedObjects()
    _drive(
        archive_events(items, ends.append),
        report,
        progress,
        None,
        referenced.history,
        referenced.result,
    )
    end = ends[0]
    report.scopes = end.computed
    report.differences += end.problems()
    report.verified = not report.differences
    report.seconds = time.perf_counter() - started
    return report


def _one_mode(target: Endpoint, merge: bool, replace: bool) -> None:
    """Refuse contradictory modes, and ``replace`` into a backend that cannot, up front."""
    if replace and not target.backend.replaces_atomically:
        raise MisconfiguredError(
            "--replace needs a target that replaces histories atomically (memory, filesystem, "
            f"SQLite, PostgreSQL); {type(target.backend).__name__} does not. Nothing was written"
        )
    if merge and replace:
        raise ValidationError(
            "choose one way to write into a non-empty target",
            [Problem("replace", "--merge keeps what the target holds; --replace overwrites it")],
        )


def _check_empty(target: Endpoint, scopes: Sequence[Scope]) -> None:
    full = [s for s in scopes if next(iter(target.backend.iter_histories(s)), None) is not None]
    if full:
        names = ", ".join(str(s) for s in full)
        raise ConflictError(
            f"the target already holds documents in {names}; import refuses to mix histories. "
            "Use --merge to add what is missing (identical histories are skipped, differing "
            "ones reported as conflicts; nothing is overwritten), or --replace to replace "
            "the histories of the keys the archive holds by the archive's"
        )


def import_archive(
    target: Endpoint,
    path: str | os.PathLike[str],
    *,
    merge: bool = False,
    replace: bool = False,
    verify: bool = False,
    progress: ProgressFn | None = None,
) -> TransferReport:
    """Restore an archive into ``target``, history included.

    The archive is verified first (one extra read of the same open file, so a
    rename over ``path`` meanwhile changes nothing): a damaged archive writes
    nothing. A file rewritten in place between the two reads is reported in
    ``report.differences`` (what was written then came from the changed file). Without ``merge`` or ``replace`` every archived scope must be empty
    in the target. With ``merge``, keys the target holds identically are skipped
    and differing ones listed in ``report.conflicts``; nothing is overwritten.
    With ``replace``, every key the archive holds gets exactly the archive's
    history: whatever history the target had for that key (every revision and
    its index entries) is replaced, a batch of up to 500 keys atomically
    (``DocumentBackend.restore_many(..., replace=True)``); keys the target holds
    and the archive does not are left as they are. ``verify``: compare the
    target's counts and digests with the archive's manifest afterwards.

    Raises:
        ConflictError: neither ``merge`` nor ``replace`` and a target scope is not
            empty; nothing written.
        ValidationError: both ``merge`` and ``replace``; nothing written.
        MisconfiguredError: ``replace`` into a backend that cannot replace a
            history atomically (Azure Blob); nothing written.
        IntegrityError / ValidationError: a damaged or foreign archive; nothing written.
    """
    _one_mode(target, merge, replace)
    # One open file for both passes: a name moved to another file meanwhile (a sync
    # tool's or a download's rename) cannot change what the second pass reads.
    try:
        archive = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise NotFoundError(f"no archive at {os.fspath(path)!r}") from None
    with archive:
        return _import_opened(target, path, archive, merge, replace, verify, progress)


def _import_opened(
    target: Endpoint,
    path: str | os.PathLike[str],
    archive: io.BufferedReader,
    merge: bool,
    replace: bool,
    verify: bool,
    progress: ProgressFn | None,
) -> TransferReport:
    started = time.perf_counter()
    checked = verify_archive(archive)
    if checked.differences:
        checked.operation = "import"
        return checked
    report = TransferReport("import")
    items = read_archive(archive, normalize=normalize_body)
    header = next(items)
    assert isinstance(header, ArchiveHeader)
    if not merge and not replace:
        _check_empty(target, header.scopes)
    ends: list[ArchiveEnd] = []
    with Sink(target, report, replace=replace) as sink:
        _drive(
            archive_events(items, ends.append),
            report,
            progress,
            checked.keys,
            sink.history,
            sink.result,
        )
        sink.flush()
    report.scopes = ends[0].manifest["scopes"]
    if ends[0].computed != checked.scopes or ends[0].problems():
        report.differences.append(
            f"the archive changed while it was imported: {os.fspath(path)!r} no longer holds "
            "what its verifying pass read, and what this import wrote came from the changed "
            "file; import it again from a copy nobody writes to"
        )
    if verify:
        now = tally_endpoint(target, header.scopes, report.differences)
        report.differences += compare_tallies(report.scopes, now, ("archive", "target"))
        report.verified = not report.differences
    report.seconds = time.perf_counter() - started
    return report


def migrate(
    source: Endpoint,
    target: Endpoint,
    *,
    tenant: str | None = None,
    environment: str | None = None,
    replace: bool = False,
    verify: bool = False,
    progress: ProgressFn | None = None,
) -> TransferReport:
    """Copy the selected scopes from ``source`` to ``target``, streamed, no file between.

    Resumable and idempotent: run it again after an interruption (or twice) and
    it skips what the target already holds identically, finishing with the target
    an uninterrupted run would have produced; a key the target holds differently
    is a reported conflict, left as it is. ``replace``: such keys get the source's
    history instead, replaced atomically per batch as :func:`import_archive`
    does (``MisconfiguredError`` on an Azure Blob target, before any write). ``verify``: compare counts and digests of both sides afterwards.
    """
    _one_mode(target, False, replace)
    started = time.perf_counter()
    report = TransferReport("migrate")
    scopes = select_scopes(source.backend, tenant, environment)
    total = _estimate(source, scopes) if progress is not None else None
    with Sink(target, report, replace=replace) as sink:
        _drive(backend_events(source, scopes), report, progress, total, sink.history, sink.result)
        sink.flush()
    if verify:
        left = tally_endpoint(source, scopes, report.differences)
        right = tally_endpoint(target, scopes, report.differences)
        report.scopes = left
        report.differences += compare_tallies(left, right, ("source", "target"))
        report.verified = not report.differences
    report.seconds = time.perf_counter() - started
    return report
