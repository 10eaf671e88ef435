"""ContractRegistry on real backends: publishing, lifecycle, lookups, retire guard."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.errors import ConflictError, NotFoundError, ValidationError
from dq_metadata.models import ContractRef, JobDefinition
from dq_metadata.scope import Scope
from dq_registries.domain.contracts import (
    BreakingChangeError,
    ContractInUseError,
    ContractRegistry,
)
from dq_stores import ContractStore, DocumentBackend, JobDefinitionStore, MemoryBackend
from dq_stores.filesystem import FilesystemBackend

SCOPE = Scope("acme", "prod")
EXAMPLES = Path(__file__).parents[1] / "data" / "odcs"


@pytest.fixture(params=["memory", "filesystem"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    made: DocumentBackend = (
        MemoryBackend() if request.param == "memory" else FilesystemBackend(tmp_path / "dq")
    )
    with made:
        yield made


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def registry(backend: DocumentBackend) -> ContractRegistry:
    return ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend), clock=_Clock()
    )


def orders(version: str = "1.0.0", status: str = "active", **extra_field: Any) -> dict[str, Any]:
    props = [
        {"name": "order_id", "logicalType": "string", "required": True, "primaryKey": True},
        {"name": "amount", "logicalType": "number"},
    ]
    if extra_field:
        props.append({"name": "note", "logicalType": "string", **extra_field})
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "orders-contract",
        "version": version, "status": status,
        "schema": [{"name": "orders", "physicalType": "table", "properties": props}],
    }  # fmt: skip


def without_amount(version: str) -> dict[str, Any]:
    doc = orders(version)
    doc["schema"][0]["properties"].pop(1)
    return doc


# -- publishing --------------------------------------------------------------


def test_publish_stores_the_version_with_who_and_when(registry: ContractRegistry) -> None:
    result = registry.publish(orders(), actor="alice")

    assert result.created
    stored = registry.get("orders-contract", "1.0.0")
    assert stored.published_by == "alice"
    assert stored.contract.to_odcs() == orders()
    assert [(e.from_status, e.to_status, e.actor) for e in stored.lifecycle] == [
        (None, "active", "alice")
    ]


def test_republishing_identical_content_is_a_no_op(registry: ContractRegistry) -> None:
    first = registry.publish(orders(), actor="alice").version

    again = registry.publish(orders(), actor="bob")

    assert not again.created
    assert again.version == first
    assert registry.get("orders-contract").published_by == "alice"


def test_republishing_a_version_with_other_content_is_a_conflict(
    registry: ContractRegistry,
) -> None:
    registry.publish(orders(), actor="alice")

    with pytest.raises(ConflictError, match="immutable"):
        registry.publish(orders(description="x"), actor="bob")

    assert registry.get("orders-contract", "1.0.0").contract.to_odcs() == orders()


@pytest.mark.parametrize("version", ["latest", "01.0.0", "1.x", "1.0.0.0", "v", "2.0-"])
def test_a_version_with_no_defined_order_is_rejected_naming_the_field(
    registry: ContractRegistry, version: str
) -> None:
    with pytest.raises(ValidationError) as info:
        registry.publish(orders(version), actor="alice")

    assert [p.loc for p in info.value.problems] == ["version"]
    assert registry.list().items == []


def test_an_invalid_odcs_document_is_rejected_before_anything_is_written(
    registry: ContractRegistry,
) -> None:
    doc = orders()
    doc["schema"][0]["properties"][0]["required"] = "yes"

    with pytest.raises(ValidationError, match=r"\$\.schema\[0\]\.properties\[0\]\.required"):
        registry.publish(doc, actor="alice")
    with pytest.raises(ValidationError, match="actor"):
        registry.publish(orders(), actor=" ")

    assert registry.list().items == []


def test_a_new_version_must_be_greater_than_every_existing_one(registry: ContractRegistry) -> None:
    registry.publish(orders("1.10.0"), actor="alice")

    for lower in ("1.9.0", "1.10.0-rc.1", "0.1.0"):
        with pytest.raises(
            ConflictError, match=r"greater than the highest published version 1\.10\.0"
        ):
            registry.publish(orders(lower, description="d"), actor="alice")
    registry.publish(orders("1.10.1"), actor="alice")

    assert [v.item.version for v in registry.list().items] == ["1.10.0", "1.10.1"]


def test_a_breaking_change_without_a_major_bump_is_rejected_with_the_changes(
    registry: ContractRegistry,
) -> None:
    registry.publish(orders("1.0.0"), actor="alice")

    with pytest.raises(BreakingChangeError) as info:
        registry.publish(without_amount("1.1.0"), actor="alice")

    assert [(c.kind, c.path) for c in info.value.changes] == [
        ("field_removed", "schema[orders].properties[amount]")
    ]
    assert "schema[orders].properties[amount]" in str(info.value)
    with pytest.raises(NotFoundError):
        registry.get("orders-contract", "1.1.0")


def test_a_breaking_change_with_a_major_bump_is_published_with_its_changes(
    registry: ContractRegistry,
) -> None:
    registry.publish(orders("1.0.0"), actor="alice")

    result = registry.publish(without_amount("2.0.0"), actor="alice")

    assert result.created
    assert [c.severity for c in result.changes] == ["error"]
    assert result.version.forced is None


def test_a_forced_breaking_publish_records_who_when_why_and_what(
    registry: ContractRegistry,
) -> None:
    registry.publish(orders("1.0.0"), actor="alice")
    with pytest.raises(ValidationError, match="reason"):
        registry.publish(without_amount("1.1.0"), actor="bob", force=True)

    result = registry.publish(without_amount("1.1.0"), actor="bob", force=True, reason="hotfix")

    forced = result.version.forced
    assert forced is not None
    assert (forced.actor, forced.reason) == ("bob", "hotfix")
    assert forced.at.tzinfo is not None
    assert forced.changes == [
        {"kind": "field_removed", "severity": "error",
         "path": "schema[orders].properties[amount]", "message": "field removed"}
    ]  # fmt: skip
    assert registry.get("orders-contract", "1.1.0").forced == forced


def test_non_breaking_changes_need_no_major_bump(registry: ContractRegistry) -> None:
    registry.publish(orders("1.0.0"), actor="alice")

    result = registry.publish(orders("1.1.0", description="optional note"), actor="alice")

    assert result.created
    assert {c.severity for c in result.changes} == {"info"}


def test_status_outside_the_lifecycle_is_kept_as_written(registry: ContractRegistry) -> None:
    registry.publish(orders(status="in development"), actor="alice")

    assert registry.get("orders-contract").status == "in development"
    assert "status: in development" in registry.export_odcs("orders-contract", "1.0.0")


# -- lookups -------------------------------------------------------------------


def test_get_without_version_returns_the_highest_semver(registry: ContractRegistry) -> None:
    for version in ("1.9.0", "1.10.0", "2.0.0-rc.1"):
        registry.publish(orders(version), actor="alice")

    assert registry.get("orders-contract").version == "2.0.0-rc.1"
    with pytest.raises(NotFoundError, match="nope"):
        registry.get("nope")
    with pytest.raises(NotFoundError, match=r"3\.0\.0"):
        registry.get("orders-contract", "3.0.0")


def test_latest_for_dataset_is_the_newest_active_version(registry: ContractRegistry) -> None:
    registry.publish(orders("1.0.0"), actor="alice")
    registry.publish(orders("1.1.0"), actor="alice")
    registry.publish(orders("1.2.0", status="draft"), actor="alice")

    assert registry.get_latest_for_dataset("orders").version == "1.1.0"
    registry.deprecate("orders-contract", "1.1.0", actor="alice")
    assert registry.get_latest_for_dataset("orders").version == "1.0.0"
    registry.activate("orders-contract", "1.2.0", actor="alice")
    assert registry.get_latest_for_dataset("orders").version == "1.2.0"
    with pytest.raises(NotFoundError, match="refunds"):
        registry.get_latest_for_dataset("refunds")


def test_which_statuses_count_as_active_is_configuration(backend: DocumentBackend) -> None:
    default = ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    configured = ContractRegistry(
        SCOPE,
        ContractStore(backend),
        job_definitions=JobDefinitionStore(backend),
        active_statuses=("active", "production"),
    )
    default.publish(orders("1.0.0"), actor="alice")
    default.publish(orders("1.1.0", status="production"), actor="alice")

    assert default.get_latest_for_dataset("orders").version == "1.0.0"
    assert configured.get_latest_for_dataset("orders").version == "1.1.0"


def test_scopes_do_not_see_each_others_contracts(backend: DocumentBackend) -> None:
    ours = ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    theirs = ContractRegistry(
        Scope("other", "prod"), ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    ours.publish(orders(), actor="alice")

    with pytest.raises(NotFoundError):
        theirs.get_latest_for_dataset("orders")
    theirs.publish(orders("0.1.0"), actor="eve")  # their own history starts anywhere
    assert ours.get("orders-contract").version == "1.0.0"


def test_resolve_exact_range_and_floating_references(registry: ContractRegistry) -> None:
    for version in ("1.0.0", "1.4.0", "2.0.0"):
        registry.publish(orders(version), actor="alice")
    registry.deprecate("orders-contract", "2.0.0", actor="alice")
    registry.retire("orders-contract", "2.0.0", actor="alice")

    assert registry.resolve("orders-contract", version="2.0.0").version == "2.0.0"
    assert registry.resolve("orders-contract", version_range=">=1.0.0,<2").version == "1.4.0"
    assert registry.resolve("orders-contract").version == "1.4.0"
    with pytest.raises(NotFoundError, match=r"orders-contract.*>=3"):
        registry.resolve("orders-contract", version_range=">=3")
    with pytest.raises(ValidationError):
        registry.resolve("orders-contract", version_range="~1.0")
    with pytest.raises(ValidationError):
        registry.resolve("orders-contract", version="1.0.0", version_range=">=1")


def test_list_filters_by_dataset_status_and_contract(registry: ContractRegistry) -> None:
    registry.publish(orders("1.0.0"), actor="alice")
    registry.publish(orders("1.1.0", status="draft"), actor="alice")

    assert [v.item.version for v in registry.list(status="draft").items] == ["1.1.0"]
    assert len(registry.list(dataset="orders").items) == 2
    assert registry.list(contract_id="other").items == []
    page = registry.list(limit=1, descending=True)
    assert page.items[0].item.version == "1.1.0"
    assert page.next_token is not None


def test_export_round_trips_through_import(registry: ContractRegistry) -> None:
    text = (EXAMPLES / "all-full-example.odcs.yaml").read_text("utf-8")
    registry.publish(registry.import_odcs(text), actor="alice")

    for fmt in ("yaml", "json"):
        exported = registry.export_odcs("53581432-6c55-4ba2-a65f-72344a91553a", "1.1.0", fmt)
        assert registry.import_odcs(exported) == registry.import_odcs(text)
    with pytest.raises(ValidationError):
        registry.export_odcs("53581432-6c55-4ba2-a65f-72344a91553a", "1.1.0", "xml")  # type: ignore[arg-type]


# -- lifecycle -----------------------------------------------------------------


def test_transitions_record_actor_time_and_reason(registry: ContractRegistry) -> None:
    registry.publish(orders(status="draft"), actor="alice")

    registry.activate("orders-contract", "1.0.0", actor="bob", reason="reviewed")
    registry.deprecate("orders-contract", "1.0.0", actor="carol")
    registry.retire("orders-contract", "1.0.0", actor="dave", reason="replaced")

    history = registry.history("orders-contract", "1.0.0")
    assert [(e.from_status, e.to_status, e.actor, e.reason) for e in history] == [
        (None, "draft", "alice", "published"),
        ("draft", "active", "bob", "reviewed"),
        ("active", "deprecated", "carol", None),
        ("deprecated", "retired", "dave", "replaced"),
    ]
    assert [e.at for e in history] == sorted(e.at for e in history)
    assert registry.get("orders-contract").status == "retired"


@pytest.mark.parametrize(
    ("start", "target"),
    [("active", "retired"), ("active", "draft"), ("active", "active"), ("draft", "deprecated")],
)
def test_illegal_transitions_are_rejected_and_change_nothing(
    registry: ContractRegistry, start: str, target: str
) -> None:
    registry.publish(orders(status=start), actor="alice")

    with pytest.raises(ConflictError, match="illegal status transition"):
        registry.transition("orders-contract", "1.0.0", target, actor="bob")

    assert len(registry.history("orders-contract", "1.0.0")) == 1


def test_retired_is_final_and_unknown_targets_are_invalid(registry: ContractRegistry) -> None:
    registry.publish(orders(status="draft"), actor="alice")
    registry.retire("orders-contract", "1.0.0", actor="alice")

    with pytest.raises(ConflictError, match="final"):
        registry.activate("orders-contract", "1.0.0", actor="alice")
    with pytest.raises(ValidationError, match="to_status"):
        registry.transition("orders-contract", "1.0.0", "production", actor="alice")


def test_a_status_outside_the_lifecycle_can_enter_it(registry: ContractRegistry) -> None:
    registry.publish(orders(status="production"), actor="alice")

    registry.deprecate("orders-contract", "1.0.0", actor="alice")

    assert registry.get("orders-contract").status == "deprecated"


def test_republishing_after_a_status_change_is_still_a_no_op(registry: ContractRegistry) -> None:
    registry.publish(orders(status="draft"), actor="alice")
    registry.activate("orders-contract", "1.0.0", actor="alice")

    result = registry.publish(orders(status="draft"), actor="ci")

    assert not result.created
    assert result.version.status == "active"


def test_of_two_transitions_from_the_same_read_only_one_wins(backend: DocumentBackend) -> None:
    registry = ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    registry.publish(orders(), actor="alice")
    store = ContractStore(backend)
    read = store.get_version(SCOPE, "orders-contract", "1.0.0")
    registry.deprecate("orders-contract", "1.0.0", actor="alice")

    # A second writer that read before the first transition loses on the revision check.
    with pytest.raises(ConflictError):
        store.update(SCOPE, read.item, read.revision)
    assert registry.get("orders-contract").status == "deprecated"


# -- retire guard ------------------------------------------------------------------


def _job(job_id: str, *, enabled: bool = True, **ref: str) -> JobDefinition:
    return JobDefinition(
        id=job_id, name=job_id, job_type="validation", dataset="orders", enabled=enabled,
        contract=ContractRef(id="orders-contract", **ref),
    )  # fmt: skip


@pytest.fixture
def deprecated_versions(registry: ContractRegistry) -> ContractRegistry:
    for version in ("1.0.0", "1.5.0", "2.0.0"):
        registry.publish(orders(version), actor="alice")
        registry.deprecate("orders-contract", version, actor="alice")
    return registry


def test_retiring_a_version_enabled_jobs_use_is_refused_with_their_ids(
    backend: DocumentBackend, deprecated_versions: ContractRegistry
) -> None:
    jobs = JobDefinitionStore(backend)
    jobs.put(SCOPE, _job("exact", version="1.0.0"))
    jobs.put(SCOPE, _job("ranged", version_range=">=1.0.0,<2"))
    jobs.put(SCOPE, _job("disabled", enabled=False, version="1.5.0"))
    jobs.put(SCOPE, _job("newest", version_range=">=2"))

    with pytest.raises(ContractInUseError) as info:
        deprecated_versions.retire("orders-contract", "1.0.0", actor="alice")
    assert info.value.job_ids == ("exact", "ranged")
    with pytest.raises(ContractInUseError, match="newest"):
        deprecated_versions.retire("orders-contract", "2.0.0", actor="alice")

    jobs.put(SCOPE, _job("ranged", version_range=">=1.0.0,<1.5.0"))
    deprecated_versions.retire("orders-contract", "1.5.0", actor="alice")
    assert deprecated_versions.get("orders-contract", "1.5.0").status == "retired"
    assert deprecated_versions.get("orders-contract", "1.0.0").status == "deprecated"


# -- concurrency ---------------------------------------------------------------------


def test_concurrent_publishes_keep_versions_increasing(backend: DocumentBackend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    registry = ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    registry.publish(orders("1.0.0"), actor="alice")
    versions = [f"1.{minor}.0" for minor in range(1, 9)]

    def publish(version: str) -> str:
        try:
            registry.publish(orders(version), actor="alice")
        except ConflictError:
            return "refused"
        return "published"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = dict(zip(versions, pool.map(publish, versions), strict=True))

    published = [v.item for v in registry.list().items]
    # Publication order (published_at) must agree with semver order: no lower version
    # ever lands after a higher one.
    by_time = sorted(published, key=lambda cv: (cv.published_at, cv.version))
    assert [cv.version for cv in by_time] == [cv.version for cv in published]
    assert {cv.version for cv in published} == {"1.0.0"} | {
        v for v, outcome in outcomes.items() if outcome == "published"
    }


def test_a_registry_has_no_hidden_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError):
        ContractRegistry(SCOPE)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ContractRegistry(SCOPE, ContractStore(FilesystemBackend(tmp_path)))  # type: ignore[call-arg]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_constructor_arguments_are_validated() -> None:
    backend = MemoryBackend()
    jobs = JobDefinitionStore(backend)
    with pytest.raises(ValidationError):
        ContractRegistry("acme/prod", ContractStore(backend), job_definitions=jobs)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ContractRegistry(SCOPE, ContractStore(backend), job_definitions=jobs, active_statuses=())


def test_documents_are_not_shared_between_calls(registry: ContractRegistry) -> None:
    doc = orders()
    registry.publish(doc, actor="alice")
    before = copy.deepcopy(doc)
    doc["schema"][0]["name"] = "mutated"

    assert registry.get("orders-contract").contract.to_odcs() == before


class _InterleavingClock:
    """A clock that runs ``action`` once, the first time the registry asks for the time.

    The registry asks after it has read and checked the current state and before
    it writes, so ``action`` is another writer slipping into that window.
    """

    def __init__(self, action: Any) -> None:
        self._action = action
        self._done = False

    def __call__(self) -> datetime:
        if not self._done:
            self._done = True
            self._action()
        return datetime.now(UTC)


def test_a_higher_version_published_mid_publish_makes_the_lower_one_fail(
    backend: DocumentBackend,
) -> None:
    other = ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    other.publish(orders("1.0.0"), actor="alice")
    racing = ContractRegistry(
        SCOPE,
        ContractStore(backend),
        job_definitions=JobDefinitionStore(backend),
        clock=_InterleavingClock(lambda: other.publish(orders("1.2.0"), actor="bob")),
    )

    with pytest.raises(ConflictError, match=r"greater than the highest published version 1\.2\.0"):
        racing.publish(orders("1.1.0"), actor="alice")

    assert [v.item.version for v in other.list().items] == ["1.0.0", "1.2.0"]


def test_a_transition_that_lost_a_race_is_refused(backend: DocumentBackend) -> None:
    other = ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    other.publish(orders(status="draft"), actor="alice")
    racing = ContractRegistry(
        SCOPE,
        ContractStore(backend),
        job_definitions=JobDefinitionStore(backend),
        clock=_InterleavingClock(lambda: other.retire("orders-contract", "1.0.0", actor="bob")),
    )

    with pytest.raises(ConflictError, match="changed concurrently"):
        racing.activate("orders-contract", "1.0.0", actor="alice")

    history = other.history("orders-contract", "1.0.0")
    assert [e.to_status for e in history] == ["draft", "retired"]


def test_a_publish_interrupted_after_claiming_the_head_can_be_completed(
    backend: DocumentBackend,
) -> None:
    from dq_metadata.models import ContractHead
    from dq_stores import ContractHeadStore

    registry = ContractRegistry(
        SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )
    registry.publish(orders("1.0.0"), actor="alice")
    head = ContractHeadStore(backend).get(SCOPE, "orders-contract")
    claimed = ContractHead(
        contract_id="orders-contract", latest_version="1.1.0", updated_at=datetime.now(UTC)
    )
    ContractHeadStore(backend).update(SCOPE, claimed, head.revision)  # the crash left only this

    with pytest.raises(ConflictError, match="greater"):
        registry.publish(orders("1.0.5"), actor="alice")
    assert registry.publish(orders("1.1.0"), actor="alice").created


def test_publishing_a_mapping_with_a_yaml_date_names_its_path() -> None:
    """``yaml.safe_load`` (YAML 1.1) turns ``2024-01-01`` into a ``date``: the publish
    refuses it with the JSON path, not a raw TypeError/ValueError."""
    import datetime

    from dq_registries import DQContext

    document = {
        "apiVersion": "v3.0.2",
        "kind": "DataContract",
        "id": "dated",
        "version": "1.0.0",
        "status": "active",
        "customProperties": [{"property": "since", "value": datetime.date(2024, 1, 1)}],
    }
    with DQContext.create("acme", "prod", MemoryBackend()) as ctx:
        with pytest.raises(ValidationError) as caught:
            ctx.contracts.publish(document, actor="ann")
        assert "customProperties[0].value" in str(caught.value)
        assert ctx.contracts.list().items == []
