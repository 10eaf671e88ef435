"""A rolled-back head is caught by ``get`` alone — and an interrupted write's
uncommitted revision file (a power loss lost the writer's note) is not mistaken
for one, by ``get`` or by ``dq verify``.

Rollbacks: ``ln -f r<N> head`` (the head stays a hard link, so the inode check of
ADR 0002 passes), with or without the index deleted first, and ``cp r1 head``
after the index was deleted (a fresh open derives the index from the rolled-back
heads, so head and index agree). ``get`` notices the committed next revision file
beside the head; under the scope lock it tells a committed one from a leftover.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError, NotFoundError
from dq_metadata.scope import Scope
from dq_registries.cli._app import app
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, Put
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem import _writes as writes
from dq_stores.verify import VerifyCounts, verify

ACME = Scope("acme", "prod")
KIND = "contract"


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({}, f"{n:03d}"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    with FilesystemBackend(store) as backend:
        for n in (1, 2, 3):
            backend.put(ACME, KIND, _write("orders", n), ANY)
        backend.put(ACME, KIND, _write("other", 1), ANY)
    return store


def _docs(root: Path) -> Path:
    return root / "acme" / "prod" / "docs" / KIND


def _drop_index(root: Path) -> None:
    for path in (root / "acme" / "prod").glob("index.sqlite3*"):
        path.unlink()


def _ln_f(source: Path, target: Path) -> None:
    os.unlink(target)
    os.link(source, target)


def _verify(root: Path) -> tuple[list[tuple[str, str | None]], VerifyCounts]:
    counts = VerifyCounts()
    with FilesystemBackend(root) as backend:
        found = [(p.code, p.key) for p in verify(backend, ACME, counts=counts)]
    return found, counts


# Not here: ln -f r2 head (one revision back) *and* the index deleted. Files then look
# exactly like a power loss's uncommitted r3 (ADR 0002 names this limit).
@pytest.mark.parametrize(
    ("to", "drop_index"), [(1, False), (2, False), (1, True)], ids=["r1", "r2", "r1-no-index"]
)
def test_a_hard_link_rollback_is_caught_by_a_fresh_get(
    root: Path, drop_index: bool, to: int
) -> None:
    if drop_index:
        _drop_index(root)
    _ln_f(_docs(root) / f"orders.r{to}", _docs(root) / "orders.head")
    with FilesystemBackend(root) as fresh:
        with pytest.raises(IntegrityError, match="rolled-back"):
            fresh.get(ACME, KIND, "orders")
        assert fresh.get(ACME, KIND, "other").revision == 1
    found, _ = _verify(root)
    assert ("head", "orders") in found


def test_a_copy_over_the_head_after_the_index_was_deleted_is_caught(root: Path) -> None:
    _drop_index(root)
    shutil.copyfile(_docs(root) / "orders.r1", _docs(root) / "orders.head")  # cp r1 head
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
        fresh.get(ACME, KIND, "orders")
    assert _verify(root)[0]


def test_a_long_lived_reader_catches_a_rollback_to_an_inode_it_has_seen(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with FilesystemBackend(root) as backend:
        backend.put(ACME, KIND, _write("orders", 1), ANY)
        assert backend.get(ACME, KIND, "orders").revision == 1  # r1's inode remembered
        backend.put(ACME, KIND, _write("orders", 2), ANY)
        assert backend.get(ACME, KIND, "orders").revision == 2
        _ln_f(_docs(root) / "orders.r1", _docs(root) / "orders.head")
        with pytest.raises(IntegrityError, match="rolled-back"):
            backend.get(ACME, KIND, "orders")


class _PowerLoss(BaseException):
    """The machine stops: nothing after this point runs."""


def _interrupted_commit(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-document commit that stops after its records were written and fsynced
    but before its journal (the commit point) — and a power loss that lost the
    intent note the writer had put in the lock file (it is never fsynced)."""

    def power_loss(_intents: object) -> bytes:
        raise _PowerLoss

    with FilesystemBackend(root) as backend:
        monkeypatch.setattr(writes, "encode_journal", power_loss)
        with pytest.raises(_PowerLoss):
            backend.commit(
                ACME,
                [
                    Put(KIND, _write("orders", 4), ANY),
                    Put(KIND, _write("other", 2), ANY),
                    Put(KIND, _write("brand-new", 1), ANY),
                ],
            )
        monkeypatch.undo()
    os.truncate(root / "acme" / "prod" / ".lock", 0)  # the page-cache note is gone
    assert (_docs(root) / "orders.r4").exists()
    assert (_docs(root) / "brand-new.r1").exists()
    assert not (_docs(root) / "brand-new.head").exists()


def test_an_interrupted_write_is_not_a_rollback(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupted_commit(root, monkeypatch)
    with FilesystemBackend(root) as fresh:
        for _ in range(2):  # the second get is answered from the remembered judgement
            assert fresh.get(ACME, KIND, "orders").revision == 3
            assert fresh.get(ACME, KIND, "other").revision == 1
        with pytest.raises(NotFoundError):
            fresh.get(ACME, KIND, "brand-new")
        assert [d.revision for d in fresh.history(ACME, KIND, "orders")] == [1, 2, 3]
        assert fresh.get_revision(ACME, KIND, "other", 1).revision == 1
    found, counts = _verify(root)
    assert found == []
    assert counts.interrupted == 3
    config = tmp_path / "dq.yaml"
    config.write_text(yaml.safe_dump({"filesystem": {"root": str(root)}}))
    result = CliRunner().invoke(app, ["verify", "--config", str(config)])
    assert result.exit_code == 0, result.stdout
    assert "3 uncommitted revision file(s)" in result.stdout
    # the next writes replace the leftovers and the store is exactly clean again
    with FilesystemBackend(root) as backend:
        assert backend.put(ACME, KIND, _write("orders", 4), ANY).revision == 4
        assert backend.put(ACME, KIND, _write("brand-new", 1), ANY).revision == 1
        assert backend.get(ACME, KIND, "orders").revision == 4
    found, counts = _verify(root)
    assert (found, counts.interrupted) == ([], 1)  # only other.r2 is left


def test_a_rollback_over_an_interrupted_write_is_still_caught(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """r4 left uncommitted; then r3 rolled back to r2 by hand: r4 is revision N+2."""
    _interrupted_commit(root, monkeypatch)
    _ln_f(_docs(root) / "orders.r2", _docs(root) / "orders.head")
    with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
        fresh.get(ACME, KIND, "orders")
    found, _ = _verify(root)
    assert ("head", "orders") in found
