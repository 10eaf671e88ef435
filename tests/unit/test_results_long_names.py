"""Long run ids and names on the filesystem and Azure stores: kept beside the digest.

A key whose encoding is over ``MAX_NAME`` is stored under its digest; the store
records the original (filesystem: ``.<digest>.name`` written before the object;
Azure: blob metadata committed with it). An object without a record — written
before records existed — is listed as a digest and can be deleted as one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dq_metadata.errors import NotFoundError
from dq_metadata.scope import Scope
from dq_stores.filesystem import FilesystemResultsStore
from dq_stores.keys import encode_key
from dq_stores.results import original_name

SCOPE = Scope("acme", "prod")
LONG_RUN = "run" + "é" * 40
LONG_NAME = "n" + "é" * 40


def _run_dir(root: Path, run_id: str = LONG_RUN) -> Path:
    return root / "acme" / "prod" / "results" / encode_key(run_id)


def test_records_sit_beside_the_digests_and_name_the_objects(tmp_path: Path) -> None:
    store = FilesystemResultsStore(tmp_path)
    store.upload(SCOPE, LONG_RUN, LONG_NAME, [b"x"])
    run_dir = _run_dir(tmp_path)
    assert (run_dir.parent / f".{encode_key(LONG_RUN)}.name").read_text("utf-8") == LONG_RUN
    assert (run_dir / f".{encode_key(LONG_NAME)}.name").read_text("utf-8") == LONG_NAME
    (obj,) = store.iter_objects(SCOPE)
    assert (obj.run_id, obj.name, obj.digest_run_id, obj.digest_name) == (
        LONG_RUN, LONG_NAME, False, False
    )  # fmt: skip


def test_an_object_without_its_record_is_listed_as_a_digest_and_deletable(
    tmp_path: Path,
) -> None:
    store = FilesystemResultsStore(tmp_path)
    store.upload(SCOPE, LONG_RUN, LONG_NAME, [b"old"])
    run_dir = _run_dir(tmp_path)
    os.unlink(run_dir.parent / f".{encode_key(LONG_RUN)}.name")  # as written before records
    os.unlink(run_dir / f".{encode_key(LONG_NAME)}.name")
    (obj,) = store.iter_objects(SCOPE)
    assert (obj.run_id, obj.name) == (encode_key(LONG_RUN), encode_key(LONG_NAME))
    assert (obj.digest_run_id, obj.digest_name) == (True, True)
    store.delete_object(SCOPE, obj.run_id, obj.name, digest_name=True, digest_run_id=True)
    assert list(store.iter_objects(SCOPE)) == []


def test_the_record_is_durable_before_the_object_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemResultsStore(tmp_path)
    real = os.replace

    def crash_on_the_object(src: str, dst: str) -> None:
        if os.path.basename(dst) == encode_key(LONG_NAME):
            raise KeyboardInterrupt  # killed between the record and the object
        real(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_the_object)
    with pytest.raises(KeyboardInterrupt):
        store.upload(SCOPE, LONG_RUN, LONG_NAME, [b"x"])
    monkeypatch.setattr(os, "replace", real)
    assert (_run_dir(tmp_path) / f".{encode_key(LONG_NAME)}.name").exists()
    assert list(store.iter_objects(SCOPE)) == []  # a record alone is no object
    ref = store.upload(SCOPE, LONG_RUN, LONG_NAME, [b"y"])
    assert [o.name for o in store.iter_objects(SCOPE)] == [LONG_NAME]
    store.delete(SCOPE, ref)
    assert sorted(p.name for p in _run_dir(tmp_path).iterdir()) == []
    with pytest.raises(NotFoundError):
        store.open(SCOPE, ref)


def test_a_record_for_another_key_is_not_believed(tmp_path: Path) -> None:
    store = FilesystemResultsStore(tmp_path)
    store.upload(SCOPE, "run", LONG_NAME, [b"x"])
    record = _run_dir(tmp_path, "run") / f".{encode_key(LONG_NAME)}.name"
    record.write_text("somebody else", "utf-8")
    (obj,) = store.iter_objects(SCOPE)
    assert (obj.name, obj.digest_name) == (encode_key(LONG_NAME), True)


def test_original_name_reads_the_record_only_for_a_digest_part() -> None:
    def no_record() -> str | None:
        raise AssertionError("a plain part has no record")

    assert original_name(encode_key("a/b é"), no_record) == ("a/b é", False)
    assert original_name("_zz", no_record) is None  # does not decode: not a store's name
    digest = encode_key(LONG_NAME)
    assert original_name(digest, lambda: LONG_NAME) == (LONG_NAME, False)
    assert original_name(digest, lambda: None) == (digest, True)  # no record: the digest
    assert original_name(digest, lambda: LONG_RUN) == (digest, True)  # another key's record
    assert original_name(digest, lambda: "") == (digest, True)
    assert original_name(digest[:-1], lambda: None) is None  # not a well-formed digest
    assert original_name(digest.upper().replace("_H", "_h"), lambda: None) is None
