"""Results of a SQL deployment live in its database: readable from any directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from dq_registries.wiring.context import DQContext

pytest.importorskip("sqlalchemy")

JOB = {
    "id": "nightly",
    "name": "nightly",
    "job_type": "validation",
    "contract": {"id": "orders", "version": "1.0.0"},
    "dataset": "orders",
}
CONTRACT = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}


def _finish_large_run(config: dict[str, Any]) -> str:
    with DQContext.from_config("acme", "prod", config) as dq:
        dq.contracts.publish(CONTRACT, actor="test")
        dq.jobs.save(JOB)
        run = dq.runs.start("nightly")
        dq.runs.mark_running(run.run_id)
        done = dq.runs.finish(run.run_id, "succeeded", results={"rows": list(range(100))})
        assert done.result_object is not None
        obj = done.result_object
        assert (obj.tenant, obj.environment, obj.run_id) == ("acme", "prod", run.run_id)
        return run.run_id


def _read(config: dict[str, Any], run_id: str) -> bytes:
    with DQContext.from_config("acme", "prod", config) as dq:
        return b"".join(dq.runs.open_results(run_id))


@pytest.mark.parametrize("where", ["first", "second"])
def test_sqlite_results_are_read_back_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    config = {
        "default_backend": "sqlite",
        "sqlite": {"url": f"sqlite:///{tmp_path / 'dq.sqlite3'}"},
        "results": {"inline_limit_bytes": 16},
    }
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    run_id = _finish_large_run(config)
    monkeypatch.chdir(tmp_path / where)
    assert _read(config, run_id).startswith(b'{"rows"')
    assert os.listdir(tmp_path / "first") == []  # nothing written to the working directory


@pytest.mark.postgres
def test_postgres_results_are_read_back_from_another_directory(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "default_backend": "postgres",
        "postgres": {"url": postgres_url, "pool_size": 2},
        "results": {"inline_limit_bytes": 16},
    }
    monkeypatch.chdir(tmp_path)
    run_id = _finish_large_run(config)
    assert os.listdir(tmp_path) == []
    monkeypatch.chdir(Path(tmp_path).parent)
    assert _read(config, run_id).startswith(b'{"rows"')
