"""Store reads the contract registry needs, with its not-found messages in one place."""

from __future__ import annotations

from collections.abc import Iterator

from dq_metadata.errors import NotFoundError, Problem, ValidationError
from dq_metadata.models import ContractHead, ContractVersion, JobDefinition
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import version_in_range
from dq_stores.base import Versioned
from dq_stores.typed import ContractHeadStore, ContractStore, JobDefinitionStore

__all__ = ["ContractReads", "resolve_contract_ref"]

_PAGE = 500


class ContractReads:
    """Reads of one scope's contract versions, contract heads and referencing jobs."""

    def __init__(
        self,
        scope: Scope,
        store: ContractStore,
        heads: ContractHeadStore,
        jobs: JobDefinitionStore,
    ) -> None:
        self.scope = scope
        self._store = store
        self._heads = heads
        self._jobs = jobs

    def enabled_jobs(self, contract_id: str) -> Iterator[JobDefinition]:
        token: str | None = None
        while True:
            page = self._jobs.list(
                self.scope,
                filters={"contract_id": contract_id, "enabled": "true"},
                limit=_PAGE,
                page_token=token,
            )
            yield from (v.item for v in page.items)
            if not (token := page.next_token):
                return

    def iter_versions(self, contract_id: str, *, descending: bool) -> Iterator[ContractVersion]:
        token: str | None = None
        while True:
            page = self._store.list_versions(
                self.scope, contract_id, limit=_PAGE, page_token=token, descending=descending
            )
            yield from (v.item for v in page.items)
            if not (token := page.next_token):
                return

    def get(self, contract_id: str, version: str) -> Versioned[ContractVersion]:
        try:
            return self._store.get_version(self.scope, contract_id, version)
        except NotFoundError as exc:
            raise NotFoundError(
                f"contract {contract_id!r} version {version!r} not found in {self.scope}"
            ) from exc

    def find(self, contract_id: str, version: str) -> Versioned[ContractVersion] | None:
        try:
            return self._store.get_version(self.scope, contract_id, version)
        except NotFoundError:
            return None

    def find_head(self, contract_id: str) -> Versioned[ContractHead] | None:
        try:
            return self._heads.get(self.scope, contract_id)
        except NotFoundError:
            return None

    def highest(self, contract_id: str) -> Versioned[ContractVersion] | None:
        page = self._store.list_versions(self.scope, contract_id, limit=1, descending=True)
        return page.items[0] if page.items else None


def resolve_contract_ref(
    store: ContractStore,
    scope: Scope,
    contract_id: str,
    *,
    version: str | None = None,
    version_range: str | None = None,
) -> Versioned[ContractVersion]:
    """The version a reference means, with the revision it was read at.

    An exact ``version`` (whatever its status); else the highest non-retired
    version satisfying ``version_range`` (e.g. ``>=1.2.0,<2``); else the highest
    non-retired version. The one rule every caller (the contract registry's
    ``resolve`` and job definitions' references) follows.

    Raises:
        ValidationError: both ``version`` and ``version_range``, or a malformed range.
        NotFoundError: nothing matches; the message names the reference.
    """
    if version is not None and version_range is not None:
        raise ValidationError(
            "ambiguous reference", [Problem("version_range", "give version or range, not both")]
        )
    if version is not None:
        try:
            return store.get_version(scope, contract_id, version)
        except NotFoundError as exc:
            raise NotFoundError(
                f"contract {contract_id!r} version {version!r} not found in {scope}"
            ) from exc
    if version_range is not None:
        version_in_range("0.0.0", version_range)  # validates the range up front
    token: str | None = None
    while True:
        page = store.list_versions(
            scope, contract_id, limit=_PAGE, page_token=token, descending=True
        )
        for found in page.items:
            if found.item.status == "retired":
                continue
            if version_range is None or version_in_range(found.item.version, version_range):
                return found
        if not (token := page.next_token):
            break
    wanted = f" matching {version_range!r}" if version_range else ""
    raise NotFoundError(
        f"contract reference {contract_id!r}{wanted}: no non-retired version in {scope}"
    )
