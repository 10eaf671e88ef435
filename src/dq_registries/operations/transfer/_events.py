"""What flows from a source to a target: histories and results objects, in order."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dq_metadata.errors import DQError, MisconfiguredError
from dq_metadata.scope import Scope
from dq_registries.operations.transfer._endpoint import Endpoint
from dq_registries.operations.transfer._results import normalize_body, result_name, result_refs
from dq_stores.archive import ArchiveEnd, ArchiveHistory, ArchiveItem, ArchiveResult, ScopeTally
from dq_stores.documents import StoredDocument
from dq_stores.results import ResultRef
from dq_stores.retention import PRUNED_KIND

__all__ = [
    "HistoryEvent",
    "ProgressFn",
    "ResultEvent",
    "TransferReport",
    "archive_events",
    "backend_events",
    "compare_tallies",
    "tally_endpoint",
]

#: ``progress(keys_done, keys_total_or_None)``, called after each key.
ProgressFn = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    scope: Scope
    history: list[StoredDocument]


@dataclass(frozen=True, slots=True)
class ResultEvent:
    scope: Scope
    run_id: str
    name: str
    ref: ResultRef
    chunks: Iterable[bytes]


Event = HistoryEvent | ResultEvent


@dataclass
class TransferReport:
    """What an export, import, migrate or verify did and found (``ok``: exit 0)."""

    operation: str
    scopes: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: int = 0
    revisions: int = 0
    keys_written: int = 0
    keys_skipped: int = 0
    results_copied: int = 0
    conflicts: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    verified: bool | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.differences and self.verified is not False

    def as_dict(self) -> dict[str, Any]:
        rate = self.keys / self.seconds if self.seconds > 0 else None
        return {
            "operation": self.operation,
            "ok": self.ok,
            "keys": self.keys,
            "revisions": self.revisions,
            "keys_written": self.keys_written,
            "keys_skipped": self.keys_skipped,
            "results_copied": self.results_copied,
            "conflicts": self.conflicts,
            "differences": self.differences,
            "verified": self.verified,
            "seconds": round(self.seconds, 3),
            "keys_per_second": None if rate is None else round(rate, 1),
            "scopes": self.scopes,
        }


def _histories(source: Endpoint, scope: Scope) -> Iterator[list[StoredDocument]]:
    """Every history of ``scope``: the pruned-history markers first (a pruned history
    can only be restored once its marker is in the target), then every other kind."""
    yield from source.backend.iter_histories(scope, PRUNED_KIND)
    for history in source.backend.iter_histories(scope):
        if history[0].kind != PRUNED_KIND:
            yield history


def backend_events(source: Endpoint, scopes: Sequence[Scope]) -> Iterator[Event]:
    """Every history of ``scopes`` (markers first), each run's results objects just
    before the run."""
    for scope in scopes:
        seen: set[tuple[str, str]] = set()
        for history in _histories(source, scope):
            for run_id, ref in result_refs(history):
                if (ref.run_id, ref.name) in seen:
                    continue
                seen.add((ref.run_id, ref.name))
                if source.results is None:
                    raise MisconfiguredError(
                        f"run {run_id!r} in {scope} has offloaded results but the source "
                        "configuration has no results store to read them from"
                    )
                yield ResultEvent(
                    scope, run_id, result_name(ref), ref, source.results.open(scope, ref)
                )
            yield HistoryEvent(scope, history)


def archive_events(
    items: Iterator[ArchiveItem], on_end: Callable[[ArchiveEnd], None]
) -> Iterator[Event]:
    """Events of an archive being read (its header already taken); the end to ``on_end``."""
    for item in items:
        if isinstance(item, ArchiveHistory):
            yield HistoryEvent(item.scope, item.history)
        elif isinstance(item, ArchiveResult):
            meta = item.meta
            ref = meta["ref"]
            source_ref = ResultRef(
                item.scope,
                str(meta["run_id"]),
                str(meta["name"]),
                int(ref["size"]),
                str(ref["sha256"]),
                str(ref["content_type"]),
            )
            yield ResultEvent(
                item.scope, str(meta["run_id"]), str(meta["name"]), source_ref, item.chunks()
            )
        elif isinstance(item, ArchiveEnd):
            on_end(item)


def _hash_object(endpoint: Endpoint, scope: Scope, ref: ResultRef) -> None:
    if endpoint.results is None:
        raise MisconfiguredError(f"{scope} has offloaded results but no results store")
    for _chunk in endpoint.results.open(scope, ref):  # verifies size and sha256 at the end
        pass


def tally_endpoint(
    endpoint: Endpoint, scopes: Sequence[Scope], problems: list[str]
) -> dict[str, dict[str, Any]]:
    """Counts and digests of ``scopes`` as stored; results objects opened and checked.

    A results object that cannot be opened or fails its sha256 is not counted and
    is described in ``problems``.
    """
    out: dict[str, dict[str, Any]] = {}
    for scope in scopes:
        tally = ScopeTally()
        seen: set[tuple[str, str]] = set()
        for history in endpoint.backend.iter_histories(scope):
            tally.add_history(history, normalize_body)
            for run_id, ref in result_refs(history):
                if (ref.run_id, ref.name) in seen:
                    continue
                seen.add((ref.run_id, ref.name))
                try:
                    _hash_object(endpoint, scope, ref)
                except DQError as exc:
                    problems.append(f"{scope}: results of run {run_id!r} do not open: {exc}")
                    continue
                tally.add_result(ref.sha256, ref.size, ref.content_type)
        out[f"{scope.tenant}/{scope.environment}"] = tally.as_dict()
    return out


def compare_tallies(
    left: dict[str, dict[str, Any]], right: dict[str, dict[str, Any]], names: tuple[str, str]
) -> list[str]:
    """One line per scope whose counts or digests differ between two sides."""
    out: list[str] = []
    for scope in sorted(set(left) | set(right)):
        a, b = left.get(scope), right.get(scope)
        if a == b:
            continue
        if a is None or b is None:
            out.append(f"scope {scope}: only on the {names[0] if b is None else names[1]} side")
            continue
        diffs = [
            f"{k} {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
        ]
        out.append(f"scope {scope} ({names[0]} vs {names[1]}): " + "; ".join(diffs))
    return out
