"""The examples in ``examples/`` run against the library as documented."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def clean_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("DQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_batch_job_records_a_run_on_the_filesystem_default(
    clean_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch_job = load("batch_job")
    good = clean_cwd / "orders.csv"
    good.write_text(
        "order_id,customer_id,order_date,amount,status,gift_wrap\n1,c1,2026-01-01,3.5,new,true\n"
    )
    assert batch_job.main([str(good)]) == 0
    assert (clean_cwd / ".dq").is_dir()
    assert batch_job.main([str(good)]) == 0
    assert "already recorded" in capsys.readouterr().out
    bad = clean_cwd / "bad.csv"
    bad.write_text("order_id,customer_id,order_date,amount,status,gift_wrap\nx,,,,,\n")
    assert batch_job.main([str(bad)]) == 1
    assert batch_job.main([str(good), "--tenant", "Not Valid"]) == 2


def test_fastapi_service_serves_the_latest_contract(clean_cwd: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    with warnings.catch_warnings():  # newer starlette prefers httpx2 for its test client
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    service = load("fastapi_service")
    from dq_registries.data import orders_contract

    with TestClient(service.app) as client:
        created = client.post("/acme/prod/contracts", json=orders_contract())
        assert created.status_code == 201
        latest = client.get("/acme/prod/datasets/orders/contract")
        assert latest.json()["version"] == "1.0.0"
        assert client.get("/globex/prod/datasets/orders/contract").status_code == 404
        assert client.get("/Bad/prod/runs").status_code == 400
