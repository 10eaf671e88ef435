"""Rollbacks caught by seals (ADR 0002, "Seals"): an older revision put back as the
head — ``ln -f``, ``mv``, ``cp`` to a new file, ``cp -p``, and ``cp``/``cp -p`` over
the head in place — with or without the newer revision files and the index, right
after the writes or long after (records dated years back: no sleeps). A fresh
``get`` raises, ``dq verify`` reports the key, and a write is refused — also ``cp``
over the head in place with the newer files removed within 1 s (one name; or two,
with a hard link made elsewhere: not its revision file's inode).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_registries.cli._app import app
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.verify import verify

# Each test runs on both get read paths: the C accelerator and pure Python.
pytestmark = pytest.mark.usefixtures("fs_read_path")

ACME = Scope("acme", "prod")
KIND = "contract"
LENGTH = 4
METHODS = ("ln-f", "mv", "cp", "cp-p", "cp-p-in-place", "cp-in-place")
_LONG_AGO = datetime(2020, 1, 2, tzinfo=UTC)


def _write(key: str, n: int) -> DocumentWrite:
    body = canonical_json({"key": key, "n": n})
    return DocumentWrite(key, body, content_hash(body), IndexEntry({}, f"{n:03d}"))


def _old_history(key: str, length: int) -> list[StoredDocument]:
    out = []
    for rev in range(1, length + 1):
        w = _write(key, rev)
        at = _LONG_AGO + timedelta(hours=rev)
        out.append(StoredDocument(ACME, KIND, key, rev, w.body, w.sha256, w.index, at))
    return out


def _docs(root: Path) -> Path:
    return root / "acme" / "prod" / "docs" / KIND


def _seed(root: Path, length: int, late: bool) -> None:
    """``a`` with ``length`` revisions — written now by puts, or (``late``) restored
    with records dated 2020 plus one put — and ``b`` untouched by the rollback."""
    with FilesystemBackend(root, durability="process") as backend:
        if late:
            backend.restore_many(ACME, KIND, [("a", _old_history("a", length - 1))])
            backend.put(ACME, KIND, _write("a", length), ANY)
        else:
            for n in range(1, length + 1):
                backend.put(ACME, KIND, _write("a", n), ANY)
        backend.put(ACME, KIND, _write("b", 1), ANY)
    for n in range(1, length + 1):  # every superseded revision sealed, the head not
        assert bool(os.stat(_docs(root) / f"a.r{n}").st_mode & 0o200) == (n == length)


def _cp(*args: str | Path) -> None:
    subprocess.run(["cp", *map(str, args)], check=True)


def roll_back(root: Path, method: str, to: int, length: int, remove_newer: bool) -> None:
    """Put revision ``to`` of ``a`` back as its head by ``method``."""
    docs = _docs(root)
    old, head = docs / f"a.r{to}", docs / "a.head"
    if method == "ln-f":
        head.unlink()
        os.link(old, head)
    elif method == "mv":
        os.replace(old, head)
    elif method in ("cp", "cp-p"):  # a new inode: cp gives it the source's mode
        head.unlink()
        _cp(*(["-p"] if method == "cp-p" else []), old, head)
    else:  # over the head in place: its inode (a.r<length>'s) gets the old content
        _cp(*(["-p"] if method == "cp-p-in-place" else []), old, head)
    if remove_newer:
        for n in range(to + 1, length + 1):
            (docs / f"a.r{n}").unlink()


def _drop_index(root: Path) -> None:
    for path in (root / "acme" / "prod").glob("index.sqlite3*"):
        path.unlink()


def _files(root: Path) -> list[tuple[str, bytes, int]]:
    return sorted((p.name, p.read_bytes(), p.stat().st_mode) for p in _docs(root).iterdir())


def _caught(root: Path, *, indexed: bool = True) -> None:
    with FilesystemBackend(root) as fresh:
        with pytest.raises(IntegrityError):
            fresh.get(ACME, KIND, "a")
        assert fresh.get(ACME, KIND, "b").revision == 1
        if not indexed:  # the rebuild left the sealed head out: no query serves it
            assert [d.key for d in fresh.iter_documents(ACME, KIND)] == ["b"]
        else:  # index-driven reads raise, or serve the newest revision (the row's)
            assert _served_by_index(fresh) in (None, [LENGTH])
        assert "a" in {p.key for p in verify(fresh, ACME)}
        files = _files(root)
        with pytest.raises(IntegrityError, match="rolled-back or removed head"):
            fresh.put(ACME, KIND, _write("a", 99), ANY)
        assert _files(root) == files  # nothing written


def _served_by_index(backend: FilesystemBackend) -> list[int] | None:
    """The revisions of ``a`` that ``query`` and ``iter_documents`` serve (the same
    from both), or ``None`` if both raise ``IntegrityError``."""
    served = []
    for read in (
        lambda: backend.query(ACME, KIND).items,
        lambda: list(backend.iter_documents(ACME, KIND)),
    ):
        try:
            served.append([d.revision for d in read() if d.key == "a"])
        except IntegrityError:
            served.append(None)
    assert served[0] == served[1]
    return served[0]


@pytest.mark.parametrize("drop_index", [False, True], ids=["index", "no-index"])
@pytest.mark.parametrize("remove_newer", [False, True], ids=["newer-kept", "newer-removed"])
@pytest.mark.parametrize("to", range(1, LENGTH))
@pytest.mark.parametrize("late", [False, True], ids=["soon", "late"])
@pytest.mark.parametrize("method", METHODS)
def test_a_rollback_to_any_older_revision_is_caught(
    tmp_path: Path, method: str, late: bool, to: int, remove_newer: bool, drop_index: bool
) -> None:
    root = tmp_path / "store"
    _seed(root, LENGTH, late)
    roll_back(root, method, to, LENGTH, remove_newer)
    if drop_index:
        _drop_index(root)
    _caught(root, indexed=not drop_index or method == "cp-in-place")


@pytest.mark.parametrize("to", range(1, LENGTH))
def test_a_copy_in_place_given_a_second_name_elsewhere_is_caught_within_1_s(
    tmp_path: Path, to: int
) -> None:
    """``cp r<k> head`` in place, the newer revision files removed, and the head
    hard-linked anywhere else (``ln head /backup/x``): two names, writable, fresh, no
    next revision file — but its other name is not ``r<k>``."""
    root = tmp_path / "store"
    _seed(root, LENGTH, late=False)
    roll_back(root, "cp-in-place", to, LENGTH, remove_newer=True)
    os.link(_docs(root) / "a.head", tmp_path / "second-name")
    _caught(root)


@pytest.mark.parametrize("method", ["ln-f", "mv", "cp-p"])
def test_a_sealed_head_is_checked_even_when_its_memo_key_matches(
    tmp_path: Path, method: str
) -> None:
    """A reader remembers a checked head by (inode, device, record hash, ctime). On a
    filesystem with 1 s timestamps (ext4 with 128-byte inodes, ext3, many NFS servers)
    ``ln -f r1 head`` within the second of the head's last change restores exactly
    that key; measured on a loop-mounted ``mkfs.ext4 -I 128``: 300 of 300 rollbacks
    returned revision 1. Simulated here by putting the rolled-back head's key in the
    memo: a sealed head must still take the lock path."""
    root = tmp_path / "store"
    _seed(root, LENGTH, late=False)
    with FilesystemBackend(root) as reader:
        assert reader.get(ACME, KIND, "a").revision == LENGTH
        roll_back(root, method, 1, LENGTH, remove_newer=False)
        st = os.stat(_docs(root) / "a.head")
        digest = (_docs(root) / "a.head").read_bytes()[:64]
        reader._linked.add((st.st_ino, st.st_dev, digest, st.st_ctime_ns))
        with pytest.raises(IntegrityError):
            reader.get(ACME, KIND, "a")


def test_a_long_lived_reader_catches_a_sealed_head_it_has_seen_before(tmp_path: Path) -> None:
    """r1 was remembered as a checked head; put back, its inode is sealed (and its
    ctime moved with the seal and the link): caught without sleeping."""
    root = tmp_path / "store"
    with FilesystemBackend(root, durability="process") as backend:
        backend.put(ACME, KIND, _write("a", 1), ANY)
        assert backend.get(ACME, KIND, "a").revision == 1
        backend.put(ACME, KIND, _write("a", 2), ANY)
        assert backend.get(ACME, KIND, "a").revision == 2
        roll_back(root, "ln-f", 1, 2, remove_newer=True)
        with pytest.raises(IntegrityError, match="superseded"):
            backend.get(ACME, KIND, "a")


@settings(max_examples=30, deadline=None)
@given(
    length=st.integers(2, 8),
    data=st.data(),
    method=st.sampled_from(("ln-f", "mv", "cp", "cp-p", "cp-p-in-place")),
    remove_newer=st.booleans(),
    drop_index=st.booleans(),
)
def test_any_history_rolled_back_to_any_earlier_revision_is_caught_and_verify_says_so(
    length: int,
    data: st.DataObject,
    method: str,
    remove_newer: bool,
    drop_index: bool,
) -> None:
    to = data.draw(st.integers(1, length - 1), label="to")
    with tempfile.TemporaryDirectory(prefix="dq-seal-") as tmp:
        root = Path(tmp) / "store"
        _seed(root, length, late=False)
        roll_back(root, method, to, length, remove_newer)
        if drop_index:
            _drop_index(root)
        with FilesystemBackend(root) as fresh, pytest.raises(IntegrityError):
            fresh.get(ACME, KIND, "a")
        config = Path(tmp) / "dq.yaml"
        config.write_text(yaml.safe_dump({"filesystem": {"root": str(root)}}))
        result = CliRunner().invoke(app, ["verify", "--config", str(config)])
        assert result.exit_code == 1, result.stdout
        assert "contract 'a': [head]" in result.stdout or "contract 'a': [history]" in (
            result.stdout
        )


def test_dq_verify_counts_and_repair_index_seals_unsealed_revisions(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _seed(root, 3, late=False)
    os.chmod(_docs(root) / "a.r1", 0o644)  # a store from before seals, or a lost seal
    config = tmp_path / "dq.yaml"
    config.write_text(yaml.safe_dump({"filesystem": {"root": str(root)}}))
    checked = CliRunner().invoke(app, ["verify", "--config", str(config)])
    assert checked.exit_code == 0, checked.stdout
    assert "note: 1 superseded revision file(s) not sealed" in checked.stdout
    repaired = CliRunner().invoke(app, ["verify", "--config", str(config), "--repair-index"])
    assert repaired.exit_code == 0, repaired.stdout
    assert not os.stat(_docs(root) / "a.r1").st_mode & 0o222
    again = CliRunner().invoke(app, ["verify", "--config", str(config), "--json"])
    assert again.exit_code == 0, again.stdout
    assert '"unsealed": 0' in again.stdout


def _index_says(root: Path, key: str, revision: int) -> None:
    """Edit the index as a careful rollback would: ``key``'s live head is ``revision``,
    with that revision's sort key (``_write``'s)."""
    conn = sqlite3.connect(root / "acme" / "prod" / "index.sqlite3")
    with conn:
        conn.execute(
            "UPDATE heads SET revision = ?, sort_key = ? WHERE key = ?",
            (revision, f"{revision:03d}", key),
        )
    conn.close()


@pytest.mark.parametrize("remove_newer", [False, True], ids=["newer-kept", "newer-removed"])
@pytest.mark.parametrize("to", range(1, LENGTH))
@pytest.mark.parametrize("method", ["ln-f", "mv", "cp-p"])
def test_index_driven_reads_never_serve_a_rolled_back_revision(
    tmp_path: Path, method: str, to: int, remove_newer: bool
) -> None:
    """``query`` and ``iter_documents`` (and ``search``, the same read) read the
    revision file the index names, not the head: with the head rolled back and the
    index edited to match (the newer files removed or not), the file they would serve
    is sealed — a superseded revision — so they raise ``IntegrityError`` as ``get``
    does, and serve ``b`` again once ``a`` is put right."""
    root = tmp_path / "store"
    _seed(root, LENGTH, late=False)
    roll_back(root, method, to, LENGTH, remove_newer)
    _index_says(root, "a", to)
    with FilesystemBackend(root) as fresh:
        with pytest.raises(IntegrityError):
            fresh.query(ACME, KIND)
        with pytest.raises(IntegrityError):
            list(fresh.iter_documents(ACME, KIND))
        assert fresh.get(ACME, KIND, "b").revision == 1
