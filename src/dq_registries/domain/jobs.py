"""Job definitions: validation, cleansing and profiling jobs and their references.

Rules enforced on save, before anything is written:

* the definition validates (job type, ordered checkpoints with unique names,
  trigger, severity threshold, idempotency scope);
* a cron trigger's expression parses (croniter), fires at least once within
  :data:`CRON_HORIZON_YEARS` years from now (``0 0 31 2 *`` never does; ``0 0 29 2 *``
  does, in leap years), and its timezone exists (zoneinfo);
* the contract reference resolves in the SAME scope — an exact version, or the
  highest non-retired version matching ``version_range`` — and the job's
  ``dataset`` is one of that version's datasets; an enabled job never references
  a retired version;
* every ``on_success`` / ``on_failure`` / ``on_anomaly`` action profile exists in
  the same scope;
* the job is written in one atomic commit with guards on what was checked, so a
  concurrent retire or profile delete cannot slip in between check and write.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from croniter import CroniterBadDateError, croniter

from dq_metadata.errors import (
    ConflictError,
    MisconfiguredError,
    NotFoundError,
    Problem,
    ValidationError,
)
from dq_metadata.models import (
    ContractRef,
    ContractVersion,
    CronTrigger,
    JobDefinition,
    JobType,
)
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import parse_semver, parse_version_range
from dq_registries.domain._jobs_batch import Checked, reference_operations, save_in_commits
from dq_registries.domain._storeops import (
    check_id,
    check_limit,
    check_revision,
)
from dq_registries.domain.contracts import resolve_contract_ref
from dq_stores._bulk import trusted_batch
from dq_stores.base import FilterValue, ItemPage, Revision, Versioned
from dq_stores.documents import (
    MUST_NOT_EXIST,
    Expectation,
    ExpectKind,
    Put,
    StoredDocument,
    at_revision,
)
from dq_stores.typed import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    UsageStampStore,
)

__all__ = ["CRON_HORIZON_YEARS", "MAX_PROFILES_PER_JOB", "JobDefinitionRegistry"]

#: A cron schedule must fire within this many years from now. Forty: the rarest
#: schedules croniter accepts that do fire need 29 February on one weekday (``0 0 * 2
#: 1#5``, the fifth Monday of February: 2016, 2044, 2072, then 2112 as 2100 is no
#: leap year), at most 40 years apart anywhere in the 400-year Gregorian cycle.
CRON_HORIZON_YEARS = 40

#: Distinct action profiles one job may reference: each costs two operations of the
#: job's atomic save (a guard and a usage stamp), bounded by ``MAX_COMMIT_OPERATIONS``.
MAX_PROFILES_PER_JOB = 40
_SAVE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A checked job with the revisions of what it references, read during the check."""

    item: JobDefinition
    contract: Versioned[ContractVersion]
    profiles: dict[str, int]


def _holds(expect: Expectation, current: StoredDocument | None) -> bool:
    """Whether ``expect`` held for the job as read before the commit."""
    if expect.kind is ExpectKind.ABSENT:
        return current is None
    return current is not None and current.revision == expect.revision


def _check_trigger(job: JobDefinition) -> list[Problem]:
    trigger = job.trigger
    if not isinstance(trigger, CronTrigger):
        return []
    problems = []
    if not croniter.is_valid(trigger.expression):
        problems.append(
            Problem("trigger.expression", f"{trigger.expression!r} is not a cron expression")
        )
    elif not _fires(trigger.expression):
        problems.append(
            Problem(
                "trigger.expression",
                f"{trigger.expression!r} never fires within {CRON_HORIZON_YEARS} years "
                "(no such date, e.g. 31 February); fix the day or month",
            )
        )
    try:
        zoneinfo.ZoneInfo(trigger.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(Problem("trigger.timezone", f"unknown timezone {trigger.timezone!r}"))
    return problems


def _fires(expression: str, start: datetime | None = None) -> bool:
    """Whether ``expression`` has a fire time within the horizon after ``start`` (now)."""
    begin = start or datetime.now(UTC)
    try:
        croniter(expression, begin, max_years_between_matches=CRON_HORIZON_YEARS).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


def _check_ref_syntax(ref: ContractRef) -> list[Problem]:
    try:
        if ref.version is not None:
            parse_semver(ref.version)
        elif ref.version_range is not None:
            parse_version_range(ref.version_range)
    except ValidationError as exc:
        field = "contract.version" if ref.version is not None else "contract.version_range"
        return [Problem(field, p.message) for p in exc.problems] or [Problem(field, str(exc))]
    return []


class JobDefinitionRegistry:
    """Job definitions of one scope.

    ``contracts`` and ``action_profiles`` are read to check references; the
    container gives all three stores the same backend.
    """

    def __init__(
        self,
        scope: Scope,
        store: JobDefinitionStore,
        *,
        contracts: ContractStore,
        action_profiles: ActionProfileStore,
    ) -> None:
        if not isinstance(scope, Scope):
            raise ValidationError("scope must be a Scope")
        self.scope = scope
        self.store = store
        self.contracts = contracts
        self.action_profiles = action_profiles
        if not self.contracts.backend is self.store.backend is self.action_profiles.backend:
            raise MisconfiguredError(
                "job definitions, contracts and action profiles must share one backend: "
                "a job and the references it checks commit atomically"
            )
        self._usage = UsageStampStore(self.store.backend)

    # -- writes ----------------------------------------------------------------
    def validate(self, job: JobDefinition | Mapping[str, Any]) -> JobDefinition:
        """Check ``job`` and its references without saving it (see the module rules)."""
        item = self.store.trusted(job)
        self.store.encode(item)  # what a save would refuse (e.g. a secret in a checkpoint)
        return self._prepare(item).item

    def _prepare(self, item: JobDefinition) -> _Prepared:
        problems = _check_trigger(item) + _check_ref_syntax(item.contract)
        if problems:
            raise ValidationError("invalid job definition", problems)
        ref = item.contract
        found = resolve_contract_ref(
            self.contracts, self.scope, ref.id, version=ref.version,
            version_range=ref.version_range,
        )  # fmt: skip
        contract = found.item
        if item.enabled and contract.status == "retired":
            raise ValidationError(
                "invalid job definition",
                [
                    Problem(
                        "contract.version",
                        f"contract {contract.id!r} version {contract.version} is retired; "
                        "reference a version that is not retired, or save the job disabled",
                    )
                ],
            )
        datasets = contract.contract.dataset_names()
        if item.dataset not in datasets:
            raise ValidationError(
                "invalid job definition",
                [
                    Problem(
                        "dataset",
                        f"{item.dataset!r} is not governed by contract {contract.id!r} "
                        f"{contract.version} (datasets: {datasets})",
                    )
                ],
            )
        return _Prepared(item, found, self._profiles(item))

    def _profiles(self, job: JobDefinition) -> dict[str, int]:
        """Revision of every referenced action profile, by id."""
        places = [
            (f"{field}[{i}]", profile_id)
            for field in ("on_success", "on_failure", "on_anomaly")
            for i, profile_id in enumerate(getattr(job, field))
        ]
        distinct = list(dict.fromkeys(profile_id for _, profile_id in places))
        if len(distinct) > MAX_PROFILES_PER_JOB:
            first_over = distinct[MAX_PROFILES_PER_JOB]
            where = next(place for place, profile_id in places if profile_id == first_over)
            raise ValidationError(
                "invalid job definition",
                [
                    Problem(
                        where,
                        f"the job references {len(distinct)} distinct action profiles across "
                        f"on_success, on_failure and on_anomaly; at most "
                        f"{MAX_PROFILES_PER_JOB} are allowed (this is the first over the limit)",
                    )
                ],
            )
        missing: list[str] = []
        found: dict[str, int | None] = {}
        for place, profile_id in places:
            if profile_id not in found:
                current = self.action_profiles.find_document(self.scope, profile_id)
                found[profile_id] = None if current is None else current.revision
            if found[profile_id] is None:
                missing.append(f"{place}={profile_id!r}")
        if missing:
            raise NotFoundError(f"action profiles not found in {self.scope}: {', '.join(missing)}")
        return {k: v for k, v in found.items() if v is not None}

    def save(
        self, job: JobDefinition | Mapping[str, Any], *, expected_revision: int | None = None
    ) -> JobDefinition:
        """Create or update a job definition after checking it and its references.

        ``expected_revision=None`` writes unconditionally (no new revision if the
        content is unchanged); ``0`` means "must not exist yet"; ``n`` means the
        current revision must be ``n``.

        The job, guards that its contract version and action profiles are unchanged
        since they were checked, and the usage stamps of what it references are one
        atomic commit, so a concurrent retire or profile delete either sees the job
        or makes this save re-check (and refuse) its references.

        Raises:
            ValidationError: bad definition, cron/timezone, dataset not in the contract,
                or an enabled job referencing a retired version.
            NotFoundError: the contract version or an action profile is missing.
            ConflictError: ``expected_revision`` is stale.
        """
        return self.save_versioned(job, expected_revision=expected_revision).item

    def save_versioned(
        self, job: JobDefinition | Mapping[str, Any], *, expected_revision: int | None = None
    ) -> Versioned[JobDefinition]:
        """Like :meth:`save`, returning the stored revision too."""
        check_revision(expected_revision)
        item = self.store.trusted(job)
        write = self.store.encode(item)  # validated and hashed once, whatever the retries
        for _ in range(_SAVE_ATTEMPTS):
            prepared = self._prepare(item)
            current = self.store.find_document(self.scope, item.id)
            if expected_revision is None:
                if current is not None and current.sha256 == write.sha256:
                    return self.store.written(item, current)
                expect = MUST_NOT_EXIST if current is None else at_revision(current.revision)
            else:
                expect = (
                    MUST_NOT_EXIST if expected_revision == 0 else at_revision(expected_revision)
                )
            try:
                return self._commit(prepared, Put(self.store.kind, write, expect))
            except ConflictError:
                if expected_revision is not None and not _holds(
                    expect, self.store.find_document(self.scope, item.id)
                ):
                    raise  # the caller's expectation is stale
                continue  # a reference (or, unconditionally saved, the job) moved: re-check
        raise ConflictError(f"job definition {item.id!r}: its references keep changing; retry")

    def save_many(
        self, jobs: Iterable[JobDefinition | Mapping[str, Any]]
    ) -> list[Versioned[JobDefinition]]:
        """Save many job definitions, each as :meth:`save` with no ``expected_revision``.

        Every job and its references are checked before the first write: an invalid
        job, a missing reference, an inline secret or an id given twice raises and
        writes nothing. The jobs are then written in order, in atomic commits of up
        to ``MAX_COMMIT_OPERATIONS`` (100) operations — whole jobs with the guards on
        what they reference and the usage stamps; the batch is not one transaction:
        if a reference changes under a commit, its jobs are saved one by one as
        :meth:`save` does, and the first that fails raises with the jobs saved so far
        kept (the message says how many; saving the batch again is safe: unchanged
        jobs add no revision). Returns the stored revisions, in order.

        Raises:
            ValidationError, NotFoundError: as :meth:`save`, naming ``items[i]``.
            ConflictError: as :meth:`save`, for the job being saved.
        """
        items: list[JobDefinition] = trusted_batch(self.store, jobs)
        first: dict[str, int] = {}
        checked: list[Checked] = []
        for i, item in enumerate(items):
            if item.id in first:
                raise ValidationError(
                    "invalid job definition batch",
                    [Problem(f"items[{i}].id", f"{item.id!r} is also items[{first[item.id]}]")],
                )
            first[item.id] = i
            try:
                write = self.store.encode(item)
                checked.append(Checked(i, self._prepare(item), write))
            except NotFoundError as exc:
                raise NotFoundError(f"items[{i}] ({item.id!r}): {exc}") from exc
            except ValidationError as exc:
                raise ValidationError(
                    f"invalid job definition items[{i}] ({item.id!r})",
                    [Problem(f"items[{i}].{p.loc}".rstrip("."), p.message) for p in exc.problems],
                ) from exc
        return save_in_commits(self, checked)

    def _commit(self, prepared: _Prepared, job: Put) -> Versioned[JobDefinition]:
        contract = prepared.contract
        refs = [("contract", contract.item.id, contract.key, contract.revision)]
        refs.extend(("action_profile", pid, pid, rev) for pid, rev in prepared.profiles.items())
        stored = self.store.backend.commit(self.scope, [job, *reference_operations(self, refs)])[0]
        assert stored is not None
        return self.store.written(prepared.item, stored)

    def delete(self, job_id: str, *, expected_revision: int | None = None) -> int:
        """Delete a job definition (its runs stay); returns the tombstone revision."""
        check_revision(expected_revision, allow_zero=False)
        return self.store.delete(self.scope, check_id(job_id, "job_id"), expected_revision)

    # -- reads -------------------------------------------------------------------
    def get(self, job_id: str) -> JobDefinition:
        """The current definition. Raises ``NotFoundError``."""
        return self.get_versioned(job_id).item

    def get_versioned(self, job_id: str) -> Versioned[JobDefinition]:
        return self.store.get(self.scope, check_id(job_id, "job_id"))

    def history(self, job_id: str) -> list[Revision[JobDefinition]]:
        """Every revision, oldest first (deletions included). Raises ``NotFoundError``."""
        return self.store.history(self.scope, check_id(job_id, "job_id"))

    def list(
        self,
        *,
        job_type: JobType | str | None = None,
        contract_id: str | None = None,
        dataset: str | None = None,
        tag: str | None = None,
        action_profile: str | None = None,
        enabled: bool | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> ItemPage[JobDefinition]:
        """One page of definitions ordered by id; every given filter must match."""
        filters: dict[str, FilterValue] = {}
        if job_type is not None:
            try:
                filters["job_type"] = JobType(job_type).value
            except ValueError as exc:
                raise ValidationError(
                    "invalid job type",
                    [Problem("job_type", f"use one of {[t.value for t in JobType]}")],
                ) from exc
        for name, value in (
            ("contract_id", contract_id),
            ("dataset", dataset),
            ("tag", tag),
            ("action_profile", action_profile),
        ):
            if value is not None:
                filters[name] = check_id(value, name)
        if enabled is not None:
            filters["enabled"] = "true" if enabled else "false"
        return self.store.list(
            self.scope, filters=filters, limit=check_limit(limit), page_token=page_token
        )

    def list_by_tags(
        self,
        tags: Sequence[str],
        match: Literal["all", "any"] = "all",
        *,
        limit: int = 100,
        page_token: str | None = None,
    ) -> ItemPage[JobDefinition]:
        """One page of definitions carrying all (``match="all"``) or any of ``tags``."""
        tag_list = [tags] if isinstance(tags, str) else list(tags)
        for i, tag in enumerate(tag_list):
            check_id(tag.strip() if isinstance(tag, str) else tag, f"tags[{i}]")
        return self.store.list_by_tags(
            self.scope,
            [t.strip() for t in tag_list],
            match=match,
            limit=check_limit(limit),
            page_token=page_token,
        )
