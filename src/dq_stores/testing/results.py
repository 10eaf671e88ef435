"""Conformance for ``ResultsStore`` adapters: streamed, hash-verified objects."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import pytest

from dq_metadata.errors import NotFoundError, ValidationError
from dq_metadata.scope import Scope
from dq_stores.results import ResultRef, ResultsStore

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


class ResultsStoreConformance:
    """Subclass and supply a ``results_store`` fixture yielding an empty store."""

    @pytest.fixture
    def results_store(self) -> ResultsStore:
        raise NotImplementedError("subclasses provide a results_store fixture")

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
        assert first.uri == second.uri
        assert b"".join(results_store.open(SCOPE, second)) == b"two!"
        other = results_store.upload(SCOPE, "RUN/../4", "../../r.json", io.BytesIO(b"case"))
        assert other.uri != second.uri

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
        from dq_metadata.errors import IntegrityError

        ref = results_store.upload(SCOPE, "run-7", "r", io.BytesIO(b"abc"))
        forged = ResultRef(ref.uri, ref.size, "0" * 64, ref.content_type)
        with pytest.raises(IntegrityError):
            b"".join(results_store.open(SCOPE, forged))
