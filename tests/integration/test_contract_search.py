"""``ContractRegistry.search`` and ``reindex_search`` on memory, filesystem and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.errors import ValidationError
from dq_metadata.scope import Scope
from dq_registries.domain.contracts import ContractRegistry
from dq_registries.domain.contracts._search import contract_texts
from dq_registries.domain.contracts.odcs import load_odcs
from dq_stores import ContractStore, DocumentBackend, JobDefinitionStore, MemoryBackend
from dq_stores.documents import ANY
from dq_stores.filesystem import FilesystemBackend
from dq_stores.sql import SqliteBackend
from dq_stores.typed import ContractHeadStore

SCOPE = Scope("acme", "prod")
EXAMPLES = Path(__file__).parents[1] / "data" / "odcs"


@pytest.fixture(params=["memory", "filesystem", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocumentBackend]:
    made: DocumentBackend
    if request.param == "memory":
        made = MemoryBackend()
    elif request.param == "filesystem":
        made = FilesystemBackend(tmp_path / "dq")
    else:
        made = SqliteBackend(f"sqlite:///{tmp_path}/dq.sqlite3")
    with made:
        yield made


def _registry(backend: DocumentBackend, scope: Scope = SCOPE) -> ContractRegistry:
    return ContractRegistry(
        scope, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
    )


@pytest.fixture
def registry(backend: DocumentBackend) -> ContractRegistry:
    return _registry(backend)


def contract(cid: str, version: str = "1.0.0", purpose: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": cid, "version": version,
        "status": "active", "name": f"{cid} contract",
        "description": {"purpose": purpose or f"All about {cid}."},
        "schema": [{"name": f"{cid}_table", "businessName": "Customer facts",
                    "properties": [{"name": "customerEmail", "description": "Where to write",
                                    "logicalType": "string"}]}],
        **extra,
    }  # fmt: skip


def _ids(registry: ContractRegistry, text: str, limit: int = 20) -> list[str]:
    out, token = [], None
    while True:
        page = registry.search(text, limit=limit, page_token=token)
        out += [hit.contract_id for hit in page.hits]
        if page.next_token is None:
            return out
        token = page.next_token


def test_finds_odcs_examples_by_their_texts(registry: ContractRegistry) -> None:
    for i, path in enumerate(sorted(EXAMPLES.glob("*.odcs.yaml"))):
        doc = load_odcs(path.read_text())
        if path.name != "all-full-example.odcs.yaml":
            doc["id"] = f"example-{i}"  # several examples share one id
        registry.publish(doc, actor="alice")
    full = registry.import_odcs((EXAMPLES / "all-full-example.odcs.yaml").read_text())
    for text in ("seller", "quantum", "predict sales", "payment metrics", "finance",
                 "transaction reference", "rcvr", "buyer information"):  # fmt: skip
        assert full.id in _ids(registry, text), text
    hit = registry.search("predict sales").hits[0]
    assert (hit.contract_id, hit.version) == (full.id, full.version)
    assert hit.summary == "Views built on top of the seller tables."


def test_one_hit_per_contract_for_its_highest_version(registry: ContractRegistry) -> None:
    registry.publish(contract("orders", "1.0.0", "alpha launch"), actor="a")
    registry.publish(contract("orders", "2.0.0", "beta launch"), actor="a")
    registry.publish(contract("refunds", "1.0.0", "beta refunds"), actor="a")
    assert _ids(registry, "alpha") == []
    hits = registry.search("beta").hits
    assert [(h.contract_id, h.version) for h in hits] == [("orders", "2.0.0"), ("refunds", "1.0.0")]
    assert _ids(registry, "launch") == ["orders"]
    # names and ids rank above descriptions
    assert _ids(registry, "refunds") == ["refunds"]
    assert registry.search("customer email").hits[0].name in ("orders contract", "refunds contract")


def test_scoped_to_the_registry(backend: DocumentBackend) -> None:
    _registry(backend).publish(contract("orders"), actor="a")
    for scope in (Scope("acme", "dev"), Scope("globex", "prod")):
        assert _registry(backend, scope).search("orders").hits == []


def test_pages(registry: ContractRegistry) -> None:
    for i in range(23):
        registry.publish(contract(f"c{i:02d}"), actor="a")
    whole = _ids(registry, "customer", limit=100)
    assert len(whole) == 23
    assert _ids(registry, "customer", limit=4) == whole
    with pytest.raises(ValidationError):
        registry.search("customer", limit=0)
    with pytest.raises(ValidationError):
        registry.search("   ")


def test_reindex_fills_heads_written_before_search(
    backend: DocumentBackend, registry: ContractRegistry
) -> None:
    registry.publish(contract("orders", "1.0.0", "legacy words"), actor="a")
    registry.publish(contract("refunds"), actor="a")
    heads = ContractHeadStore(backend)
    old = heads.get(SCOPE, "orders").item
    heads.put(SCOPE, old.model_copy(update={"search": None, "name": None, "summary": None}), ANY)
    assert _ids(registry, "legacy") == []
    versions = [(d.key, d.revision, d.sha256) for d in backend.iter_documents(SCOPE, "contract")]

    assert registry.reindex_search().updated == 1
    assert _ids(registry, "legacy") == ["orders"]
    assert heads.get(SCOPE, "orders").item == old
    assert registry.reindex_search() == type(registry.reindex_search())(2, 0)  # idempotent
    after = [(d.key, d.revision, d.sha256) for d in backend.iter_documents(SCOPE, "contract")]
    assert after == versions  # no contract version was touched


def test_contract_texts_cover_names_descriptions_and_properties(
    registry: ContractRegistry,
) -> None:
    full = registry.import_odcs((EXAMPLES / "all-full-example.odcs.yaml").read_text())
    title, body = contract_texts(full)
    assert {"seller", "my quantum", "tbl", "Core Payment Metrics"} <= set(title)
    assert "Predict sales over time" in body
    assert "transaction_reference_date" in body
    assert "Reference date for transaction" in body
