"""Files edited outside the library: a fresh backend raises ``IntegrityError`` and
``dq verify`` (API and CLI) reports it; ``--repair-index`` fixes only the index.

Each test builds two tenants with the same documents (three revisions of
``contract/orders``, one of ``contract/other`` and ``job_definition/orders``),
tampers with one file the way a person with shell access would, then reads
through a *fresh* backend (nothing cached) and runs the verifier.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError, NotFoundError
from dq_metadata.scope import Scope
from dq_registries.cli._app import app
from dq_stores.documents import (
    ANY,
    DocumentWrite,
    FieldFilter,
    IndexEntry,
    Query,
    StoredDocument,
)
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem._records import encode_record
from dq_stores.verify import IntegrityProblem, VerifyCounts, verify

# Each test runs on both get read paths: the C accelerator and pure Python.
pytestmark = pytest.mark.usefixtures("fs_read_path")

ACME = Scope("acme", "prod")
GLOBEX = Scope("globex", "prod")
KIND = "contract"


def _write(key: str, n: int, owner: str) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n, "owner": owner})
    entry = IndexEntry({"status": ("active" if n % 2 else "draft",)}, f"{n:03d}")
    return DocumentWrite(key, body, content_hash(body), entry)


def _populate(root: Path) -> None:
    with FilesystemBackend(root) as backend:
        for scope in (ACME, GLOBEX):
            for n in (1, 2, 3):
                backend.put(scope, KIND, _write("orders", n, scope.tenant), ANY)
            backend.put(scope, KIND, _write("other", 1, scope.tenant), ANY)
            backend.put(scope, "job_definition", _write("orders", 1, scope.tenant), ANY)


def _docs(root: Path, scope: Scope, kind: str = KIND) -> Path:
    return root / scope.tenant / scope.environment / "docs" / kind


def _problems(root: Path, **kwargs: object) -> list[IntegrityProblem]:
    with FilesystemBackend(root) as backend:
        return list(verify(backend, **kwargs))  # type: ignore[arg-type]


def _fingerprint(root: Path) -> dict[str, str]:
    """sha256 of every document file (the index and lock files excluded)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "/docs/" in str(p)
    }


def _cli(root: Path, tmp: Path, *args: str) -> tuple[int, str]:
    config = tmp / "dq.yaml"
    config.write_text(yaml.safe_dump({"filesystem": {"root": str(root)}}))
    runner = CliRunner(env={"DQ_HOME": str(tmp / "wrong"), "DQ_CONFIG": None})
    result = runner.invoke(app, ["verify", "--config", str(config), *args])
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture
def root(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    _populate(store)
    return store


def _after_the_fresh_window() -> None:
    """Wait until heads are no longer "just linked" (``get`` accepts a head whose inode
    changed within 1 s of its record being built without a ``stat``; ADR 0002)."""
    time.sleep(1.1)


def _overwrite(target: Path, source: Path) -> None:
    """Copy over ``target`` in place (``cp``, ``shutil.copyfile``): the inode stays."""
    shutil.copyfile(source, target)


def _replace(target: Path, data: bytes) -> None:
    """Put new bytes under ``target``'s name as a new file (``cp`` then ``mv``)."""
    temp = target.with_name("tampered.tmp.x")
    temp.write_bytes(data)
    os.replace(temp, target)


# -- identity -------------------------------------------------------------------
@pytest.mark.parametrize("replace", [False, True], ids=["in-place", "renamed"])
def test_another_tenants_head_copied_over_raises(root: Path, tmp_path: Path, replace: bool) -> None:
    head, foreign = _docs(root, ACME) / "orders.head", _docs(root, GLOBEX) / "orders.head"
    if replace:
        _replace(head, foreign.read_bytes())
    else:
        _overwrite(head, foreign)
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
        fresh.get(ACME, KIND, "orders")
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
        fresh.history(ACME, KIND, "orders")
    assert {p.code for p in _problems(root, scope=ACME)} >= {"record"}
    assert _problems(root, scope=GLOBEX) == []
    code, out = _cli(root, tmp_path, "--tenant", "acme")
    assert code == 1
    assert "[record]" in out
    assert "orders" in out


@pytest.mark.parametrize(
    ("kind", "name", "source_kind", "source_name"),
    [
        (KIND, "orders.r2", KIND, "orders.r2"),  # another tenant's revision
        (KIND, "other.head", KIND, "orders.head"),  # another key's head, same scope
        ("job_definition", "orders.head", KIND, "orders.r1"),  # another kind's record
    ],
)
def test_sibling_files_copied_across_identities_raise(
    root: Path, tmp_path: Path, kind: str, name: str, source_kind: str, source_name: str
) -> None:
    source_scope = GLOBEX if name == source_name and kind == source_kind else ACME
    target = _docs(root, ACME, kind) / name
    _overwrite(target, _docs(root, source_scope, source_kind) / source_name)
    key = name.split(".", maxsplit=1)[0]
    with FilesystemBackend(root) as fresh:
        if name.endswith(".head"):
            with pytest.raises(IntegrityError):
                fresh.get(ACME, kind, key)
        else:
            with pytest.raises(IntegrityError):
                fresh.get_revision(ACME, kind, key, int(name.split(".r")[1]))
    assert _problems(root, scope=ACME)
    code, _ = _cli(root, tmp_path, "-t", "acme", "-e", "prod", "--json")
    assert code == 1


# -- history --------------------------------------------------------------------
@pytest.mark.parametrize("how", ["in-place", "renamed"])
def test_rollback_of_the_head_raises(root: Path, tmp_path: Path, how: str) -> None:
    head, first = _docs(root, ACME) / "orders.head", _docs(root, ACME) / "orders.r1"
    _after_the_fresh_window()
    if how == "in-place":
        _overwrite(head, first)
    else:
        _replace(head, first.read_bytes())
    with FilesystemBackend(root) as fresh:
        with pytest.raises(IntegrityError):
            fresh.get(ACME, KIND, "orders")
        with pytest.raises(IntegrityError):
            fresh.history(ACME, KIND, "orders")
    codes = {p.code for p in _problems(root, scope=ACME)}
    assert codes & {"head", "history", "index"}
    code, out = _cli(root, tmp_path)
    assert code == 1
    assert "acme/prod" in out


def test_a_long_lived_reader_notices_a_rollback(root: Path) -> None:
    kind_dir = _docs(root, ACME)
    with FilesystemBackend(root) as reader:
        for _ in range(3):
            assert reader.get(ACME, KIND, "orders").revision == 3
        _after_the_fresh_window()
        _overwrite(kind_dir / "orders.head", kind_dir / "orders.r1")
        with pytest.raises(IntegrityError):
            reader.get(ACME, KIND, "orders")


def test_rollback_by_hard_link_is_caught_by_history_and_verify(root: Path) -> None:
    kind_dir = _docs(root, ACME)
    os.unlink(kind_dir / "orders.head")
    os.link(kind_dir / "orders.r1", kind_dir / "orders.head")  # ln -f orders.r1 orders.head
    with FilesystemBackend(root) as fresh:
        with pytest.raises(IntegrityError):
            fresh.history(ACME, KIND, "orders")
        with pytest.raises(IntegrityError):
            fresh.get_revision(ACME, KIND, "orders", 1)
    assert {p.code for p in _problems(root, scope=ACME)} & {"head", "index"}


def test_removed_head_raises_instead_of_not_found(root: Path) -> None:
    os.unlink(_docs(root, ACME) / "orders.head")
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
        fresh.get(ACME, KIND, "orders")
    assert {p.code for p in _problems(root, scope=ACME)} >= {"head"}


@pytest.mark.parametrize("revision", [1, 2])
def test_deleted_revision_raises(root: Path, tmp_path: Path, revision: int) -> None:
    os.unlink(_docs(root, ACME) / f"orders.r{revision}")
    with FilesystemBackend(root) as fresh:
        with pytest.raises(IntegrityError):
            fresh.history(ACME, KIND, "orders")
        with pytest.raises(IntegrityError):
            fresh.get_revision(ACME, KIND, "orders", revision)
        assert fresh.get(ACME, KIND, "orders").revision == 3  # the head itself is intact
    assert [p.code for p in _problems(root, scope=ACME)] == ["history"]
    assert _cli(root, tmp_path)[0] == 1


def test_reordered_history_raises(root: Path) -> None:
    kind_dir = _docs(root, ACME)
    one, two = (kind_dir / "orders.r1").read_bytes(), (kind_dir / "orders.r2").read_bytes()
    _replace(kind_dir / "orders.r1", two)
    _replace(kind_dir / "orders.r2", one)
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
        fresh.history(ACME, KIND, "orders")
    assert {p.code for p in _problems(root, scope=ACME)} == {"history"}


def test_a_spliced_revision_with_a_valid_hash_breaks_the_chain(root: Path) -> None:
    """Revision 2 replaced by a well-formed record of the right identity whose link
    names another predecessor: only the chain can tell."""
    kind_dir = _docs(root, ACME)
    with FilesystemBackend(root) as backend:
        old = backend.get_revision(ACME, KIND, "orders", 2)
    forged = StoredDocument(
        ACME, KIND, "orders", 2, old.body, old.sha256, old.index, datetime.now(UTC)
    )
    _replace(kind_dir / "orders.r2", encode_record(KIND, forged, "0" * 64))
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError, match="follow"):
        fresh.history(ACME, KIND, "orders")
    assert {p.code for p in _problems(root, scope=ACME)} == {"history"}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(["orders.head", "orders.r1", "orders.r2", "orders.r3", "other.head"]),
    where=st.floats(0, 1, exclude_max=True),
    flip=st.integers(1, 255),
)
def test_any_changed_byte_of_any_record_file_is_detected(
    tmp_path_factory: pytest.TempPathFactory, name: str, where: float, flip: int
) -> None:
    root = tmp_path_factory.mktemp("flip") / "store"
    _populate(root)
    path = _docs(root, ACME) / name
    data = bytearray(path.read_bytes())
    data[int(where * len(data))] ^= flip
    path.write_bytes(bytes(data))  # in place: the head and its revision share the inode
    key = name.split(".", maxsplit=1)[0]
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
        fresh.history(ACME, KIND, key)
    assert _problems(root, scope=ACME)


# -- the index ------------------------------------------------------------------
def _index(root: Path, scope: Scope, sql: str, *args: object) -> None:
    import sqlite3

    conn = sqlite3.connect(root / scope.tenant / scope.environment / "index.sqlite3")
    with conn:
        conn.execute(sql, args)
    conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM heads WHERE key = 'orders'",
        "UPDATE heads SET revision = 2 WHERE key = 'orders'",
        "UPDATE heads SET sort_key = '999' WHERE key = 'orders'",
        "DELETE FROM postings WHERE key = 'other'",
        "UPDATE postings SET value = 'draft' WHERE key = 'orders'",
        "UPDATE stats SET n = n + 5",
    ],
)
def test_edited_index_rows_are_found_and_repaired(root: Path, tmp_path: Path, sql: str) -> None:
    _index(root, ACME, sql)
    before = _fingerprint(root)
    problems = _problems(root, scope=ACME)
    assert problems
    assert {p.code for p in problems} == {"index"}
    code, out = _cli(root, tmp_path, "-t", "acme", "--repair-index")
    assert code == 1
    assert "index rebuilt in 1 scope" in out
    assert _cli(root, tmp_path)[0] == 0  # clean now
    assert _fingerprint(root) == before  # no document file touched
    with FilesystemBackend(root) as fresh:
        assert fresh.get(ACME, KIND, "orders").revision == 3
        assert fresh.count(ACME, KIND) == 2


def test_a_query_checks_rows_against_the_records(root: Path) -> None:
    _index(root, ACME, "UPDATE heads SET sort_key = '000' WHERE key = 'orders'")
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError, match="index"):
        list(fresh.query(ACME, KIND, Query()).items)
    _index(root, ACME, "UPDATE heads SET sort_key = '003' WHERE key = 'orders'")
    _index(root, ACME, "UPDATE postings SET value = 'draft' WHERE key = 'orders'")
    _index(root, ACME, "UPDATE stats SET n = 1 WHERE value = 'draft'")
    flt = Query((FieldFilter("status", ("draft",)),))
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError, match="index"):
        list(fresh.query(ACME, KIND, flt).items)


def test_a_clean_store_verifies_with_counts(root: Path, tmp_path: Path) -> None:
    counts = VerifyCounts()
    with FilesystemBackend(root) as backend:
        assert list(verify(backend, counts=counts)) == []
    assert (counts.scopes, counts.documents, counts.revisions) == (2, 6, 10)
    code, out = _cli(root, tmp_path, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["problems"] == []
    assert report["summary"]["documents"] == 6
    code, out = _cli(root, tmp_path, "--env", "prod")
    assert code == 2
    assert "--tenant" in out


def test_a_deleted_document_stays_deleted(root: Path) -> None:
    with FilesystemBackend(root) as backend:
        backend.delete(ACME, KIND, "other")
    with FilesystemBackend(root) as fresh, pytest.raises(NotFoundError):
        fresh.get(ACME, KIND, "other")
    assert _problems(root) == []
