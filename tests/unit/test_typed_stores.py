from datetime import UTC, datetime, timedelta

import pytest

from dq_metadata import ConflictError, IntegrityError, NotFoundError, Scope, ValidationError
from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.models import ContractVersion, DataContract, JobDefinition, JobRun, Report
from dq_stores import (
    ANY,
    ActionProfileStore,
    ContractStore,
    DocumentWrite,
    IndexEntry,
    JobDefinitionStore,
    JobRunStore,
    MemoryBackend,
    ReportStore,
)

S = Scope("acme", "prod")
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def contract(
    version: str, status: str = "active", datasets: tuple[str, ...] = ("orders",)
) -> ContractVersion:
    doc = {"apiVersion": "v3.1.0", "kind": "DataContract", "id": "c1", "version": version,
           "status": status, "schema": [{"name": d} for d in datasets]}  # fmt: skip
    return ContractVersion(
        contract=DataContract.model_validate(doc), published_by="ann", published_at=NOW
    )


def job(job_id: str, tags: list[str]) -> JobDefinition:
    return JobDefinition.model_validate({
        "id": job_id, "name": job_id, "job_type": "validation",
        "contract": {"id": "c1", "version": "1.0.0"}, "dataset": "orders", "tags": tags,
        "on_failure": ["notify"],
    })  # fmt: skip


def test_latest_for_dataset_is_highest_semver_among_active_statuses() -> None:
    store = ContractStore(MemoryBackend())
    for v, status in [("1.9.0", "active"), ("1.10.0", "active"), ("2.0.0", "draft"),
                      ("1.11.0-rc.1", "active"), ("1.10.1", "production")]:  # fmt: skip
        store.create(S, contract(v, status))
    assert store.get_latest_for_dataset(S, "orders").item.version == "1.11.0-rc.1"
    latest = store.get_latest_for_dataset(S, "orders", statuses=("active", "production"))
    assert latest.item.version == "1.11.0-rc.1"
    assert (
        store.get_latest_for_dataset(S, "orders", statuses=("production",)).item.version == "1.10.1"
    )
    assert store.get_latest_for_dataset(S, "customers") is None
    assert store.get_latest_for_dataset(Scope("acme", "dev"), "orders") is None
    versions = [v.item.version for v in store.list_versions(S, "c1").items]
    assert versions == ["1.9.0", "1.10.0", "1.10.1", "1.11.0-rc.1", "2.0.0"]


def test_contract_store_requires_semver_and_round_trips_odcs_fields() -> None:
    store = ContractStore(MemoryBackend())
    with pytest.raises(ValidationError, match="version"):
        store.create(S, contract("v1.x"))
    cv = contract("1.0.0")
    cv.contract.__pydantic_extra__["customField"] = {"nested": [1, "x"]}  # type: ignore[index]
    store.create(S, cv)
    got = store.get_version(S, "c1", "1.0.0").item
    assert got.contract.to_odcs() == cv.contract.to_odcs()
    assert got.contract.to_odcs()["customField"] == {"nested": [1, "x"]}


def test_create_or_same_is_idempotent_and_conflicts_on_different_content() -> None:
    store = ContractStore(MemoryBackend())
    first, created = store.create_or_same(S, contract("1.0.0"))
    again, created_again = store.create_or_same(S, contract("1.0.0"))
    assert (created, created_again) == (True, False)
    assert again.revision == first.revision == 1
    with pytest.raises(ConflictError):
        store.create_or_same(S, contract("1.0.0", status="draft"))


def test_invalid_documents_raise_validation_error_with_field_path_and_write_nothing() -> None:
    backend = MemoryBackend()
    store = JobDefinitionStore(backend)
    with pytest.raises(ValidationError, match="job_type"):
        store.create(S, {"id": "j", "name": "j", "job_type": "nope", "contract": {"id": "c"},
                         "dataset": "d"})  # type: ignore[arg-type]  # fmt: skip
    assert list(backend.iter_scopes()) == []


def test_filters_only_on_indexed_fields() -> None:
    store = JobDefinitionStore(MemoryBackend())
    with pytest.raises(ValidationError, match="indexed fields"):
        store.list(S, filters={"name": "x"})


def test_list_by_tags_all_and_any() -> None:
    store = JobDefinitionStore(MemoryBackend())
    store.create(S, job("j1", ["nightly", "finance"]))
    store.create(S, job("j2", ["nightly"]))
    store.create(S, job("j3", ["finance"]))
    assert [v.key for v in store.list_by_tags(S, ["nightly", "finance"]).items] == ["j1"]
    keys = [v.key for v in store.list_by_tags(S, ["nightly", "finance"], match="any").items]
    assert keys == ["j1", "j2", "j3"]
    assert [v.key for v in store.list(S, filters={"action_profile": "notify"}).items] == [
        "j1",
        "j2",
        "j3",
    ]
    with pytest.raises(ValidationError):
        store.list_by_tags(S, [])


def test_action_profiles_by_type() -> None:
    store = ActionProfileStore(MemoryBackend())
    store.create(
        S, {"id": "q", "name": "Q", "action_type": "quarantine", "target": "quarantine_zone"}
    )  # type: ignore[arg-type]
    store.create(S, {"id": "n", "name": "N", "action_type": "send_notification", "channel": "email",
                     "recipients": ["dq@example.com"]})  # type: ignore[arg-type]  # fmt: skip
    assert [v.key for v in store.list_by_type(S, "quarantine").items] == ["q"]
    with pytest.raises(ValidationError, match="action_type"):
        store.create(S, {"id": "x", "name": "X", "action_type": "explode"})  # type: ignore[arg-type]


def test_runs_newest_first_across_environments_with_time_window_and_pages() -> None:
    store = JobRunStore(MemoryBackend())
    for i in range(6):
        env = "prod" if i % 2 else "dev"
        store.create(Scope("acme", env), JobRun(run_id=f"r{i}", job_id="j" if i < 4 else "k",
                                                created_at=NOW + timedelta(hours=i)))  # fmt: skip
    store.create(Scope("globex", "prod"), JobRun(run_id="x", job_id="j", created_at=NOW))
    page = store.list_by_tenant("acme", limit=4)
    assert [v.key for v in page.items] == ["r5", "r4", "r3", "r2"]
    rest = store.list_by_tenant("acme", limit=4, page_token=page.next_token)
    assert ([v.key for v in rest.items], rest.next_token) == (["r1", "r0"], None)
    assert [v.key for v in store.list_by_tenant("acme", "prod").items] == ["r5", "r3", "r1"]
    window = store.list_by_tenant(
        "acme", since=NOW + timedelta(hours=1), until=NOW + timedelta(hours=3)
    )
    assert [v.key for v in window.items] == ["r2", "r1"]
    assert [v.key for v in store.list_by_job(Scope("acme", "dev"), "j").items] == ["r2", "r0"]
    assert [v.key for v in store.list_by_status(Scope("acme", "dev"), "queued").items] == [
        "r4",
        "r2",
        "r0",
    ]


def test_reports_by_run_and_dataset() -> None:
    store = ReportStore(MemoryBackend())
    store.create(
        S, Report(report_id="rep1", run_id="r1", job_id="j", dataset="orders", created_at=NOW)
    )
    store.create(
        S, Report(report_id="rep2", run_id="r2", job_id="j", dataset="orders", created_at=NOW)
    )
    assert [v.key for v in store.list_for_run(S, "r1").items] == ["rep1"]
    assert [v.key for v in store.list_for_dataset(S, "orders").items] == ["rep2", "rep1"]


def test_stored_document_that_no_longer_validates_is_an_integrity_error() -> None:
    backend = MemoryBackend()
    body = canonical_json({"run_id": "r", "unexpected": True})
    backend.put(S, "job_run", DocumentWrite("r", body, content_hash(body), IndexEntry()), ANY)
    with pytest.raises(IntegrityError, match="no longer validates"):
        JobRunStore(backend).get(S, "r")
    with pytest.raises(NotFoundError):
        JobRunStore(backend).get(S, "missing")


def test_history_marks_deletions() -> None:
    store = ReportStore(MemoryBackend())
    rep = Report(report_id="rep", run_id="r", job_id="j", dataset="d", created_at=NOW)
    store.create(S, rep)
    store.delete(S, "rep", expected_revision=1)
    history = store.history(S, "rep")
    assert [(h.revision, h.deleted) for h in history] == [(1, False), (2, True)]
    assert history[0].item == rep
