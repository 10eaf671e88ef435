"""The container on real services: contracts on PostgreSQL, run results on Azure Blob."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dq_metadata.scope import Scope
from dq_registries.wiring.container import build_container
from dq_registries.wiring.context import DQContext

pytestmark = [pytest.mark.postgres, pytest.mark.azure]

SCOPE = Scope("acme", "prod")
CONTRACT: dict[str, Any] = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}


def test_contracts_on_postgres_and_results_on_azure_by_config_alone(
    postgres_url: str, azure_connection_string: str, azure_container: str, tmp_path: Path
) -> None:
    config = {
        "default_backend": "filesystem",
        "filesystem": {"root": str(tmp_path)},
        "stores": {
            "contracts": "postgres",
            "job_definitions": "postgres",
            "action_profiles": "postgres",
            "results": "azure_blob",
        },
        "postgres": {"url": postgres_url, "pool_size": 2},
        "azure_blob": {"container": azure_container, "connection_string": azure_connection_string},
        "results": {"inline_limit_bytes": 16},
    }
    container = build_container(config)
    container.init_resources()
    assert not hasattr(container, "sqlite_backend")
    assert type(container.contracts_backend()).__name__ == "PostgresBackend"
    assert type(container.job_runs_backend()).__name__ == "FilesystemBackend"
    assert type(container.results_store()).__name__ == "AzureBlobResultsStore"
    with DQContext.from_container(container, SCOPE) as dq:
        dq.contracts.publish(CONTRACT, actor="test")
        dq.jobs.save(
            {
                "id": "j",
                "name": "j",
                "job_type": "validation",
                "contract": {"id": "orders", "version": "1.0.0"},
                "dataset": "orders",
            }
        )
        run = dq.runs.start("j")
        dq.runs.mark_running(run.run_id)
        done = dq.runs.finish(run.run_id, "succeeded", results={"rows": list(range(50))})
        assert done.result_object is not None
        assert b"".join(dq.runs.open_results(run.run_id)).startswith(b"{")
    container.shutdown_resources()

    reopened = build_container(config)
    with DQContext.from_container(reopened, SCOPE) as dq:
        assert dq.contracts.get_latest_for_dataset("orders").version == "1.0.0"
        assert dq.runs.get(run.run_id).result_object == done.result_object
    reopened.shutdown_resources()
