"""Run documents written before logical results references (ADR 0012) still open.

Each test writes a run document by hand, the way an older version stored it —
``result_object: {"uri": …}`` with a file path, a blob URL with a SAS, a
``sql://`` or ``memory://`` name — and reads it through the registry.
"""

from __future__ import annotations

import io
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dq_metadata.canonical import canonical_json
from dq_metadata.errors import IntegrityError, ValidationError
from dq_metadata.models import JobRun
from dq_metadata.scope import Scope
from dq_registries.domain.runs import JobRunRegistry
from dq_stores.backend import DocumentBackend
from dq_stores.documents import MUST_NOT_EXIST, DocumentWrite
from dq_stores.filesystem import FilesystemBackend, FilesystemResultsStore
from dq_stores.keys import encode_key
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.typed import JobDefinitionStore, JobRunStore, ReportStore
from dq_stores.verify import VerifyCounts, verify

SCOPE = Scope("acme", "prod")
DATA = b'{"rows": [1, 2, 3]}'
SAS = "se=2030-01-01T00%3A00%3A00Z&sp=r&sv=2023-11-03&sr=c&sig=Q0FOQVJZLXNpZw%3D%3D"


def _file_uri(root: Path, ref: ResultRef) -> str:
    path = root / "acme" / "prod" / "results" / encode_key(ref.run_id) / encode_key(ref.name)
    return f"file://{path}"


def _memory_uri(_root: Path, ref: ResultRef) -> str:
    return f"memory://acme/prod/{quote(ref.run_id, safe='')}/{quote(ref.name, safe='')}"


Case = tuple[Callable[[Path], tuple[DocumentBackend, ResultsStore]], Callable[..., str]]
CASES: dict[str, Case] = {
    "filesystem": (
        lambda root: (FilesystemBackend(root), FilesystemResultsStore(root / "results")),
        lambda root, ref: _file_uri(root / "results", ref),
    ),
    "memory": (lambda _root: (MemoryBackend(), MemoryResultsStore()), _memory_uri),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, ...]]:
    build, uri_of = CASES[request.param]
    backend, results = build(tmp_path / "dq")
    with backend:
        runs = JobRunRegistry(
            SCOPE,
            JobRunStore(backend),
            reports=ReportStore(backend),
            job_definitions=JobDefinitionStore(backend),
            results=results,
        )
        yield backend, results, runs, lambda ref: uri_of(tmp_path / "dq", ref)


def write_old_run(
    backend: DocumentBackend, run_id: str, result_object: dict[str, Any] | None
) -> None:
    """Store a finished run exactly as a pre-ADR-0012 version wrote it."""
    run = JobRun.model_validate(
        {"run_id": run_id, "job_id": "nightly", "created_at": "2024-05-01T12:00:00Z"}
    )
    document = run.model_dump(mode="json") | {
        "status": "succeeded",
        "started_at": "2024-05-01T12:00:01Z",
        "finished_at": "2024-05-01T12:00:02Z",
    }
    if result_object is not None:
        document["result_object"] = result_object
    store = JobRunStore(backend)
    write = DocumentWrite.hashing(run_id, canonical_json(document), store.index_of(run))
    backend.put(SCOPE, store.kind, write, MUST_NOT_EXIST)


def _old(ref: ResultRef, uri: str) -> dict[str, Any]:
    return {"uri": uri, "size": ref.size, "sha256": ref.sha256, "content_type": ref.content_type}


def test_an_old_style_reference_opens_and_reads_as_a_logical_name(case: tuple[Any, ...]) -> None:
    backend, results, runs, uri_of = case
    ref = results.upload(SCOPE, "run-1", "results-0a1b.json", io.BytesIO(DATA), "application/json")
    write_old_run(backend, "run-1", _old(ref, uri_of(ref)))
    run = runs.get("run-1")
    assert run.result_object is not None
    assert ResultRef.of(run.result_object) == ref
    assert "uri" not in run.model_dump()["result_object"]
    assert b"".join(runs.open_results("run-1")) == DATA


def test_an_old_blob_url_with_a_sas_opens_without_the_sas(case: tuple[Any, ...]) -> None:
    backend, results, runs, _ = case
    ref = results.upload(SCOPE, "run-2", "results-2.json", io.BytesIO(DATA))
    blob = f"acme/prod/_results/{encode_key(ref.run_id)}/{encode_key(ref.name)}"
    url = f"https://acct.blob.core.windows.net/dq/{blob}?{SAS}"
    write_old_run(backend, "run-2", _old(ref, url))
    run = runs.get("run-2")
    assert "sig=" not in run.model_dump_json()
    assert b"".join(runs.open_results("run-2")) == DATA


def test_an_old_sql_reference_opens_on_any_store(case: tuple[Any, ...]) -> None:
    backend, results, runs, _ = case
    ref = results.upload(SCOPE, "run 3/x", "r.csv", io.BytesIO(DATA), "text/csv")
    uri = f"sql://acme/prod/{quote(ref.run_id, safe='')}/{quote(ref.name, safe='')}"
    write_old_run(backend, "run-3", _old(ref, uri))
    assert b"".join(runs.open_results("run-3")) == DATA


def test_an_old_reference_to_another_scope_is_refused(case: tuple[Any, ...]) -> None:
    backend, results, runs, _ = case
    ref = results.upload(Scope("globex", "prod"), "run-4", "r", io.BytesIO(DATA))
    write_old_run(backend, "run-4", _old(ref, "memory://globex/prod/run-4/r"))
    with pytest.raises(ValidationError):
        runs.open_results("run-4")


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://host/acme/prod/results/run/r",
        f"https://acct.blob.core.windows.net/dq/acme/prod/contract/h/orders?{SAS}",
        "file:///etc/passwd",
        "memory://acme/prod/only-run",
        "memory://../prod/run/r",
    ],
)
def test_an_unreadable_old_reference_is_an_error_that_does_not_quote_it(
    case: tuple[Any, ...], uri: str
) -> None:
    backend, _results, runs, _ = case
    write_old_run(backend, "run-5", {"uri": uri, "size": 1, "sha256": "0" * 64})
    with pytest.raises(IntegrityError, match="no longer validates") as caught:
        runs.get("run-5")
    chain = "".join(traceback.format_exception(caught.value))
    assert "old-style results reference" in chain
    assert "sig=" not in chain
    assert uri not in chain


# -- long names: the old uri holds only their digest (ADR 0012, "Long names") ----------
LONG_NAME = "résultats-" + "é" * 150 + ".json"  # its encoding is over MAX_NAME: a digest
LONG_RUN = "nightly" + "._" * 28  # a run id whose encoding is a digest too


@pytest.mark.parametrize("run_id", ["run-long", LONG_RUN])
def test_an_old_reference_to_a_long_name_opens_and_lists(
    case: tuple[Any, ...], run_id: str
) -> None:
    backend, results, runs, uri_of = case
    ref = results.upload(SCOPE, run_id, LONG_NAME, io.BytesIO(DATA), "application/json")
    write_old_run(backend, "run-ok", None)  # a neighbour: the listing must show both
    write_old_run(backend, run_id, _old(ref, uri_of(ref)))
    run = runs.get(run_id)
    assert run.result_object is not None
    assert run.result_object.run_id == run_id
    assert b"".join(runs.open_results(run_id)) == DATA
    assert sorted(r.item.run_id for r in runs.list().items) == sorted([run_id, "run-ok"])
    # once rewritten (here: by a state-changing call), the upgraded form reads back
    stored = JobRunStore(backend)
    stored.put(SCOPE, run)
    assert b"".join(runs.open_results(run_id)) == DATA


def test_a_run_that_no_longer_validates_is_named_by_the_listing(case: tuple[Any, ...]) -> None:
    backend, _results, runs, _ = case
    write_old_run(backend, "run-ok", None)
    write_old_run(backend, "run-bad", {"uri": "ftp://x/y", "size": 1, "sha256": "0" * 64})
    with pytest.raises(IntegrityError) as caught:
        runs.list()
    message = str(caught.value)
    assert "'run-bad'" in message
    assert "result_object" in message
    assert "repair or delete" in message
    assert "ftp://" not in message


def test_verify_checks_old_long_references_and_reports_unreadable_ones(
    case: tuple[Any, ...],
) -> None:
    backend, results, _runs, uri_of = case
    ref = results.upload(SCOPE, "run-long", LONG_NAME, io.BytesIO(DATA))
    write_old_run(backend, "run-long", _old(ref, uri_of(ref)))
    write_old_run(backend, "run-bad", {"uri": "ftp://x/y", "size": 1, "sha256": "0" * 64})
    counts = VerifyCounts()
    problems = list(verify(backend, SCOPE, results=results, counts=counts))
    assert [(p.code, p.key) for p in problems] == [("results", "run-bad")]
    assert counts.results == 1  # the long-named object was opened and checked
