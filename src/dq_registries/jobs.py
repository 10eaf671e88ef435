"""Job definitions: validation, cleansing and profiling jobs and their references.

Rules enforced on save, before anything is written:

* the definition validates (job type, ordered checkpoints with unique names,
  trigger, severity threshold, idempotency scope);
* a cron trigger's expression parses (croniter), fires at least once within
  :data:`CRON_HORIZON_YEARS` years from now (``0 0 31 2 *`` never does; ``0 0 29 2 *``
  does, in leap years), and its timezone exists (zoneinfo);
* the contract reference resolves in the SAME scope — an exact version, or the
  highest version matching ``version_range`` — and the job's ``dataset`` is one
  of that version's datasets;
* every ``on_success`` / ``on_failure`` / ``on_anomaly`` action profile exists in
  the same scope.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from croniter import CroniterBadDateError, croniter

from dq_metadata.errors import NotFoundError, Problem, ValidationError
from dq_metadata.models import ContractRef, ContractVersion, CronTrigger, JobDefinition, JobType
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import parse_semver, parse_version_range, version_in_range
from dq_registries._storeops import (
    check_id,
    check_limit,
    check_revision,
    write,
)
from dq_stores.base import FilterValue, ItemPage, Revision, Versioned
from dq_stores.typed import ActionProfileStore, ContractStore, JobDefinitionStore

__all__ = ["CRON_HORIZON_YEARS", "JobDefinitionRegistry", "resolve_contract_ref"]

#: A cron schedule must fire within this many years from now. Eight, because the
#: rarest schedule that does fire, 29 February, can be 8 years apart (2096 → 2104).
CRON_HORIZON_YEARS = 8


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


def resolve_contract_ref(
    contracts: ContractStore, scope: Scope, ref: ContractRef
) -> ContractVersion:
    """The contract version ``ref`` points at in ``scope``: the exact version, or the
    highest published version inside ``version_range``.

    Raises:
        NotFoundError: naming the reference, when nothing matches.
    """
    if ref.version is not None:
        try:
            return contracts.get_version(scope, ref.id, ref.version).item
        except NotFoundError as exc:
            raise NotFoundError(
                f"contract {ref.id!r} version {ref.version} not found in {scope}"
            ) from exc
    assert ref.version_range is not None
    token: str | None = None
    while True:
        page = contracts.list_versions(scope, ref.id, limit=200, page_token=token, descending=True)
        for versioned in page.items:
            if version_in_range(versioned.item.version, ref.version_range):
                return versioned.item
        token = page.next_token
        if token is None:
            raise NotFoundError(
                f"no version of contract {ref.id!r} matches {ref.version_range!r} in {scope}"
            )


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

    # -- writes ----------------------------------------------------------------
    def validate(self, job: JobDefinition | Mapping[str, Any]) -> JobDefinition:
        """Check ``job`` and its references without saving it (see the module rules)."""
        item = self.store.validate(job)
        problems = _check_trigger(item) + _check_ref_syntax(item.contract)
        if problems:
            raise ValidationError("invalid job definition", problems)
        contract = resolve_contract_ref(self.contracts, self.scope, item.contract)
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
        self._check_profiles(item)
        return item

    def _check_profiles(self, job: JobDefinition) -> None:
        missing: list[str] = []
        checked: dict[str, bool] = {}
        for field in ("on_success", "on_failure", "on_anomaly"):
            for i, profile_id in enumerate(getattr(job, field)):
                if profile_id not in checked:
                    checked[profile_id] = self._profile_exists(profile_id)
                if not checked[profile_id]:
                    missing.append(f"{field}[{i}]={profile_id!r}")
        if missing:
            raise NotFoundError(f"action profiles not found in {self.scope}: {', '.join(missing)}")

    def _profile_exists(self, profile_id: str) -> bool:
        try:
            self.action_profiles.get(self.scope, profile_id)
        except NotFoundError:
            return False
        return True

    def save(
        self, job: JobDefinition | Mapping[str, Any], *, expected_revision: int | None = None
    ) -> JobDefinition:
        """Create or update a job definition after checking it and its references.

        ``expected_revision=None`` writes unconditionally (no new revision if the
        content is unchanged); ``0`` means "must not exist yet"; ``n`` means the
        current revision must be ``n``.

        Raises:
            ValidationError: bad definition, cron/timezone, or dataset not in the contract.
            NotFoundError: the contract version or an action profile is missing.
            ConflictError: ``expected_revision`` is stale.
        """
        return self.save_versioned(job, expected_revision=expected_revision).item

    def save_versioned(
        self, job: JobDefinition | Mapping[str, Any], *, expected_revision: int | None = None
    ) -> Versioned[JobDefinition]:
        """Like :meth:`save`, returning the stored revision too."""
        check_revision(expected_revision)
        item = self.validate(job)
        return write(self.store, self.scope, item, expected_revision)

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
