"""Real version strings: shorthands map to semver precedence, kept as written;
numbers of any length keep their order on every lookup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.errors import ConflictError, ValidationError
from dq_metadata.scope import Scope
from dq_registries.domain.contracts import ContractRegistry
from dq_stores import ContractStore, DocumentBackend, JobDefinitionStore, MemoryBackend
from dq_stores.filesystem import FilesystemBackend

SCOPE = Scope("acme", "prod")


@pytest.fixture(params=["memory", "filesystem"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContractRegistry]:
    backend: DocumentBackend = (
        MemoryBackend() if request.param == "memory" else FilesystemBackend(tmp_path / "dq")
    )
    with backend:
        yield ContractRegistry(
            SCOPE, ContractStore(backend), job_definitions=JobDefinitionStore(backend)
        )


def contract(version: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "orders", "version": version,
        "status": "active", **extra,
        "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "string"}]}],
    }  # fmt: skip


def test_a_shorthand_version_is_published_and_kept_as_written(registry: ContractRegistry) -> None:
    registry.publish(contract("2.0"), actor="alice")

    for spelling in ("2.0", "2", "2.0.0", "v2.0.0", "V2"):
        assert registry.get("orders", spelling).contract.version == "2.0"
    assert registry.get("orders", "2.0").contract.to_odcs() == contract("2.0")


def test_two_spellings_of_one_version_are_the_same_version(registry: ContractRegistry) -> None:
    registry.publish(contract("2.0"), actor="alice")

    again = registry.publish(contract("2.0.0"), actor="bob")

    assert not again.created
    assert again.version.contract.version == "2.0"
    with pytest.raises(ConflictError, match="immutable"):
        registry.publish(contract("v2", name="other"), actor="bob")
    assert [v.contract.version for v in _versions(registry)] == ["2.0"]


def test_shorthands_order_by_semver_precedence(registry: ContractRegistry) -> None:
    for version in ("1", "1.1", "v1.1.1", "V2", "2.0.1-rc.1", "2.0.1"):
        registry.publish(contract(version), actor="alice")

    assert [v.contract.version for v in _versions(registry)] == [
        "1", "1.1", "v1.1.1", "V2", "2.0.1-rc.1", "2.0.1",
    ]  # fmt: skip
    assert registry.get_latest_for_dataset("orders").contract.version == "2.0.1"
    assert not registry.publish(contract("2.0"), actor="bob").created  # ≡ V2
    with pytest.raises(ConflictError, match="greater"):
        registry.publish(contract("1.5"), actor="alice")


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("1.0.0-99999999999999999999", "1.0.0-100000000000000000000"),
        ("99999999999999999999.0.0", "100000000000000000000.0.0"),
        ("1.99999999999999999999999", "1.100000000000000000000000"),
        ("1.0.0-rc.9", "1.0.0-rc.123456789012345678901234567890"),
    ],
)
def test_long_numbers_keep_their_order_on_every_lookup(
    registry: ContractRegistry, low: str, high: str
) -> None:
    registry.publish(contract(low), actor="alice")
    registry.publish(contract(high), actor="alice")

    assert registry.get_latest_for_dataset("orders").contract.version == high
    assert registry.get("orders").contract.version == high
    assert registry.resolve("orders").contract.version == high
    assert [v.contract.version for v in _versions(registry)] == [low, high]
    with pytest.raises(ConflictError):
        registry.publish(contract(low, name="late"), actor="alice")


@pytest.mark.parametrize("version", ["2.x", "latest", "1.0.0.0", "01.2", "v", "2.0 beta"])
def test_a_version_with_no_order_is_refused_showing_the_accepted_forms(
    registry: ContractRegistry, version: str
) -> None:
    with pytest.raises(ValidationError) as info:
        registry.publish(contract(version), actor="alice")

    assert [p.loc for p in info.value.problems] == ["version"]
    assert "2.0 (missing parts are 0)" in str(info.value)
    assert "v2.0.1" in str(info.value)
    assert _versions(registry) == []


def _versions(registry: ContractRegistry) -> list[Any]:
    return [v.item for v in registry.list(contract_id="orders").items]


@pytest.mark.parametrize("contract_id", ["\t", " spaced ", "a/b"])
def test_an_id_publish_accepts_is_one_get_accepts(
    registry: ContractRegistry, contract_id: str
) -> None:
    registry.publish({**contract("1.0.0"), "id": contract_id}, actor="alice")

    assert registry.get(contract_id, "1.0.0").contract.id == contract_id
    assert registry.get(contract_id).contract.id == contract_id


def test_an_id_with_a_lone_surrogate_is_refused_by_publish_and_get(
    registry: ContractRegistry,
) -> None:
    with pytest.raises(ValidationError):
        registry.publish({**contract("1.0.0"), "id": "x\ud83d"}, actor="alice")
    with pytest.raises(ValidationError):
        registry.get("x\ud83d")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("1.0.0", "1.0.0+b1"),
        ("1.0.0+b1", "1.0.0"),
        ("1.0.0+b1", "1.0.0+b2"),
        ("2.0-rc.1+x", "2.0.0-rc.1"),
    ],
)
def test_a_version_that_differs_only_in_build_metadata_is_the_same_version(
    registry: ContractRegistry, first: str, second: str
) -> None:
    """semver 2.0.0 §10: build metadata is ignored for precedence, so it is no new version."""
    registry.publish(contract(first), actor="alice")
    with pytest.raises(ConflictError) as raised:
        registry.publish(contract(second, description={"purpose": "rebuilt"}), actor="alice")
    message = str(raised.value)
    assert "same version" in message
    assert "build metadata" in message
    assert "§10" in message
    assert [v.item.contract.version for v in registry.list().items] == [first]


def test_ranges_compare_by_precedence_so_prereleases_inside_match(
    registry: ContractRegistry,
) -> None:
    """As docs/usage.md says: a prerelease is in a range when its precedence is."""
    for version in ("1.0.0", "1.5.0-beta.1", "2.0.0-rc.1"):
        registry.publish(contract(version), actor="alice")
    assert registry.resolve("orders", version_range=">=1.0.0,<2").version == "2.0.0-rc.1"
    assert registry.resolve("orders", version_range=">=1.0.0,<2.0.0-0").version == "1.5.0-beta.1"
    assert registry.resolve("orders", version_range="==1.0.0+anything").version == "1.0.0"
