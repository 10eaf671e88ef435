"""The typed stores: one per artifact, each declaring its key, index and sort order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import TypeAdapter

from dq_metadata.errors import Problem, ValidationError
from dq_metadata.models import (
    ACTION_PROFILE_ADAPTER,
    ActionProfile,
    ContractHead,
    ContractVersion,
    JobDefinition,
    JobRun,
    Report,
    RunStatus,
    UsageStamp,
    UsageTarget,
)
from dq_metadata.scope import Scope, validate_id
from dq_metadata.secrets import find_inline_secrets, refuse_inline_secrets
from dq_metadata.sortkeys import normalize_version, semver_sort_key, time_sort_key
from dq_stores.backend import DocumentBackend
from dq_stores.base import FilterValue, ItemPage, Store, Versioned
from dq_stores.documents import FieldFilter, IndexEntry, Query
from dq_stores.search import SEARCH_BODY_FIELD, SEARCH_TITLE_FIELD

__all__ = [
    "ActionProfileStore",
    "ContractHeadStore",
    "ContractStore",
    "JobDefinitionStore",
    "JobRunStore",
    "ReportStore",
    "UsageStampStore",
    "contract_key",
]


def contract_key(contract_id: str, version: str) -> str:
    """Key of one contract version: ``<id>@<normalised version>``.

    The version is normalised (``2.0`` and ``v2`` → ``2.0.0``, see
    :func:`~dq_metadata.sortkeys.normalize_version`), so two spellings of one version
    are one key; the stored document keeps the string as written. Semver has no '@',
    so the last '@' splits the key back.

    Raises:
        ValidationError: ``version`` has no defined order.
    """
    return f"{contract_id}@{normalize_version(version)}"


class ContractStore(Store[ContractVersion]):
    """Contract versions, keyed ``<id>@<version>``, sorted by semver precedence."""

    kind = "contract"
    model_types = (ContractVersion,)
    indexed_fields = frozenset({"contract_id", "dataset", "status"})

    def __init__(self, backend: DocumentBackend) -> None:
        super().__init__(backend, TypeAdapter(ContractVersion))

    def key_of(self, item: ContractVersion) -> str:
        return contract_key(item.id, item.version)

    def index_of(self, item: ContractVersion) -> IndexEntry:
        fields: dict[str, tuple[str, ...]] = {
            "contract_id": (item.id,),
            "status": (item.status,),
        }
        datasets = tuple(item.contract.dataset_names())
        if datasets:
            fields["dataset"] = datasets
        return IndexEntry(fields, semver_sort_key(item.version))

    def get_version(
        self, scope: Scope, contract_id: str, version: str
    ) -> Versioned[ContractVersion]:
        return self.get(scope, contract_key(contract_id, version))

    def get_latest_for_dataset(
        self, scope: Scope, dataset_type: str, statuses: Sequence[str] = ("active",)
    ) -> Versioned[ContractVersion] | None:
        """Highest-semver version governing ``dataset_type`` whose status is in ``statuses``.

        One descending index lookup with limit 1; ``None`` when there is none.
        """
        if not isinstance(dataset_type, str) or not dataset_type:
            raise ValidationError("invalid dataset", [Problem("dataset_type", "must be non-empty")])
        page = self.list(
            scope,
            filters={"dataset": dataset_type, "status": tuple(statuses)},
            limit=1,
            descending=True,
        )
        return page.items[0] if page.items else None

    def list_versions(
        self,
        scope: Scope,
        contract_id: str,
        *,
        limit: int = 100,
        page_token: str | None = None,
        descending: bool = False,
    ) -> ItemPage[ContractVersion]:
        """Versions of one contract in semver order."""
        return self.list(
            scope,
            filters={"contract_id": contract_id},
            limit=limit,
            page_token=page_token,
            descending=descending,
        )


class ContractHeadStore(Store[ContractHead]):
    """One small document per contract id holding its highest published version.

    Publishers move it with an expected revision, which serialises concurrent
    publishes of the same contract on every backend.
    """

    kind = "contract_head"
    model_types = (ContractHead,)

    def __init__(self, backend: DocumentBackend) -> None:
        super().__init__(backend, TypeAdapter(ContractHead))

    def key_of(self, item: ContractHead) -> str:
        return item.contract_id

    def index_of(self, item: ContractHead) -> IndexEntry:
        # the search tokens of the highest version: one hit per contract id
        fields: dict[str, tuple[str, ...]] = {}
        if item.search is not None:
            fields = {
                SEARCH_TITLE_FIELD: tuple(item.search.title),
                SEARCH_BODY_FIELD: tuple(item.search.body),
            }
            fields = {name: values for name, values in fields.items() if values}
        return IndexEntry(fields, item.contract_id)


class JobDefinitionStore(Store[JobDefinition]):
    """Job definitions keyed by id, sorted by id."""

    kind = "job_definition"
    model_types = (JobDefinition,)
    indexed_fields = frozenset(
        {"tag", "job_type", "contract_id", "dataset", "action_profile", "enabled"}
    )

    def __init__(self, backend: DocumentBackend) -> None:
        super().__init__(backend, TypeAdapter(JobDefinition))

    def key_of(self, item: JobDefinition) -> str:
        return item.id

    def check_document(self, data: Any) -> None:
        """Checkpoint ``params`` hold no inline secret (see :mod:`dq_metadata.secrets`).

        Raises:
            ValidationError: naming ``checkpoints[i].params.<path>``, never the value.
        """
        problems = [
            problem
            for i, checkpoint in enumerate(data.get("checkpoints") or ())
            for problem in find_inline_secrets(checkpoint.get("params"), f"checkpoints[{i}].params")
        ]
        if problems:
            raise ValidationError("job definition holds inline secrets", problems)

    def index_of(self, item: JobDefinition) -> IndexEntry:
        fields: dict[str, tuple[str, ...]] = {
            "job_type": (item.job_type.value,),
            "contract_id": (item.contract.id,),
            "dataset": (item.dataset,),
            "enabled": ("true" if item.enabled else "false",),
        }
        if item.tags:
            fields["tag"] = tuple(sorted(set(item.tags)))
        if refs := item.action_profile_ids():
            fields["action_profile"] = tuple(refs)
        return IndexEntry(fields, item.id)

    def list_by_tags(
        self,
        scope: Scope,
        tags: Sequence[str],
        *,
        match: Literal["all", "any"] = "all",
        limit: int = 100,
        page_token: str | None = None,
    ) -> ItemPage[JobDefinition]:
        """Jobs carrying all (or any) of ``tags``."""
        tags = [tags] if isinstance(tags, str) else list(tags)
        if not tags:
            raise ValidationError("invalid tags", [Problem("tags", "give at least one tag")])
        if match == "any":
            return self.list(
                scope, filters={"tag": tuple(tags)}, limit=limit, page_token=page_token
            )
        if match != "all":
            raise ValidationError("invalid match", [Problem("match", "use 'all' or 'any'")])
        # One filter per tag: filters AND together, values within one filter OR.
        return self._list_all_tags(scope, tags, limit, page_token)

    def _list_all_tags(
        self, scope: Scope, tags: list[str], limit: int, page_token: str | None
    ) -> ItemPage[JobDefinition]:
        query = Query(
            tuple(FieldFilter("tag", (t,)) for t in sorted(set(tags))),
            limit=limit,
            page_token=page_token,
        )
        page = self.backend.query(scope, self.kind, query)
        return ItemPage([self.decode(d) for d in page.items], page.next_token)


class ActionProfileStore(Store[ActionProfile]):
    """Action profiles keyed by id, filterable by ``action_type``."""

    kind = "action_profile"
    model_types = get_args(get_args(ActionProfile)[0])
    indexed_fields = frozenset({"action_type"})

    def __init__(self, backend: DocumentBackend) -> None:
        super().__init__(backend, ACTION_PROFILE_ADAPTER)

    def key_of(self, item: ActionProfile) -> str:
        return item.id

    def check_document(self, data: Any) -> None:
        """No inline secret anywhere in the profile (see :mod:`dq_metadata.secrets`).

        Raises:
            ValidationError: naming each JSON path, never the value.
        """
        refuse_inline_secrets(data, "action profile")

    def index_of(self, item: ActionProfile) -> IndexEntry:
        return IndexEntry({"action_type": (item.action_type,)}, item.id)

    def list_by_type(
        self, scope: Scope, action_type: str, *, limit: int = 100, page_token: str | None = None
    ) -> ItemPage[ActionProfile]:
        return self.list(
            scope, filters={"action_type": action_type}, limit=limit, page_token=page_token
        )


def _window(since: datetime | None, until: datetime | None) -> tuple[str | None, str | None]:
    return (
        None if since is None else time_sort_key(since),
        None if until is None else time_sort_key(until),
    )


class JobRunStore(Store[JobRun]):
    """Job runs keyed by run id, sorted by creation time (newest first by default)."""

    kind = "job_run"
    model_types = (JobRun,)
    indexed_fields = frozenset({"job_id", "status", "idempotency_key"})

    def __init__(self, backend: DocumentBackend) -> None:
        super().__init__(backend, TypeAdapter(JobRun))

    def key_of(self, item: JobRun) -> str:
        return item.run_id

    def index_of(self, item: JobRun) -> IndexEntry:
        fields: dict[str, tuple[str, ...]] = {
            "job_id": (item.job_id,),
            "status": (item.status.value,),
        }
        if item.idempotency_key:
            fields["idempotency_key"] = (item.idempotency_key,)
        return IndexEntry(fields, time_sort_key(item.created_at))

    def _run_filters(
        self, job_id: str | None, status: RunStatus | Sequence[RunStatus] | None
    ) -> dict[str, FilterValue]:
        filters: dict[str, FilterValue] = {}
        if job_id is not None:
            filters["job_id"] = job_id
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            filters["status"] = tuple(RunStatus(s).value for s in statuses)
        return filters

    def list_by_tenant(
        self,
        tenant: str,
        environment: str | None = None,
        *,
        job_id: str | None = None,
        status: RunStatus | Sequence[RunStatus] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        page_token: str | None = None,
    ) -> ItemPage[JobRun]:
        """Runs of a tenant (one environment, or all), newest first, in ``[since, until)``."""
        validate_id(tenant, "tenant")
        low, high = _window(since, until)
        filters = self._run_filters(job_id, status)
        if environment is None:
            return self.list_tenant(
                tenant, filters=filters, limit=limit, page_token=page_token,
                descending=True, sort_key_min=low, sort_key_max=high,
            )  # fmt: skip
        return self.list(
            Scope(tenant, environment), filters=filters, limit=limit, page_token=page_token,
            descending=True, sort_key_min=low, sort_key_max=high,
        )  # fmt: skip

    def list_by_job(
        self, scope: Scope, job_id: str, *, limit: int = 50, page_token: str | None = None
    ) -> ItemPage[JobRun]:
        return self.list_by_tenant(
            scope.tenant, scope.environment, job_id=job_id, limit=limit, page_token=page_token
        )

    def list_by_status(
        self,
        scope: Scope,
        status: RunStatus | Sequence[RunStatus],
        *,
        limit: int = 50,
        page_token: str | None = None,
    ) -> ItemPage[JobRun]:
        return self.list_by_tenant(
            scope.tenant, scope.environment, status=status, limit=limit, page_token=page_token
        )

    def find_by_idempotency_key(self, scope: Scope, key: str) -> Versioned[JobRun] | None:
        page = self.list(scope, filters={"idempotency_key": key}, limit=1)
        return page.items[0] if page.items else None


class ReportStore(Store[Report]):
    """Reports keyed by report id, attached to a run and a dataset, sorted by time."""

    kind = "report"
    model_types = (Report,)
    indexed_fields = frozenset({"run_id", "dataset", "job_id"})

    def __init__(self, backend: DocumentBackend) -> None:
        super().__init__(backend, TypeAdapter(Report))

    def key_of(self, item: Report) -> str:
        return item.report_id

    def index_of(self, item: Report) -> IndexEntry:
        return IndexEntry(
            {"run_id": (item.run_id,), "dataset": (item.dataset,), "job_id": (item.job_id,)},
            time_sort_key(item.created_at),
        )

    def list_for_run(self, scope: Scope, run_id: str, *, limit: int = 100) -> ItemPage[Report]:
        return self.list(scope, filters={"run_id": run_id}, limit=limit, descending=True)

    def list_for_dataset(
        self, scope: Scope, dataset: str, *, limit: int = 100, page_token: str | None = None
    ) -> ItemPage[Report]:
        return self.list(
            scope, filters={"dataset": dataset}, limit=limit, page_token=page_token, descending=True
        )


class UsageStampStore(Store[UsageStamp]):
    """Usage stamps keyed ``<target_kind>/<target_id>`` (see ``dq_metadata.models.usage``)."""

    kind = "usage_stamp"
    model_types = (UsageStamp,)

    def __init__(self, backend: DocumentBackend) -> None:
        super().__init__(backend, TypeAdapter(UsageStamp))

    @staticmethod
    def key_for(target_kind: UsageTarget, target_id: str) -> str:
        return f"{target_kind}/{target_id}"

    def key_of(self, item: UsageStamp) -> str:
        return self.key_for(item.target_kind, item.target_id)

    def index_of(self, item: UsageStamp) -> IndexEntry:
        return IndexEntry({}, "")

    def revision_of(self, scope: Scope, target_kind: UsageTarget, target_id: str) -> int | None:
        """The stamp's current revision, ``None`` if the target was never referenced."""
        found = self.find(scope, self.key_for(target_kind, target_id))
        return None if found is None else found.revision
