"""Canary: a known PostgreSQL password, Azure account key and SAS signature are in
the configuration; a run of the conformance and registry suites against them must
never show one in a message, ``str``/``repr``, chained traceback or DEBUG log record.

The CLI half (subprocess output) is ``tests/e2e/test_secret_canary_cli.py``.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tests.support.canary import CanaryAzure, CanaryPostgres, Recorder

from dq_metadata.errors import DQError, NotFoundError
from dq_metadata.scope import Scope
from dq_registries.wiring.context import DQContext
from dq_stores.backend import DocumentBackend
from dq_stores.keys import encode_key
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.testing.crud import CrudConformance
from dq_stores.testing.results import ResultsStoreConformance

sql = pytest.importorskip("dq_stores.sql")
azure_blob = pytest.importorskip("dq_stores.azure_blob")

SCOPE = Scope("acme", "prod")
CONTRACT = {
    "apiVersion": "v3.0.2",
    "kind": "DataContract",
    "id": "orders",
    "version": "1.0.0",
    "status": "active",
    "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "integer"}]}],
}
JOB = {
    "id": "nightly",
    "name": "nightly",
    "job_type": "validation",
    "contract": {"id": "orders", "version": "1.0.0"},
    "dataset": "orders",
}


def _secrets(pg: CanaryPostgres | None, az: CanaryAzure | None) -> list[str]:
    found = [pg.password] if pg else []
    return found + ([az.account_key, az.signature] if az else [])


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    marked = request.node.get_closest_marker
    pg = request.getfixturevalue("canary_postgres") if marked("postgres") else None
    az = request.getfixturevalue("canary_azure") if marked("azure") else None
    recording = Recorder(_secrets(pg, az))
    with recording.active():
        yield recording
    recording.assert_clean()


# -- conformance suites over the canary credentials ------------------------------------
@pytest.mark.postgres
@pytest.mark.usefixtures("recorder")
class TestCanaryPostgresResults(ResultsStoreConformance):
    @pytest.fixture
    def results_store(self, canary_postgres: CanaryPostgres) -> Iterator[ResultsStore]:
        store = sql.SqlResultsStore(canary_postgres.url)
        yield store
        store.close()

    @pytest.fixture
    def reopened_results_store(self, canary_postgres: CanaryPostgres) -> Iterator[ResultsStore]:
        store = sql.SqlResultsStore(canary_postgres.url.split("?", 1)[0])  # user-info only
        yield store
        store.close()

    @pytest.fixture
    def store_secrets(self, canary_postgres: CanaryPostgres) -> list[str]:
        return [canary_postgres.password, canary_postgres.database]

    def legacy_uri(self, store: ResultsStore, ref: ResultRef) -> str:
        run, name = quote(ref.run_id, safe=""), quote(ref.name, safe="")
        return f"sql://{ref.scope.tenant}/{ref.scope.environment}/{run}/{name}"


@pytest.mark.postgres
@pytest.mark.usefixtures("recorder")
class TestCanaryPostgresDocuments(CrudConformance):
    @pytest.fixture
    def backend(self, canary_postgres: CanaryPostgres) -> Iterator[DocumentBackend]:
        with sql.SqlBackend(canary_postgres.url) as backend:
            yield backend

    @pytest.fixture
    def backend_factory(self, canary_postgres: CanaryPostgres) -> Callable[[], DocumentBackend]:
        return functools.partial(sql.SqlBackend, canary_postgres.url)


@pytest.mark.azure
@pytest.mark.usefixtures("recorder")
class TestCanaryAzureResults(ResultsStoreConformance):
    @pytest.fixture
    def results_store(self, canary_azure: CanaryAzure) -> Iterator[ResultsStore]:
        store = azure_blob.AzureBlobResultsStore(
            canary_azure.container,
            connection_string=canary_azure.sas_connection_string,
            block_size=1024 * 1024,
        )
        yield store
        store.close()

    @pytest.fixture
    def reopened_results_store(self, canary_azure: CanaryAzure) -> Iterator[ResultsStore]:
        store = azure_blob.AzureBlobResultsStore(
            canary_azure.container, connection_string=canary_azure.account_key_connection_string
        )
        yield store
        store.close()

    @pytest.fixture
    def store_secrets(self, canary_azure: CanaryAzure) -> list[str]:
        return [canary_azure.account_key, canary_azure.signature, "sig="]

    def legacy_uri(self, store: ResultsStore, ref: ResultRef) -> str:
        container = store._container  # type: ignore[attr-defined]
        name = f"acme/prod/_results/{encode_key(ref.run_id)}/{encode_key(ref.name)}"
        sas = container.url.split("?", 1)[1]  # the client's SAS, as old references kept it
        return f"{container.url.split('?', 1)[0].rstrip('/')}/{quote(name)}?{sas}"


@pytest.mark.azure
@pytest.mark.usefixtures("recorder")
class TestCanaryAzureDocuments(CrudConformance):
    @pytest.fixture
    def backend(self, canary_azure: CanaryAzure) -> Iterator[DocumentBackend]:
        with azure_blob.AzureBlobBackend(
            canary_azure.container, connection_string=canary_azure.sas_connection_string
        ) as backend:
            yield backend


# -- registries over a deployment: documents on PostgreSQL, results on Azure (SAS) -----
def canary_config(pg: CanaryPostgres, az: CanaryAzure) -> dict[str, Any]:
    return {
        "tenant": "acme",
        "environment": "prod",
        "default_backend": "postgres",
        "postgres": {"url": pg.url},
        "stores": {"results": "azure_blob"},
        "azure_blob": {"container": az.container, "connection_string": az.sas_connection_string},
        "results": {"inline_limit_bytes": 16},
    }


def exercise_registries(config: dict[str, Any], recorder: Recorder) -> str:
    """Publish, run, finish with a stored result, read back; provoke the usual errors."""
    with DQContext.from_config("acme", "prod", config) as dq:
        recorder.add(dq, dq.contracts, dq.jobs, dq.runs, dq.runs.results)
        recorder.add(dq.contracts.publish(CONTRACT, actor="canary"), dq.jobs.save(JOB))
        run = dq.runs.start("nightly")
        dq.runs.mark_running(run.run_id)
        done = dq.runs.finish(run.run_id, "succeeded", results={"rows": list(range(500))})
        assert done.result_object is not None
        recorder.add(done, done.model_dump_json(), dq.runs.get(run.run_id))
        recorder.add(b"".join(dq.runs.open_results(run.run_id)))
        recorder.add(dq.runs.list().items)
        for provoke in (
            lambda: dq.runs.get("no-such-run"),
            lambda: dq.runs.cancel(run.run_id),
            lambda: dq.jobs.get("no-such-job"),
            lambda: dq.runs.finish("no-such-run", "succeeded"),
        ):
            with pytest.raises(DQError) as caught:
                provoke()
            recorder.add(caught.value)
        return run.run_id


@pytest.mark.postgres
@pytest.mark.azure
def test_registries_never_show_the_canaries(
    canary_postgres: CanaryPostgres, canary_azure: CanaryAzure, recorder: Recorder
) -> None:
    run_id = exercise_registries(canary_config(canary_postgres, canary_azure), recorder)
    assert recorder.seen > 20
    assert any("sig=***" in text or "REDACTED" in text for _, text in recorder.all_text()), (
        "the SDK logged no request URL at DEBUG: this canary would not notice a leak"
    )
    # the reference survives a rotated SAS: read back with the account key instead
    rotated = canary_config(canary_postgres, canary_azure)
    rotated["azure_blob"]["connection_string"] = canary_azure.account_key_connection_string
    with DQContext.from_config("acme", "prod", rotated) as dq:
        assert b"".join(dq.runs.open_results(run_id)).startswith(b'{"rows"')


@pytest.mark.postgres
def test_a_refused_login_shows_neither_password(
    canary_postgres: CanaryPostgres, recorder: Recorder, tmp_path: Path
) -> None:
    if not canary_postgres.enforced:
        pytest.skip("the server was not started by this session: trust auth, no password check")
    wrong = "Wr0ng-canary-pw-31337"
    recorder.secrets.append(wrong)
    url = canary_postgres.url.replace(quote(canary_postgres.password, safe=""), wrong)
    with pytest.raises(DQError) as caught:
        sql.SqlBackend(url, retry_attempts=1)
    recorder.add(caught.value)
    with sql.SqlBackend(canary_postgres.url) as backend:
        recorder.add(backend)
        assert "***" in repr(backend)
        with pytest.raises(NotFoundError):
            backend.get(SCOPE, "contract", "missing")
    store = sql.SqlResultsStore(canary_postgres.url)
    try:
        recorder.add(store, store.upload(SCOPE, "r", "n", io.BytesIO(b"x")))
    finally:
        store.close()
