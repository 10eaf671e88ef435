"""Conformance for ``ResultsStore`` adapters: streamed, hash-verified objects.

Subclasses supply ``results_store`` (an empty store) and, for the logical-reference
tests (ADR 0012), ``reopened_results_store`` (a *new* instance over the same
objects reached with other credentials or another spelling of its location),
``store_secrets`` (strings a reference must never contain: credentials, root
paths, account URLs) and :meth:`ResultsStoreConformance.legacy_uri` (the
old-style ``uri`` this adapter wrote before logical references). Stores must
list every object they hold (``iter_objects``) under its original name, however
long (``results_names``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Iterator

import pytest

from dq_metadata.errors import IntegrityError, NotFoundError, ValidationError
from dq_metadata.models import JobRun
from dq_metadata.scope import Scope
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.testing.results_names import ResultNamesConformance, job_run

SCOPE = Scope("acme", "prod")
OTHER = Scope("globex", "prod")


def _chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    sent = 0
    n = 0
    while sent < total:
        chunk = bytes([n % 251]) * min(size, total - sent)
        sent += len(chunk)
        n += 1
        yield chunk


class ResultsStoreConformance(ResultNamesConformance):
    """Subclass and supply a ``results_store`` fixture yielding an empty store.

    Includes :class:`~dq_stores.testing.results_names.ResultNamesConformance`: names
    of any length and script are listed, opened and deleted by name.
    """

    @pytest.fixture
    def results_store(self) -> ResultsStore:
        raise NotImplementedError("subclasses provide a results_store fixture")

    @pytest.fixture
    def reopened_results_store(self, results_store: ResultsStore) -> ResultsStore:
        """A new store over the same objects, with other credentials where there are any."""
        raise NotImplementedError("subclasses provide a reopened_results_store fixture")

    @pytest.fixture
    def store_secrets(self) -> list[str]:
        """Credentials and locations of ``results_store`` that no reference may carry."""
        return []

    def test_upload_bytes_from_file_and_read_back(self, results_store: ResultsStore) -> None:
        data = b'{"rows": 3}' * 1000
        ref = results_store.upload(
            SCOPE, "run-1", "results.json", io.BytesIO(data), "application/json"
        )
        assert (ref.size, ref.sha256, ref.content_type) == (
            len(data),
            hashlib.sha256(data).hexdigest(),
            "application/json",
        )
        assert b"".join(results_store.open(SCOPE, ref)) == data

    def test_upload_streams_from_an_iterator(self, results_store: ResultsStore) -> None:
        total = 5 * 1024 * 1024 + 17
        digest = hashlib.sha256()
        for chunk in _chunks(total):
            digest.update(chunk)
        ref = results_store.upload(SCOPE, "run-2", "big.bin", _chunks(total))
        assert (ref.size, ref.sha256) == (total, digest.hexdigest())
        check = hashlib.sha256()
        received = 0
        for chunk in results_store.open(SCOPE, ref):
            assert len(chunk) <= 16 * 1024 * 1024
            check.update(chunk)
            received += len(chunk)
        assert (received, check.hexdigest()) == (total, digest.hexdigest())

    def test_empty_object_round_trips(self, results_store: ResultsStore) -> None:
        ref = results_store.upload(SCOPE, "run-3", "empty", iter([]))
        assert ref.size == 0
        assert b"".join(results_store.open(SCOPE, ref)) == b""

    def test_reupload_replaces_and_hostile_names_stay_inside(
        self, results_store: ResultsStore
    ) -> None:
        first = results_store.upload(SCOPE, "run/../4", "../../r.json", io.BytesIO(b"one"))
        second = results_store.upload(SCOPE, "run/../4", "../../r.json", io.BytesIO(b"two!"))
        assert (first.run_id, first.name) == (second.run_id, second.name)
        assert b"".join(results_store.open(SCOPE, second)) == b"two!"
        other = results_store.upload(SCOPE, "RUN/../4", "../../r.json", io.BytesIO(b"case"))
        assert b"".join(results_store.open(SCOPE, other)) == b"case"
        assert b"".join(results_store.open(SCOPE, second)) == b"two!"

    def test_ref_from_another_scope_is_refused(self, results_store: ResultsStore) -> None:
        ref = results_store.upload(SCOPE, "run-5", "r", io.BytesIO(b"secret"))
        with pytest.raises(ValidationError):
            list(results_store.open(OTHER, ref))
        with pytest.raises(ValidationError):
            results_store.delete(OTHER, ref)
        assert b"".join(results_store.open(SCOPE, ref)) == b"secret"

    def test_delete_then_open_raises_not_found(self, results_store: ResultsStore) -> None:
        ref = results_store.upload(SCOPE, "run-6", "r", io.BytesIO(b"x"))
        results_store.delete(SCOPE, ref)
        results_store.delete(SCOPE, ref)  # idempotent
        with pytest.raises(NotFoundError):
            list(results_store.open(SCOPE, ref))

    def test_bad_names_are_rejected(self, results_store: ResultsStore) -> None:
        for run_id, name in (("", "r"), ("run", ""), ("a\x00", "r"), ("run", "r\x00")):
            with pytest.raises(ValidationError):
                results_store.upload(SCOPE, run_id, name, io.BytesIO(b"x"))

    def test_forged_ref_with_wrong_hash_fails_integrity(self, results_store: ResultsStore) -> None:
        ref = results_store.upload(SCOPE, "run-7", "r", io.BytesIO(b"abc"))
        for forged in (
            dataclasses.replace(ref, sha256="0" * 64),
            dataclasses.replace(ref, size=ref.size + 1),
        ):
            with pytest.raises(IntegrityError):
                b"".join(results_store.open(SCOPE, forged))

    # -- logical references (ADR 0012) -------------------------------------------
    def test_references_are_logical_names_without_location_or_credential(
        self, results_store: ResultsStore, store_secrets: list[str]
    ) -> None:
        ref = results_store.upload(SCOPE, "run-8", "out.json", iter([b"{}"]), "application/json")
        assert ref == ResultRef(
            SCOPE, "run-8", "out.json", 2, hashlib.sha256(b"{}").hexdigest(), "application/json"
        )
        stored = ref.to_object().model_dump_json()
        for text in (stored, repr(ref), str(ref)):
            assert "://" not in text
            for secret in store_secrets:
                assert secret not in text
        assert ResultRef.of(ref.to_object()) == ref

    def test_references_open_through_a_new_store_with_other_credentials(
        self, results_store: ResultsStore, reopened_results_store: ResultsStore
    ) -> None:
        ref = results_store.upload(SCOPE, "run-9", "r.bin", iter([b"persisted"]))
        assert b"".join(reopened_results_store.open(SCOPE, ref)) == b"persisted"
        again = ResultRef.of(JobRun.model_validate_json(_run_json(ref)).result_object)  # type: ignore[arg-type]
        assert b"".join(reopened_results_store.open(SCOPE, again)) == b"persisted"
        reopened_results_store.delete(SCOPE, ref)
        with pytest.raises(NotFoundError):
            results_store.open(SCOPE, ref)

    def test_old_style_references_still_open(self, results_store: ResultsStore) -> None:
        ref = results_store.upload(SCOPE, "run-10", "results-1.json", iter([b"[1, 2]"]))
        run = self.legacy_run(results_store, ref)
        assert run.result_object is not None
        assert ResultRef.of(run.result_object) == ref
        assert "uri" not in run.model_dump()["result_object"]
        assert b"".join(results_store.open(SCOPE, ResultRef.of(run.result_object))) == b"[1, 2]"


def _run_json(ref: ResultRef) -> str:
    return job_run(ref.run_id, ref.to_object()).model_dump_json()
