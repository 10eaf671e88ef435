"""The C read of a head (``_native.c``) gives the pure-Python decoder's verdict, always.

For random valid records (format 1 and 2, unicode keys and index values, many and
empty index fields, bodies past the 64 KiB first read) and random damage to them —
raw (the hash then fails) and re-hashed (the hash holds, the header or body is odd) —
``read_head`` either returns the very document ``decode_record`` returns, or hands
the bytes back and the Python decoder raises; never a different answer, and every
undamaged record is decided in C. Plus the file-level contract (errors, stat fields,
the head-link states) and the loader's fallbacks (``DQ_FS_NATIVE=0``, stale builds).
"""

from __future__ import annotations

import os
import time
import warnings
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tests.support.fs_records import format1, sealed

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError
from dq_metadata.scope import ID_PATTERN, Scope
from dq_stores.documents import ANY, DocumentWrite, IndexEntry, StoredDocument
from dq_stores.filesystem import FilesystemBackend, _accel
from dq_stores.filesystem._records import decode_record, encode_record

READ_HEAD = _accel.build()
pytestmark = pytest.mark.skipif(READ_HEAD is None, reason="the C accelerator is not built")
FRESH = (-0.05, 1.0, 16384)

_chars = st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))
_text = st.text(_chars, max_size=12)
_ids = st.from_regex(ID_PATTERN, fullmatch=True).filter(lambda s: ".." not in s)
_hex = st.binary(min_size=32, max_size=32).map(bytes.hex)
_big = st.builds(
    lambda n, chunk: (chunk * (n // len(chunk) + 1))[:n],
    st.integers(60_000, 140_000),
    st.binary(min_size=1, max_size=16),
)
_bodies = st.one_of(st.binary(max_size=300), _big)
_zones = st.sampled_from([UTC, None, timezone(timedelta(hours=5, minutes=30))])
_fields = st.dictionaries(_text, st.lists(_text, max_size=4).map(tuple), max_size=12)


@st.composite
def _records(draw: st.DrawFn) -> tuple[bytes, Scope, str, StoredDocument]:
    scope = Scope(draw(_ids), draw(_ids))
    kind = draw(_ids)
    doc = StoredDocument(
        scope,
        kind,
        draw(st.text(_chars, min_size=1, max_size=30)),
        draw(st.integers(1, 10**18 - 2)),
        draw(_bodies),
        draw(st.one_of(_hex, _text)),
        IndexEntry(draw(_fields), draw(_text)),
        draw(st.datetimes(timezones=_zones)),
        draw(st.booleans()),
    )
    if draw(st.booleans()):
        return format1(kind, doc), scope, kind, doc
    return encode_record(kind, doc, draw(st.one_of(st.just(""), _hex, _text))), scope, kind, doc


_TOKENS = [b"", b"0", b"1", b"2", b"+1", b" 1", b"1 ", b"1_0", b"007", b"-1", b"-0",
           "\u0663".encode(), b"9" * 19, b"9" * 40, b"\xff", b"\xc3", b"\xed\xa0\x80",
           b"#2", b"#1", b"x", b"2026-13-01T00:00:00", b"2026-01-01", b"\n"]  # fmt: skip


def _count_parts(parts: list[bytes]) -> list[int]:
    """Where the index entries' value counts are (format 2 from part 12, 1 from 8)."""
    at, found = (12 if parts[0] == b"#2" else 8), []
    while at + 1 < len(parts) and parts[at + 1].isdigit():
        found.append(at + 1)
        at += 2 + int(parts[at + 1])
    return found


@st.composite
def _damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one kind of damage: raw (hash breaks) or re-hashed (hash holds)."""
    how = draw(st.sampled_from(
        ["flip", "cut", "grow", "part", "part", "part", "count", "drop", "add", "length", "body"]
    ))  # fmt: skip
    if how in ("flip", "cut", "grow"):
        at = draw(st.integers(0, len(data)))
        if how == "cut":
            return data[:at]
        if how == "grow":
            return data + draw(st.binary(min_size=1, max_size=8))
        if at == len(data):
            return data + b"x"
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    newline = data.index(b"\n", 64)
    start = newline + 1 + int(data[65:newline])
    header, body = data[newline + 1 : start], data[start:]
    parts = header.split(b"\0")
    last = len(parts) - 1
    at = draw(st.one_of(st.integers(0, min(last, 12)), st.integers(0, last)))
    token = draw(st.one_of(st.sampled_from(_TOKENS), st.binary(max_size=6)))
    length = None
    counts = _count_parts(parts)
    if how == "count" and counts:
        at = draw(st.sampled_from(counts))
        parts[at] = str(max(0, int(parts[at]) + draw(st.sampled_from([-2, -1, 1, 2, 9])))).encode()
    elif how in ("part", "count"):
        parts[at] = token
    elif how == "drop":
        del parts[at]
    elif how == "add":
        parts.insert(at, token)
    elif how == "length":
        length = draw(st.sampled_from([b"", b"+1", b" 1", b"1_0", b"-1", b"9" * 17, b"x"]))
        length = draw(st.sampled_from([str(len(header) + d).encode() for d in (-3, -1, 1, 5)])) \
            if draw(st.booleans()) else length  # fmt: skip
    else:
        body = draw(st.sampled_from([body[:-1], body + b"!", b""]))
    return sealed(b"\0".join(parts), body, length)


def _python(data: bytes, scope: Scope, kind: str, key: str) -> StoredDocument | str:
    try:
        return decode_record(data, scope, kind, key)
    except IntegrityError as exc:
        return f"IntegrityError: {exc}"


def _native(base: Path, data: bytes, scope: Scope, kind: str, key: str) -> tuple[Any, bool]:
    """What the backend's native path makes of ``data`` as a head, and whether C decided."""
    Path(f"{base}.head").write_bytes(data)
    assert READ_HEAD is not None
    got = READ_HEAD(str(base), scope, kind, key, set(), *FRESH)
    if len(got) == 5:
        assert got[2] == os.stat(f"{base}.head").st_mode
        return got[0], True
    assert got[0] == data  # handed back verbatim: Python decides
    return _python(got[0], scope, kind, key), False


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("native") / "k"


@settings(max_examples=150)
@given(record=_records())
def test_every_valid_record_is_decided_in_c_exactly_as_python_decodes_it(
    base: Path, record: tuple[bytes, Scope, str, StoredDocument]
) -> None:
    data, scope, kind, doc = record
    expected = _python(data, scope, kind, doc.key)
    assert expected == doc
    got, in_c = _native(base, data, scope, kind, doc.key)
    assert in_c
    assert got == expected
    assert type(got.index) is IndexEntry
    assert type(got.revision) is int


@settings(max_examples=300)  # 30k mutated records under ASan/UBSan: ADR 0016
@given(record=_records(), data=st.data(), other=st.sampled_from(["same", "key", "kind", "scope"]))
def test_damaged_records_get_the_python_verdict(
    base: Path, record: tuple[bytes, Scope, str, StoredDocument], data: st.DataObject, other: str
) -> None:
    raw, scope, kind, doc = record
    damaged = data.draw(_damaged(raw))
    key = doc.key + "~" if other == "key" else doc.key
    kind = kind + "x" if other == "kind" else kind
    scope = Scope(scope.tenant + "x", scope.environment) if other == "scope" else scope
    got, _ = _native(base, damaged, scope, kind, key)
    assert got == _python(damaged, scope, kind, key)


@example(header=b"#2\0t\0e\0k\0key\x001\x000\0s\0\0" + b"2020-01-01T00:00:00\x000\0\0f\x001")
@given(header=st.binary(max_size=80))
def test_arbitrary_header_bytes_get_the_python_verdict(base: Path, header: bytes) -> None:
    data = sealed(header, b"")
    got, _ = _native(base, data, Scope("t", "e"), "k", "key")
    assert got == _python(data, Scope("t", "e"), "k", "key")


@pytest.mark.parametrize("fmt", [1, 2])
def test_every_token_in_every_header_part_gets_the_python_verdict(base: Path, fmt: int) -> None:
    """Exhaustively: each part of a record's header replaced by each odd token, re-hashed."""
    scope = Scope("t", "e")
    doc = StoredDocument(
        scope, "k", "kéy", 3, b"{}", "ab", IndexEntry({"f": ("a", ""), "g": ()}, "s"),
        datetime(2020, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    data = format1("k", doc) if fmt == 1 else encode_record("k", doc, "c" * 64)
    newline = data.index(b"\n", 64)
    parts = data[newline + 1 : -2].split(b"\0")
    decided_in_c = 0
    for at in range(len(parts)):
        for token in _TOKENS:
            odd = sealed(b"\0".join([*parts[:at], token, *parts[at + 1 :]]), b"{}")
            got, in_c = _native(base, odd, scope, "k", "kéy")
            assert got == _python(odd, scope, "k", "kéy"), (at, token)
            decided_in_c += in_c
    assert decided_in_c > 0  # e.g. another sort key or index value


def _put(root: Path) -> tuple[FilesystemBackend, Path, bytes]:
    backend = FilesystemBackend(root, durability="process")
    body = canonical_json({"a": 1})
    backend.put(Scope("t", "e"), "k", DocumentWrite("key", body, content_hash(body)), ANY)
    (head,) = root.glob("t/e/docs/k/*.head")
    return backend, Path(str(head)[: -len(".head")]), head.read_bytes()


def test_file_errors_are_the_python_paths(tmp_path: Path) -> None:
    assert READ_HEAD is not None
    with pytest.raises(FileNotFoundError):
        READ_HEAD(str(tmp_path / "missing"), Scope("t", "e"), "k", "key", set(), *FRESH)
    (tmp_path / "dir.head").mkdir()
    os.mkfifo(tmp_path / "fifo.head")
    for odd in ("dir", "fifo"):  # not read (a FIFO would block): empty bytes, Python decides
        got = READ_HEAD(str(tmp_path / odd), Scope("t", "e"), "k", "key", set(), *FRESH)
        assert len(got) == 6
        assert got[0] == b""
    with pytest.raises(ValueError, match="embedded null"):
        READ_HEAD(str(tmp_path / "a\0b"), Scope("t", "e"), "k", "key", set(), *FRESH)


def test_head_states_fresh_known_next_and_old(tmp_path: Path) -> None:
    assert READ_HEAD is not None
    backend, base, _ = _put(tmp_path / "s")
    args = (str(base), Scope("t", "e"), "k", "key")
    linked: set[Any] = set()
    _, inode, _, nlink, state = READ_HEAD(*args, linked, *FRESH)
    assert (nlink, state) == (2, 1)  # fresh, two names, no r2: remembered in C
    assert linked == {inode}
    assert inode == (os.stat(f"{base}.head").st_ino, os.stat(f"{base}.head").st_dev,
                     Path(f"{base}.head").read_bytes()[:64], os.stat(f"{base}.head").st_ctime_ns)  # fmt: skip
    assert READ_HEAD(*args, linked, *FRESH)[4] == 0  # known
    Path(f"{base}.r2").write_bytes(b"")
    assert READ_HEAD(*args, set(), *FRESH)[4] == 1  # a next file beside it: a writer in flight
    os.unlink(f"{base}.r1")
    Path(f"{base}.r1").write_bytes(b"")  # r1 is another inode: a copy over the head
    os.link(f"{base}.head", f"{base}.elsewhere")  # ... with a second name elsewhere
    assert READ_HEAD(*args, set(), *FRESH)[3:] == (2, 3)
    os.unlink(f"{base}.elsewhere")
    os.unlink(f"{base}.r1")
    os.link(f"{base}.head", f"{base}.r1")
    assert READ_HEAD(*args, set(), -10.0, -5.0, 16384)[4] == 3  # not fresh: Python checks
    os.link(f"{base}.head", f"{base}.extra")  # a third name: Python checks
    assert READ_HEAD(*args, set(), *FRESH)[3:] == (3, 3)
    os.unlink(f"{base}.extra")
    os.unlink(f"{base}.r1")  # its revision file removed (one name): Python checks
    assert READ_HEAD(*args, set(), *FRESH)[3:] == (1, 3)
    os.link(f"{base}.head", f"{base}.r1")
    full = {("x", i) for i in range(3)}
    os.unlink(f"{base}.r2")
    relinked = READ_HEAD(*args, full, -0.05, 1.0, 3)[1]  # a new ctime: the links above
    assert relinked[:3] == inode[:3]
    assert full == {relinked}  # the memo starts again at its limit, like _remember_linked
    os.chmod(f"{base}.head", 0o444)  # sealed (a superseded revision put back): Python decides
    assert READ_HEAD(*args, set(), *FRESH)[4] == 3
    backend.close()


@pytest.mark.usefixtures("fs_read_path")
def test_get_of_a_rehashed_odd_head_raises_the_same_error(tmp_path: Path) -> None:
    backend, base, data = _put(tmp_path / "s")
    newline = data.index(b"\n", 64)
    start = newline + 1 + int(data[65:newline])
    header = data[newline + 1 : start].replace(b"\x001\x00", b"\x00+1\x00", 1)
    Path(f"{base}.head").write_bytes(sealed(header, data[start:]))
    # "+1" is a revision int() accepts: C hands the record to Python, which reads it
    assert backend.get(Scope("t", "e"), "k", "key").revision == 1
    Path(f"{base}.head").write_bytes(sealed(header.replace(b"\x00k\x00", b"\x00j\x00", 1), b"x"))
    with pytest.raises(IntegrityError, match="record belongs to another document"):
        backend.get(Scope("t", "e"), "k", "key")
    backend.close()


def test_dq_fs_native_0_forces_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DQ_FS_NATIVE", "0")
    assert _accel.load() is None
    monkeypatch.setenv("DQ_FS_NATIVE", "1")
    assert _accel.load() is READ_HEAD


def test_a_stale_build_is_not_used_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    newer = tmp_path / "_native.c"
    newer.write_text("/* edited after the build */")
    os.utime(newer, (time.time() + 60, time.time() + 60))
    monkeypatch.setattr(_accel, "SOURCES", (*_accel.SOURCES, str(newer)))
    with pytest.warns(RuntimeWarning, match="older than _native.c"):
        assert _accel.build() is None
    monkeypatch.setattr(_accel, "SOURCES", (str(tmp_path / "absent.c"),))  # an installed wheel
    assert _accel.build() is READ_HEAD
    monkeypatch.setattr(_accel, "ABI", _accel.ABI + 1)
    with pytest.warns(RuntimeWarning, match="ABI"):
        assert _accel.build() is None


def test_a_document_class_with_other_fields_is_not_built_in_c(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_accel, "DOC_FIELDS", (*_accel.DOC_FIELDS, "mode"))
    with pytest.warns(RuntimeWarning, match="StoredDocument's fields"):
        assert _accel.build() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.undo()
        assert _accel.build() is READ_HEAD
