"""Filesystem backend: what lands on disk, and what happens when it is damaged."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError, InvalidScopeError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, MUST_NOT_EXIST, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem._layout import Layout
from dq_stores.keys import encode_key
from dq_stores.testing._helpers import HOSTILE_KEYS

# Each test runs on both get read paths: the C accelerator and pure Python.
pytestmark = pytest.mark.usefixtures("fs_read_path")

SCOPE = Scope("acme", "prod")
KIND = "contract"
_NAME = re.compile(r"\.?[a-z0-9_-]{1,180}\.(head|r[0-9]+|tmp)")


def write(key: str, value: object = 1, **fields: str) -> DocumentWrite:
    body = canonical_json({"key": key, "value": value})
    index = IndexEntry({k: (v,) for k, v in fields.items()}, sort_key=str(value))
    return DocumentWrite(key, body, content_hash(body), index)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(params=["full", "process"])
def backend(root: Path, request: pytest.FixtureRequest) -> Iterator[FilesystemBackend]:
    with FilesystemBackend(root, durability=request.param) as backend:
        yield backend


def head_path(root: Path, key: str, scope: Scope = SCOPE, kind: str = KIND) -> Path:
    return root / scope.tenant / scope.environment / "docs" / kind / f"{encode_key(key)}.head"


def test_hostile_keys_only_create_safe_names_inside_their_kind_directory(
    backend: FilesystemBackend, root: Path
) -> None:
    for key in HOSTILE_KEYS:
        backend.put(SCOPE, KIND, write(key), MUST_NOT_EXIST)
    kind_dir = root / "acme" / "prod" / "docs" / KIND
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root.resolve())
        if path.parent == kind_dir:
            assert _NAME.fullmatch(path.name), path.name
    assert len(list(kind_dir.glob("*.head"))) == len(HOSTILE_KEYS)
    assert {d.key for d in backend.iter_documents(SCOPE, KIND)} == set(HOSTILE_KEYS)


def test_long_keys_use_digest_names_and_keep_the_key_in_the_record(
    backend: FilesystemBackend, root: Path
) -> None:
    key = "a/" * 200
    backend.put(SCOPE, KIND, write(key), MUST_NOT_EXIST)
    path = head_path(root, key)
    assert path.name.startswith("_h")
    assert key.encode() in path.read_bytes()
    assert backend.get(SCOPE, KIND, key).key == key


def test_reads_never_create_directories(backend: FilesystemBackend, root: Path) -> None:
    with pytest.raises(NotFoundError):
        backend.get(SCOPE, KIND, "nothing")
    assert backend.query(SCOPE, KIND).items == []
    assert backend.count(SCOPE, KIND) == 0
    assert list(backend.iter_documents(SCOPE)) == []
    assert not root.exists()
    assert list(backend.iter_scopes()) == []


def test_a_forged_scope_cannot_build_a_path_outside_the_root(tmp_path: Path) -> None:
    forged = object.__new__(Scope)
    object.__setattr__(forged, "tenant", "..")
    object.__setattr__(forged, "environment", "etc")
    with pytest.raises(InvalidScopeError):
        Layout(tmp_path).scope_dir(forged)
    with pytest.raises(InvalidScopeError):
        Layout(tmp_path).kind_dir(str(tmp_path), "../x")


def test_revisions_are_separate_immutable_files_and_head_is_the_newest(
    backend: FilesystemBackend, root: Path
) -> None:
    for value in range(3):
        backend.put(SCOPE, KIND, write("k", value), ANY)
    kind_dir = head_path(root, "k").parent
    revisions = sorted(p.name for p in kind_dir.glob("k.r*"))
    assert revisions == ["k.r1", "k.r2", "k.r3"]
    assert (kind_dir / "k.r3").read_bytes() == head_path(root, "k").read_bytes()
    assert (kind_dir / "k.r1").read_bytes() != (kind_dir / "k.r3").read_bytes()


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_flip_last_byte, id="body-byte-flipped"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:-5]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:40]), id="truncated-in-header"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(lambda p: p.write_bytes(b'{"key": "k", "value": 1}'), id="plain-json"),
        pytest.param(
            lambda p: p.write_bytes(
                p.read_bytes().replace(b"\x00k\x001\x00", b"\x00k\x009\x00", 1)
            ),
            id="header-revision-edited",
        ),
    ],
)
def test_damaged_files_raise_integrity_error(
    backend: FilesystemBackend, root: Path, damage
) -> None:  # type: ignore[no-untyped-def]
    backend.put(SCOPE, KIND, write("k", 1, status="active"), MUST_NOT_EXIST)
    path = head_path(root, "k")
    before = path.read_bytes()
    os.unlink(path)  # heads are hard links to the revision file: damage the head alone
    path.write_bytes(before)
    damage(path)
    assert path.read_bytes() != before
    with pytest.raises(IntegrityError):
        backend.get(SCOPE, KIND, "k")
    with pytest.raises(IntegrityError):
        backend.put(SCOPE, KIND, write("k", 2), ANY)


def test_a_record_copied_under_another_key_is_refused(
    backend: FilesystemBackend, root: Path
) -> None:
    backend.put(SCOPE, KIND, write("a"), MUST_NOT_EXIST)
    backend.put(SCOPE, KIND, write("b"), MUST_NOT_EXIST)
    head_path(root, "b").unlink()
    head_path(root, "b").write_bytes(head_path(root, "a").read_bytes())
    with pytest.raises(IntegrityError):
        backend.get(SCOPE, KIND, "b")


def test_damaged_old_revision_fails_history_and_query_reads_verify_too(
    backend: FilesystemBackend, root: Path
) -> None:
    backend.put(SCOPE, KIND, write("k", 1, status="active"), MUST_NOT_EXIST)
    backend.put(SCOPE, KIND, write("k", 2, status="active"), ANY)
    kind_dir = head_path(root, "k").parent
    _flip_last_byte(kind_dir / "k.r1")
    with pytest.raises(IntegrityError):
        backend.history(SCOPE, KIND, "k")
    assert backend.get(SCOPE, KIND, "k").revision == 2
    _flip_last_byte(kind_dir / "k.r2")  # also the head: same inode
    with pytest.raises(IntegrityError):
        backend.query(SCOPE, KIND, Query((FieldFilter("status", ("active",)),)))


def test_a_garbage_index_database_is_an_integrity_error(root: Path) -> None:
    with FilesystemBackend(root) as backend:
        backend.put(SCOPE, KIND, write("k"), MUST_NOT_EXIST)
    index = root / "acme" / "prod" / "index.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    index.write_bytes(b"this is not a database" * 100)
    with FilesystemBackend(root) as backend, pytest.raises(IntegrityError):
        backend.count(SCOPE, KIND)


def test_a_deleted_index_is_rebuilt_from_the_documents(root: Path) -> None:
    with FilesystemBackend(root) as backend:
        for i in range(20):
            backend.put(SCOPE, KIND, write(f"k{i}", i % 4, status=f"s{i % 3}"), ANY)
        backend.delete(SCOPE, KIND, "k3")
        before = [(d.key, d.revision) for d in backend.query(SCOPE, KIND).items]
    for path in (root / "acme" / "prod").glob("index.sqlite3*"):
        path.unlink()
    with FilesystemBackend(root) as backend:
        assert [(d.key, d.revision) for d in backend.query(SCOPE, KIND).items] == before
        assert backend.count(SCOPE, KIND, [FieldFilter("status", ("s1",))]) == 7
        assert backend.count(SCOPE, KIND) == 19


def test_a_new_boot_rebuilds_the_index_from_the_documents(root: Path) -> None:
    with FilesystemBackend(root) as backend:
        backend.put(SCOPE, KIND, write("kept", 1, status="active"), MUST_NOT_EXIST)
        backend.put(SCOPE, KIND, write("lost", 2, status="active"), MUST_NOT_EXIST)
    # simulate a power loss that dropped the last index commit, then a reboot
    db = sqlite3.connect(root / "acme" / "prod" / "index.sqlite3")
    with db:
        db.execute("DELETE FROM heads WHERE key = 'lost'")
        db.execute("UPDATE meta SET value = 'an-earlier-boot' WHERE name = 'boot_id'")
    db.close()
    with FilesystemBackend(root) as backend:
        assert [d.key for d in backend.query(SCOPE, KIND).items] == ["kept", "lost"]
        assert backend.count(SCOPE, KIND, [FieldFilter("status", ("active",))]) == 2
