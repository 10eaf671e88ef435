"""The archive reader's bounds: the longest line or JSON member, decompression in
bounded pieces, and the set of keys seen in a scope (exact, compact)."""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import json
import lzma
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dq_metadata.errors import IntegrityError, ValidationError
from dq_metadata.scope import Scope
from dq_registries.cli import app
from dq_stores.archive import ArchiveWriter, _guards, read_archive
from dq_stores.archive._guards import Inflating, SeenKeys
from dq_stores.documents import ANY
from dq_stores.memory import MemoryBackend
from dq_stores.testing._helpers import doc

SCOPE = Scope("acme", "prod")
HEADER = {"format": "dq-archive", "version": 2, "scopes": [["acme", "prod"]]}


def _member(name: str, data: bytes, declared: int | None = None) -> bytes:
    """One raw tar member; ``declared``: the size its header states (may exceed ``data``)."""
    info = tarfile.TarInfo(f"dq-archive/{name}")
    info.size = len(data) if declared is None else declared
    padding = b"\0" * (-len(data) % 512) if declared is None else b""
    return info.tobuf(format=tarfile.PAX_FORMAT) + data + padding


def _tar(path: Path, *members: bytes, end: bool = True) -> Path:
    path.write_bytes(b"".join(members) + (b"\0" * 1024 if end else b""))
    return path


def _read(path: Path, limit: int | None = None) -> list[object]:
    return list(read_archive(path, max_line_bytes=limit))


def _header() -> bytes:
    return _member("header.json", json.dumps(HEADER).encode())


@given(length=st.integers(1, 3000), limit=st.integers(1, 3000), newline=st.booleans())
def test_property_a_line_is_refused_exactly_when_over_the_limit(
    tmp_path_factory: pytest.TempPathFactory, length: int, limit: int, newline: bool
) -> None:
    line = b"x" * (length - newline) + b"\n" * newline
    path = _tar(
        tmp_path_factory.mktemp("line") / "a.tar",
        _header(),
        _member("scopes/acme/prod/documents-000001.jsonl", line),
    )
    with pytest.raises(IntegrityError) as caught:
        _read(path, limit=max(limit, 600))  # the header itself must fit
    over = length > max(limit, 600)
    assert ("longer than" in str(caught.value)) is over
    if over:
        assert "documents-000001.jsonl line 1: " in str(caught.value)


def test_a_huge_line_is_refused_after_reading_at_most_the_limit(tmp_path: Path) -> None:
    """The member claims a terabyte; the file holds three times the limit and then
    ends: the refusal comes from the limit, not from reaching the file's end."""
    limit = 1 << 16
    path = _tar(
        tmp_path / "huge.tar",
        _header(),
        _member("scopes/acme/prod/documents-000001.jsonl", b"x" * (3 * limit), declared=1 << 40),
        end=False,
    )
    with pytest.raises(IntegrityError, match=f"line 1: a line longer than {limit} bytes"):
        _read(path, limit=limit)
    with pytest.raises(IntegrityError, match="truncated"):
        _read(path, limit=4 * limit)  # a limit above what is there: the end is reached


@pytest.mark.parametrize("name", ["header.json", "manifest.json"])
def test_a_json_member_over_the_limit_is_refused_before_it_is_read(
    tmp_path: Path, name: str
) -> None:
    big = _member(name, b" " * 10, declared=1 << 40)
    members = (big,) if name == "header.json" else (_header(), big)
    with pytest.raises(IntegrityError, match="maximum record size"):
        _read(_tar(tmp_path / "big.tar", *members, end=False), limit=4096)


def _archive(path: Path, keys: int = 3) -> Path:
    backend = MemoryBackend()
    for i in range(keys):
        backend.put(SCOPE, "widget", doc(f"k{i}", "v" * 400), ANY)
    with ArchiveWriter(path) as writer:
        writer.begin([SCOPE])
        for history in backend.iter_histories(SCOPE):
            writer.add_history(SCOPE, history)
        writer.finish()
    return path


def test_the_default_limit_is_the_documented_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _guards.MAX_LINE_BYTES == 1 << 30
    path = _archive(tmp_path / "a.tar")
    assert len(_read(path)) == 5  # header, three histories, end
    monkeypatch.setattr(_guards, "MAX_LINE_BYTES", 300)
    with pytest.raises(IntegrityError, match="longer than 300 bytes"):
        _read(path)


def test_the_writer_refuses_a_line_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So every archive it writes reads back; nothing is left at the path."""
    monkeypatch.setattr(_guards, "MAX_LINE_BYTES", 300)
    with pytest.raises(ValidationError, match=r"widget 'k0'.* over the archive's maximum"):
        _archive(tmp_path / "a.tar")
    assert list(tmp_path.iterdir()) == []


def test_cli_verify_archive_and_import_refuse_a_line_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _archive(tmp_path / "a.tar")
    config = tmp_path / "dst.yaml"
    config.write_text(f"filesystem:\n  root: {tmp_path / 'dst'}\n")
    monkeypatch.setattr(_guards, "MAX_LINE_BYTES", 300)
    runner = CliRunner(env={"DQ_HOME": str(tmp_path / "home"), "DQ_CONFIG": None})
    for args in (["verify-archive", str(path)], ["import", str(path), "--config", str(config)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.stdout
        assert "documents-000001.jsonl line 1: a line longer than 300 bytes" in result.stderr
    assert not (tmp_path / "dst").exists() or not any((tmp_path / "dst").rglob("*.json"))


def test_decompression_hands_out_at_most_what_is_asked(tmp_path: Path) -> None:
    """A small compressed piece expanding to 64 MiB is never held whole."""
    bomb = gzip.compress(b"\0" * (64 << 20))
    stream = Inflating(io.BytesIO(bomb), b"\x1f\x8b")
    buffer = bytearray(1 << 16)
    total = 0
    while n := stream.readinto(buffer):
        assert n <= len(buffer)
        total += n
    assert total == 64 << 20


@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(["a", "b", "dq_pruned_history"]), st.text(max_size=3)),
        max_size=1500,
    )
)
def test_property_seen_keys_is_a_set(pairs: list[tuple[str, str]]) -> None:
    seen, model = SeenKeys(), set()
    for pair in pairs:
        assert seen.add(*pair) is (pair not in model)
        model.add(pair)
    assert len(seen) == len(model)
    seen.clear()
    assert len(seen) == 0
    assert all(seen.add(*pair) for pair in model)


def test_seen_keys_grows_and_stays_exact() -> None:
    seen = SeenKeys()
    assert all(seen.add("k", str(i)) for i in range(20_000))
    assert not any(seen.add("k", str(i)) for i in range(20_000))
    assert all(seen.add("j", str(i)) for i in range(100))
    assert len(seen) == 20_100


_STREAM_DATA = b"".join(
    f"{i:08x}".encode() * (1 + i * 7919 % 97) for i in range(4000)
)  # ~1.6 MB, compressible: a stream's end often lands after a read that filled its buffer


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(1, len(_STREAM_DATA) - 1), max_size=5, unique=True),
    reads=st.sampled_from([1000, 4096, 65536, 100_000]),
    compression=st.sampled_from(["gzip", "bz2", "lzma"]),
)
def test_several_compressed_streams_read_as_their_concatenation(
    cuts: list[int], reads: int, compression: str
) -> None:
    """Wherever one stream ends and the next begins, and whatever the read size,
    the bytes are those of ``zcat`` (a stream's leftover input is not read twice)."""
    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "lzma": lzma.compress}[compression]
    bounds = [0, *sorted(cuts), len(_STREAM_DATA)]
    blob = b"".join(compress(_STREAM_DATA[a:b], 1) for a, b in itertools.pairwise(bounds))
    stream = _guards.open_decompressed(io.BufferedReader(io.BytesIO(blob)))
    out = bytearray()
    while piece := stream.read(reads):
        out += piece
    assert out == _STREAM_DATA
