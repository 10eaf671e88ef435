"""DQContext: one scope's registries, the filesystem default, and what it closes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.errors import InvalidScopeError, NotFoundError
from dq_metadata.scope import Scope
from dq_registries import DQContext
from dq_stores.filesystem import FilesystemBackend
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore


def contract(contract_id: str = "orders") -> dict[str, Any]:
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": contract_id,
        "version": "1.0.0",
        "status": "active",
        "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
    }


class RecordingBackend(MemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DQ_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_exposes_the_four_registries_bound_to_its_scope() -> None:
    with DQContext.create("acme", "prod", backend=MemoryBackend()) as dq:
        assert dq.scope == Scope("acme", "prod")
        for registry in (dq.contracts, dq.jobs, dq.actions, dq.runs):
            assert registry.scope == dq.scope


def test_contexts_over_one_backend_never_see_each_others_scope() -> None:
    backend = MemoryBackend()
    acme = DQContext.create("acme", "prod", backend=backend)
    globex = DQContext.create("globex", "prod", backend=backend)
    acme_dev = DQContext.create("acme", "dev", backend=backend)
    acme.contracts.publish(contract(), actor="test")
    assert acme.contracts.get("orders").version == "1.0.0"
    for other in (globex, acme_dev):
        with pytest.raises(NotFoundError):
            other.contracts.get("orders")


def test_without_a_backend_it_uses_the_filesystem_default(in_tmp_cwd: Path) -> None:
    with DQContext.create("acme", "prod") as dq:
        dq.contracts.publish(contract(), actor="test")
    assert (in_tmp_cwd / ".dq").is_dir()
    with DQContext.create("acme", "prod", backend=FilesystemBackend(in_tmp_cwd / ".dq")) as dq:
        assert dq.contracts.get("orders").version == "1.0.0"


def test_a_given_backend_uses_exactly_the_given_results_store() -> None:
    results = MemoryResultsStore()
    with DQContext.create("acme", "prod", backend=MemoryBackend(), results=results) as dq:
        assert dq.runs.results is results
    # No adapter type is inspected: without a results store, results stay inline only.
    with DQContext.create("acme", "prod", backend=MemoryBackend()) as dq:
        assert dq.runs.results is None


def test_a_bad_scope_is_refused_before_anything_is_opened(in_tmp_cwd: Path) -> None:
    with pytest.raises(InvalidScopeError):
        DQContext.create("ACME", "prod")
    with pytest.raises(InvalidScopeError):
        DQContext.create("acme", "../prod")
    with pytest.raises(InvalidScopeError):
        DQContext.from_config("acme", "", {"default_backend": "memory"})
    assert os.listdir(in_tmp_cwd) == []


def test_closes_what_it_created_but_not_what_it_was_given() -> None:
    given = RecordingBackend()
    with DQContext.create("acme", "prod", backend=given):
        pass
    assert given.closed == 0


def test_closing_twice_is_harmless(in_tmp_cwd: Path) -> None:
    dq = DQContext.create("acme", "prod")
    dq.close()
    dq.close()


def test_from_config_accepts_a_yaml_path(tmp_path: Path) -> None:
    path = tmp_path / "dq.yaml"
    path.write_text(f"default_backend: filesystem\nfilesystem: {{root: '{tmp_path / 's'}'}}\n")
    with DQContext.from_config("acme", "prod", path) as dq:
        dq.contracts.publish(contract(), actor="test")
    assert (tmp_path / "s").is_dir()


def test_repr_names_the_scope() -> None:
    assert repr(DQContext.create("acme", "prod", backend=MemoryBackend())) == "DQContext(acme/prod)"


def test_importing_the_package_loads_no_driver_or_container() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dq_registries; "
        "print(sorted(m for m in ('sqlalchemy', 'azure.storage.blob', 'dependency_injector',"
        " 'typer') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
