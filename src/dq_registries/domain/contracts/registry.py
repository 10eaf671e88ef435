"""``ContractRegistry``: publishing, lifecycle and lookup of data contracts in one scope."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import semver

from dq_metadata.errors import (
    ConflictError,
    MisconfiguredError,
    NotFoundError,
    Problem,
    ValidationError,
)
from dq_metadata.models import (
    ContractHead,
    ContractVersion,
    DataContract,
    JobDefinition,
    LifecycleEvent,
    utcnow,
)
from dq_metadata.scope import Scope, validate_document_id
from dq_metadata.sortkeys import normalize_version, parse_semver, version_in_range
from dq_registries.domain.contracts._publish import check_breaking, check_increasing, same_content
from dq_registries.domain.contracts._reads import ContractReads, resolve_contract_ref
from dq_registries.domain.contracts._search import ContractSearchPage, ReindexResult, searchable
from dq_registries.domain.contracts._search import reindex as _reindex
from dq_registries.domain.contracts._search import search as _search
from dq_registries.domain.contracts.change import Change
from dq_registries.domain.contracts.diff import diff
from dq_registries.domain.contracts.errors import ContractInUseError
from dq_registries.domain.contracts.lifecycle import check_transition
from dq_registries.domain.contracts.odcs import Format, dump_odcs, load_odcs, parse_contract
from dq_stores.base import ItemPage, Versioned
from dq_stores.documents import MUST_NOT_EXIST, Operation, at_revision
from dq_stores.typed import (
    ContractHeadStore,
    ContractStore,
    JobDefinitionStore,
    UsageStampStore,
)

__all__ = ["ContractRegistry", "PublishResult"]

_Changes = list[Change]
_Events = list[LifecycleEvent]

_PUBLISH_ATTEMPTS = 5
_TRANSITION_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Outcome of :meth:`ContractRegistry.publish`.

    ``created`` is ``False`` when the same content was already published under this
    version; ``changes`` is the diff against the previous highest version.
    """

    version: ContractVersion
    created: bool
    changes: _Changes = field(default_factory=list)


class _HeadMoved(Exception):
    """Another publish of the same contract won the race; re-check and retry."""


class _UsageMoved(Exception):
    """A job referencing the contract was saved while retiring it; check again."""


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ValidationError(f"invalid {name}", [Problem(name, "must be a non-empty string")])
    return value


class ContractRegistry:
    """Data contracts (ODCS v3) of one tenant environment.

    Versions are semver 2.0 and immutable once published; a new version must be
    greater than every existing one, and a breaking change (see :func:`diff`) needs
    a major bump unless forced. Status changes go through :meth:`transition` and
    are recorded with actor, time and reason.

    Args:
        scope: the tenant environment every call works in.
        store: contract store (its backend also holds the per-contract heads).
        job_definitions: consulted before retiring a version.
        active_statuses: statuses that count as active for
            :meth:`get_latest_for_dataset`.
        clock: returns the current timezone-aware time.
    """

    def __init__(
        self,
        scope: Scope,
        store: ContractStore,
        *,
        job_definitions: JobDefinitionStore,
        active_statuses: Sequence[str] = ("active",),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not isinstance(scope, Scope):
            raise ValidationError("invalid scope", [Problem("scope", "must be a Scope")])
        statuses = (active_statuses,) if isinstance(active_statuses, str) else active_statuses
        self._active = tuple(_text(s, "active_statuses") for s in statuses)
        if not self._active:
            raise ValidationError(
                "invalid active_statuses", [Problem("active_statuses", "give at least one")]
            )
        self.scope = scope
        self._store = store
        self._heads = ContractHeadStore(store.backend)
        if job_definitions.backend is not store.backend:
            raise MisconfiguredError(
                "contracts and job definitions must share one backend: retiring a version "
                "and saving a job that references it commit atomically against each other"
            )
        # The registry's own bookkeeping documents live beside its contracts.
        self._usage = UsageStampStore(store.backend)
        self._reads = ContractReads(scope, store, self._heads, job_definitions)
        self._clock = clock

    # -- import / export -------------------------------------------------------
    def import_odcs(self, text: str | bytes) -> DataContract:
        """Parse ODCS YAML 1.2 or JSON and validate it against the schema of its apiVersion.

        Raises:
            ValidationError: unreadable text, or one problem per schema violation.
        """
        return parse_contract(load_odcs(text))

    def export_odcs(
        self, contract_id: str, version: str | None = None, fmt: Format = "yaml"
    ) -> str:
        """The published document as ODCS YAML or JSON (``version=None``: highest)."""
        if fmt not in ("yaml", "json"):
            raise ValidationError("invalid format", [Problem("fmt", "use 'yaml' or 'json'")])
        return dump_odcs(self.get(contract_id, version).contract, fmt)

    # -- publishing ------------------------------------------------------------
    def publish(
        self,
        contract: DataContract | Mapping[str, Any],
        *,
        actor: str,
        force: bool = False,
        reason: str | None = None,
    ) -> PublishResult:
        """Publish a new contract version.

        Re-publishing identical content (status aside) returns the stored version
        with ``created=False``.

        Raises:
            ValidationError: not ODCS, ``version`` not semver, no actor, or a forced
                breaking publish without a reason.
            ConflictError: the version exists with other content, or is not greater
                than the highest existing version.
            BreakingChangeError: breaking changes without a major bump and no force.
        """
        actor = _text(actor, "actor")
        if reason is not None:
            reason = _text(reason, "reason")
        candidate = parse_contract(contract)
        wanted = parse_semver(candidate.version)
        for _ in range(_PUBLISH_ATTEMPTS):
            try:
                return self._publish_once(candidate, wanted, actor, force, reason)
            except _HeadMoved:
                continue
        raise ConflictError(
            f"contract {candidate.id!r}: other publishes kept winning the race; retry later"
        )

    def _publish_once(
        self,
        candidate: DataContract,
        wanted: semver.Version,
        actor: str,
        force: bool,
        reason: str | None,
    ) -> PublishResult:
        existing = self._reads.find(candidate.id, candidate.version)
        if existing is not None and same_content(existing.item, candidate):
            return PublishResult(existing.item, False, [])
        head = self._reads.find_head(candidate.id)
        latest = self._reads.highest(candidate.id)
        check_increasing(
            candidate,
            wanted,
            latest.item.version if latest else None,
            head.item.latest_version if head else None,
        )
        previous = latest.item.contract if latest else None
        changes = diff(previous, candidate) if previous else []
        now = self._clock()
        forced = check_breaking(
            candidate, wanted, previous, changes, force=force,
            forced_by={"actor": actor, "at": now, "reason": reason},
        )  # fmt: skip
        first = LifecycleEvent(
            from_status=None, to_status=candidate.status, actor=actor, at=now,
            reason=reason or "published",
        )  # fmt: skip
        record = ContractVersion(
            contract=candidate, published_by=actor, published_at=now, lifecycle=[first],
            forced=forced,
        )  # fmt: skip
        new_head = searchable(
            ContractHead(
                contract_id=candidate.id, latest_version=candidate.version, updated_at=now
            ),
            candidate,
        )
        # Head and version in one atomic commit: a refused publish leaves no trace,
        # and of racing publishes of one contract exactly one moves the head.
        operations = [
            self._heads.put_operation(
                new_head, MUST_NOT_EXIST if head is None else at_revision(head.revision)
            ),
            self._store.put_operation(record, MUST_NOT_EXIST),
        ]
        try:
            stored = self._store.backend.commit(self.scope, operations)[1]
        except ConflictError as exc:
            raise _HeadMoved from exc  # re-read: an identical publish may have won
        assert stored is not None
        return PublishResult(record, True, changes)

    # -- lookups ---------------------------------------------------------------
    def get(self, contract_id: str, version: str | None = None) -> ContractVersion:
        """One published version; ``version=None`` gives the highest (any status).

        Raises:
            NotFoundError: no such contract or version in this scope.
        """
        contract_id = validate_document_id(contract_id, "contract_id")
        if version is None:
            latest = self._reads.highest(contract_id)
            if latest is None:
                raise NotFoundError(f"no contract {contract_id!r} in {self.scope}")
            return latest.item
        return self._reads.get(contract_id, version).item

    def list(
        self,
        *,
        contract_id: str | None = None,
        dataset: str | None = None,
        status: str | Sequence[str] | None = None,
        limit: int = 100,
        page_token: str | None = None,
        descending: bool = False,
    ) -> ItemPage[ContractVersion]:
        """A page of contract versions in semver order, optionally filtered."""
        filters: dict[str, str | Sequence[str]] = {}
        for name, value in (("contract_id", contract_id), ("dataset", dataset)):
            if value is not None:
                filters[name] = validate_document_id(value, name)
        if status is not None:
            filters["status"] = status
        return self._store.list(
            self.scope, filters=filters, limit=limit, page_token=page_token, descending=descending
        )

    def search(
        self, text: str, *, limit: int = 20, page_token: str | None = None
    ) -> ContractSearchPage:
        """Contracts of this scope whose text matches ``text``, best first.

        One hit per contract id, for its highest version: id, version, name,
        summary and score. A contract matches when every word of ``text`` starts
        one of its words (names, ids, tags, domain, dataset and property names,
        descriptions; case, accents' composition and width folded); names and ids
        rank above descriptions, exact words above prefixes (``dq_stores.search``).
        Up to ``limit`` (1..100) hits per page; pass ``next_token`` as
        ``page_token`` for the next page. Contracts published before search
        existed are found after :meth:`reindex_search`.

        Raises:
            ValidationError: ``text`` holds no word, over 8 distinct words or over
                1000 characters (path ``text``); bad ``limit`` or ``page_token``.
        """
        return _search(self.scope, self._heads, text, limit, page_token)

    def reindex_search(self) -> ReindexResult:
        """Make every contract of this scope findable by :meth:`search` (a backfill).

        Gives each contract head the search tokens of its highest version; rewrites
        only heads that need it, changes no contract version, safe to run again or
        while others publish. Returns how many contracts were seen and updated.
        """
        return _reindex(self.scope, self._heads, self._reads)

    def history(self, contract_id: str, version: str) -> _Events:
        """Lifecycle events of one version, oldest first (the publish is the first)."""
        return [*self.get(contract_id, validate_document_id(version, "version")).lifecycle]

    def get_latest_for_dataset(self, dataset_type: str) -> ContractVersion:
        """Highest-semver version with an active status whose schema governs ``dataset_type``.

        Raises:
            NotFoundError: no active contract governs the dataset in this scope.
        """
        dataset_type = validate_document_id(dataset_type, "dataset_type")
        found = self._store.get_latest_for_dataset(self.scope, dataset_type, self._active)
        if found is None:
            raise NotFoundError(
                f"no contract with status {list(self._active)} governs dataset "
                f"{dataset_type!r} in {self.scope}"
            )
        return found.item

    def resolve(
        self,
        contract_id: str,
        *,
        version: str | None = None,
        version_range: str | None = None,
    ) -> ContractVersion:
        """The version a reference means: exact ``version``, else the highest non-retired
        version satisfying ``version_range`` (e.g. ``>=1.2.0,<2``), else the highest
        non-retired version.

        Raises:
            ValidationError: both given, or a malformed range.
            NotFoundError: nothing matches; the message names the reference.
        """
        contract_id = validate_document_id(contract_id, "contract_id")
        if version is not None and version_range is not None:
            raise ValidationError(
                "ambiguous reference", [Problem("version_range", "give version or range, not both")]
            )
        return resolve_contract_ref(
            self._store, self.scope, contract_id, version=version, version_range=version_range
        ).item

    @staticmethod
    def diff(old: DataContract, new: DataContract) -> _Changes:
        """Classified changes from ``old`` to ``new`` (see :func:`dq_registries.domain.contracts.diff`)."""
        return diff(old, new)

    def diff_versions(self, contract_id: str, old_version: str, new_version: str) -> _Changes:
        """Classified changes between two published versions of one contract."""
        old = self.get(contract_id, validate_document_id(old_version, "old_version"))
        new = self.get(contract_id, validate_document_id(new_version, "new_version"))
        return diff(old.contract, new.contract)

    # -- lifecycle -------------------------------------------------------------
    def transition(
        self,
        contract_id: str,
        version: str,
        to_status: str,
        *,
        actor: str,
        reason: str | None = None,
    ) -> ContractVersion:
        """Move one version to ``to_status``, recording actor, time and reason.

        Uses the store's optimistic concurrency: of two concurrent transitions of
        the same version, one wins and the other gets ``ConflictError``.

        Raises:
            ValidationError: bad arguments or unknown target status.
            ConflictError: illegal transition or a concurrent change.
            ContractInUseError: retiring a version enabled jobs still reference.
        """
        actor = _text(actor, "actor")
        to_status = _text(to_status, "to_status")
        if reason is not None:
            reason = _text(reason, "reason")
        contract_id = validate_document_id(contract_id, "contract_id")
        version = validate_document_id(version, "version")
        for _ in range(_TRANSITION_ATTEMPTS):
            current = self._reads.get(contract_id, version)
            try:
                return self._transition_once(current, to_status, actor, reason)
            except _UsageMoved:
                continue  # a job referencing the contract was saved meanwhile: check again
        raise ConflictError(
            f"contract {contract_id!r} version {version}: job definitions referencing it keep "
            "changing; retry later"
        )

    def _transition_once(
        self,
        current: Versioned[ContractVersion],
        to_status: str,
        actor: str,
        reason: str | None,
    ) -> ContractVersion:
        record = current.item
        check_transition(record.status, to_status)
        guards: list[Operation] = []
        if to_status == "retired":
            # Read the stamp BEFORE looking for jobs: a job saved after this read moves
            # it, and the guard below then refuses the retire instead of racing it.
            stamp = self._usage.revision_of(self.scope, "contract", record.id)
            self._check_not_referenced(record)
            guards.append(
                self._usage.check_operation(self._usage.key_for("contract", record.id), stamp)
            )
        event = LifecycleEvent(
            from_status=record.status, to_status=to_status, actor=actor, at=self._clock(),
            reason=reason,
        )  # fmt: skip
        contract = DataContract.model_validate({**record.contract.to_odcs(), "status": to_status})
        updated = record.model_copy(
            update={"contract": contract, "lifecycle": [*record.lifecycle, event]}
        )
        operations = [self._store.put_operation(updated, at_revision(current.revision)), *guards]
        try:
            stored = self._store.backend.commit(self.scope, operations)[0]
        except ConflictError as exc:
            if guards and self._reads.get(record.id, record.version).revision == current.revision:
                raise _UsageMoved from exc
            raise ConflictError(
                f"contract {record.id!r} version {record.version} changed concurrently; "
                "re-read it and retry"
            ) from exc
        assert stored is not None
        return updated

    def activate(
        self, contract_id: str, version: str, *, actor: str, reason: str | None = None
    ) -> ContractVersion:
        return self.transition(contract_id, version, "active", actor=actor, reason=reason)

    def deprecate(
        self, contract_id: str, version: str, *, actor: str, reason: str | None = None
    ) -> ContractVersion:
        return self.transition(contract_id, version, "deprecated", actor=actor, reason=reason)

    def retire(
        self, contract_id: str, version: str, *, actor: str, reason: str | None = None
    ) -> ContractVersion:
        return self.transition(contract_id, version, "retired", actor=actor, reason=reason)

    def _check_not_referenced(self, record: ContractVersion) -> None:
        users = [job.id for job in self._reads.enabled_jobs(record.id) if self._uses(job, record)]
        if users:
            raise ContractInUseError(
                f"cannot retire contract {record.id!r} version {record.version}: "
                "enabled job definitions reference it",
                sorted(users),
            )

    @staticmethod
    def _uses(job: JobDefinition, record: ContractVersion) -> bool:
        ref = job.contract
        try:
            if ref.version is not None:  # one version, however spelt (1.0 is 1.0.0)
                return normalize_version(ref.version) == normalize_version(record.version)
            return version_in_range(record.version, ref.version_range or "")
        except ValidationError:
            return True  # an unreadable reference might mean this version: keep it
