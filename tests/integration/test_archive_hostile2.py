"""Hostile and damaged archives, second round: containers, members, bits, time.

What a user may hand ``dq verify-archive`` / ``dq import``: an archive recompressed
by another tool (several compressed streams, legal in gzip, bzip2 and xz), tar
members of other types or names, odd PAX headers, absurd sizes, a member name
used twice (``tar xf`` keeps only the last one), every truncation, random bit
flips, and a file that changes between import's verifying pass and its writing
pass. Each is refused — by verification, before anything is written — or read
exactly as the intact archive.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import itertools
import json
import lzma
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.integration._forge import Members, members_of, resign, write_tar
from tests.integration._transfer_world import populate

import dq_registries.operations.transfer._api as transfer_api
from dq_metadata.errors import DQError, IntegrityError
from dq_registries.operations.transfer import (
    Endpoint,
    export_archive,
    import_archive,
    open_endpoint,
    verify_archive,
)
from dq_registries.operations.transfer._results import normalize_body
from dq_stores.archive import ArchiveEnd, ArchiveHeader, ArchiveHistory, ArchiveResult, read_archive

SOURCE = {"results": {"inline_limit_bytes": 64}}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile2")
    with open_endpoint({**SOURCE, "filesystem": {"root": str(tmp / "src")}}) as source:
        populate(source)
        path = tmp / "backup.tar"
        assert export_archive(source, path).ok
    return path


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Endpoint]:
    config = {**SOURCE, "default_backend": "sqlite", "sqlite": {"url": f"sqlite:///{tmp_path}/t"}}
    with open_endpoint(config) as endpoint:
        yield endpoint


def _everything(endpoint: Endpoint) -> list[tuple[str, str, str, int]]:
    return sorted(
        (str(s), h[-1].kind, h[-1].key, len(h))
        for s in endpoint.backend.iter_scopes()
        for h in endpoint.backend.iter_histories(s)
    )


def _content(path: Path) -> tuple[list[Any], list[str]]:
    """Everything a reader takes from ``path`` (results bytes hashed), and its problems."""
    out: list[Any] = []
    problems: list[str] = []
    for item in read_archive(path, normalize=normalize_body):
        if isinstance(item, ArchiveHeader):
            out.append(("header", item.version, item.scopes))
        elif isinstance(item, ArchiveHistory):
            out.append((item.scope, item.history))
        elif isinstance(item, ArchiveResult):
            data = hashlib.sha256(b"".join(item.chunks())).hexdigest()
            out.append((item.scope, item.meta, data))
        elif isinstance(item, ArchiveEnd):
            problems = item.problems()
    return out, problems


def _refused(path: Path, target: Endpoint, says: str = "") -> None:
    with pytest.raises(DQError) as caught:
        verify_archive(path)
    assert says in str(caught.value)
    with pytest.raises(DQError):
        import_archive(target, path)
    assert _everything(target) == []


def _tar_of(members: Members, out: Path, tweak: Callable[[tarfile.TarInfo], None]) -> Path:
    """A tar of ``members``; ``tweak`` edits each member's header before it is written."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tweak(info)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out


def _first_documents(members: Members) -> str:
    return next(name for name, _ in members if name.endswith(".jsonl"))


# -- compression -----------------------------------------------------------------------

STREAMS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("compression", list(STREAMS))
def test_an_archive_recompressed_as_several_streams_reads_as_one(
    archive: Path, target: Endpoint, tmp_path: Path, compression: str
) -> None:
    """gzip (RFC 1952: "a series of members"), bzip2 and xz files may hold several
    compressed streams, read back to back (``pbzip2`` and ``bgzip`` write them;
    ``zcat``/``bzcat``/``xzcat`` and Python's decompressors read them as one)."""
    tar = archive.read_bytes()
    compress = STREAMS[compression]
    assert len(tar) > 65536 + 1024  # the second cut: a stream ends after a full read
    for n, cut in enumerate(([0, 700, len(tar) // 2, len(tar)], [0, len(tar) - 1024, len(tar)])):
        path = tmp_path / f"streams{n}.{compression}"
        path.write_bytes(b"".join(compress(tar[a:b]) for a, b in itertools.pairwise(cut)))
        assert _content(path) == _content(archive)
    assert import_archive(target, path, verify=True).ok


@pytest.mark.parametrize("compression", list(STREAMS))
def test_garbage_or_another_format_after_a_stream_is_still_refused(
    archive: Path, target: Endpoint, tmp_path: Path, compression: str
) -> None:
    tar = archive.read_bytes()
    compress = STREAMS[compression]
    other = gzip.compress if compression != "gzip" else lzma.compress
    for n, tail in enumerate((b"\x1f", b"BZ", compress(b"\x00" * 10)[:5], other(b"\x00" * 512))):
        path = tmp_path / f"tail{n}.{compression}"
        path.write_bytes(compress(tar) + tail)
        _refused(path, target)
    hidden = tmp_path / f"hidden.{compression}"  # a second stream after the manifest
    hidden.write_bytes(compress(tar) + compress(b"hidden payload"))
    _refused(hidden, target, "after the end of the archive")


# -- members: types, names, headers --------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.CHRTYPE,
        tarfile.BLKTYPE,
        tarfile.DIRTYPE,
        tarfile.FIFOTYPE,
    ],
    ids=["symlink", "hardlink", "chardev", "blockdev", "directory", "fifo"],
)
def test_a_member_that_is_not_a_regular_file_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path, kind: bytes
) -> None:
    members = members_of(archive)
    victim = _first_documents(members)

    def tweak(info: tarfile.TarInfo) -> None:
        if info.name == victim:
            info.type, info.linkname, info.size = kind, "/etc/passwd", 0

    _refused(_tar_of(members, tmp_path / "odd.tar", tweak), target, "unexpected archive member")


@pytest.mark.parametrize(
    "name",
    [
        "dq-archive/scopes/../../etc/documents-000001.jsonl",
        "dq-archive/scopes/acme/dev/../dev/documents-000001.jsonl",
        "/dq-archive/scopes/acme/dev/documents-000001.jsonl",
        "./dq-archive/scopes/acme/dev/documents-000001.jsonl",
        "dq-archive//scopes/acme/dev/documents-000001.jsonl",
        "dq-archive/scopes/acme/dev/documents-1.jsonl",
    ],
)
def test_a_path_traversal_or_odd_member_name_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path, name: str
) -> None:
    members = members_of(archive)
    at = [n for n, _ in members].index(_first_documents(members))
    members[at] = (name, members[at][1])
    _refused(write_tar(members, tmp_path / "names.tar"), target, "archive member")


@pytest.mark.parametrize(
    "pax",
    [
        {"comment": "hello"},
        {"dq.unknown": "x" * 10_000},
        {"mtime": "-1e99"},
        {"uid": "9" * 30},
        {"hdrcharset": "BINARY"},
        {"uname": "\u00e9\u4e2d"},
    ],
    ids=["comment", "unknown-long", "odd-mtime", "huge-uid", "hdrcharset", "unicode-uname"],
)
def test_odd_pax_fields_change_nothing_read(
    archive: Path, tmp_path: Path, pax: dict[str, str]
) -> None:
    members = members_of(archive)

    def tweak(info: tarfile.TarInfo) -> None:
        info.pax_headers = dict(pax)

    assert _content(_tar_of(members, tmp_path / "pax.tar", tweak)) == _content(archive)


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT], ids=["gnu", "ustar"])
def test_other_tar_dialects_read_the_same(archive: Path, tmp_path: Path, fmt: int) -> None:
    out = tmp_path / "dialect.tar"
    with tarfile.open(out, "w", format=fmt) as tar:
        for name, data in members_of(archive):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert _content(out) == _content(archive)


def _set_size(data: bytearray, offset: int, size: int) -> None:
    """Rewrite the size field (base-256) of the tar header at ``offset``, re-checksummed."""
    header = data[offset : offset + 512]
    header[124:136] = b"\x80" + size.to_bytes(11, "big")
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header)
    data[offset : offset + 512] = header


@pytest.mark.parametrize("which", ["header", "documents", "results-meta", "manifest"])
def test_an_absurd_member_size_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path, which: str
) -> None:
    with tarfile.open(archive) as tar:
        offsets = {m.name: m.offset for m in tar.getmembers()}
    pick = {
        "header": lambda n: n.endswith("header.json"),
        "documents": lambda n: n.endswith(".jsonl"),
        "results-meta": lambda n: n.endswith(".json") and "/results/" in n,
        "manifest": lambda n: n.endswith("manifest.json"),
    }[which]
    data = bytearray(archive.read_bytes())
    _set_size(data, offsets[next(n for n in offsets if pick(n))], 1 << 60)
    path = tmp_path / "huge.tar"
    path.write_bytes(data)
    _refused(path, target)


# -- member names used twice, numbering --------------------------------------------


def _renamed(members: Members, pick: Callable[[str], bool], old: str, new: str) -> Members:
    out = list(members)
    at = next(i for i, (name, _) in enumerate(out) if pick(name))
    out[at] = (out[at][0].replace(old, new), out[at][1])
    return out


def test_a_member_name_used_twice_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path
) -> None:
    """``tar xf`` keeps the last of two members with one name: an archive dq imports
    whole would extract, with ordinary tools, without the first member's keys."""
    members = members_of(archive)
    second = _renamed(members, lambda n: n.endswith("documents-000002.jsonl"), "000002", "000001")
    forged = resign(second, tmp_path / "twice.tar")
    listed = subprocess.run(["tar", "tf", str(forged)], capture_output=True, text=True, check=True)
    assert len(listed.stdout.splitlines()) != len(set(listed.stdout.splitlines()))
    _refused(forged, target, "documents-000001.jsonl")


@pytest.mark.parametrize(
    ("pick", "old", "new"),
    [
        (lambda n: n.endswith("documents-000002.jsonl"), "000002", "000009"),
        (lambda n: n.endswith("documents-000001.jsonl"), "000001", "000002"),
        (lambda n: n.endswith("results/000001.json"), "000001", "000003"),
    ],
    ids=["documents-gap", "documents-not-from-1", "results-gap"],
)
def test_members_are_numbered_from_one_without_gaps(
    archive: Path, target: Endpoint, tmp_path: Path, pick: Callable[[str], bool], old: str, new: str
) -> None:
    members = _renamed(members_of(archive), pick, old, new)
    if new == "000003":  # its bytes member follows the renamed metadata
        members = _renamed(members, lambda n: n.endswith("results/000001.bin"), old, new)
    _refused(resign(members, tmp_path / "numbers.tar"), target, "numbered")


# -- results objects: their ref, their name -----------------------------------------


def _last_results(members: Members) -> int:
    return [i for i, (n, _) in enumerate(members) if n.endswith(".json") and "/results/" in n][-1]


@pytest.mark.parametrize(
    ("field", "value"),
    [("sha256", "0" * 64), ("size", 1), ("content_type", "text/plain")],
)
def test_a_results_ref_that_differs_from_its_object_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path, field: str, value: Any
) -> None:
    """The importer checks its copy against ``ref``; verification checks the bytes
    against the object's own size/sha256. Were they allowed to differ, a verified
    archive would fail in the last scope, the earlier scopes written."""
    members = members_of(archive)
    at = _last_results(members)
    meta = json.loads(members[at][1])
    meta["ref"][field] = value
    members[at] = (members[at][0], json.dumps(meta).encode())
    _refused(resign(members, tmp_path / "ref.tar"), target, "ref does not repeat")


def test_a_results_object_twice_in_a_scope_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path
) -> None:
    """A second object under a run's results name, after the run: importing it
    would replace the bytes the run references with others."""
    members = members_of(archive)
    at = _last_results(members)
    meta = json.loads(members[at][1])
    other = b"X" * meta["size"]
    sha = hashlib.sha256(other).hexdigest()
    meta["sha256"] = meta["ref"]["sha256"] = sha
    base = members[at][0][: -len("000001.json")]
    number = int(members[at][0][-len("000001.json") : -len(".json")]) + 1
    extra = [
        (f"{base}{number:06d}.json", json.dumps(meta).encode()),
        (f"{base}{number:06d}.bin", other),
    ]
    forged = resign([*members[:-1], *extra, members[-1]], tmp_path / "twice.tar")
    _refused(forged, target, "appears twice")


@pytest.mark.parametrize("where", ["dropped", "after-its-run"])
def test_a_run_whose_results_object_is_missing_or_late_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path, where: str
) -> None:
    """Without its results object (or with it after the run, where an importer has
    no copy to link yet), the import would write a run whose results do not open."""
    members = members_of(archive)
    at = _last_results(members)
    pair = members[at : at + 2]
    rest = [*members[:at], *members[at + 2 :]]
    if where == "after-its-run":
        rest = [*rest[:-1], *pair, rest[-1]]
    _refused(resign(rest, tmp_path / "objects.tar"), target, "does not hold before it")


# -- truncation and bit flips ------------------------------------------------------


@pytest.mark.parametrize("compression", ["plain", *STREAMS])
def test_every_truncation_is_refused_or_loses_only_padding(
    archive: Path, tmp_path: Path, compression: str
) -> None:
    """Cut anywhere, an archive is refused — except a plain tar cut after its
    manifest's data (in its padding or end-of-archive blocks), which still holds
    everything the manifest proves and reads exactly as the whole file."""
    data = STREAMS.get(compression, lambda b: b)(archive.read_bytes())
    with tarfile.open(archive) as tar:
        manifest = tar.getmembers()[-1]
    whole = _content(archive)
    step = 1024 if compression == "plain" else 256
    path = tmp_path / "cut"
    for end in range(0, len(data), step):
        path.write_bytes(data[:end])
        if compression == "plain" and end >= manifest.offset_data + manifest.size:
            assert _content(path) == whole
            continue
        with pytest.raises(DQError):
            verify_archive(path)


def test_results_bytes_cut_short_raise_the_projects_error(archive: Path, tmp_path: Path) -> None:
    """A consumer reading a results object's chunks (import's writing pass) gets an
    ``IntegrityError``, not ``tarfile.ReadError``, when the file ends inside it."""
    with tarfile.open(archive) as tar:
        bin_member = next(m for m in tar.getmembers() if m.name.endswith(".bin"))
    path = tmp_path / "cut.tar"
    path.write_bytes(archive.read_bytes()[: bin_member.offset_data + bin_member.size // 2])
    items = read_archive(path)  # kept: closing it closes the file
    result = next(item for item in items if isinstance(item, ArchiveResult))
    with pytest.raises(IntegrityError, match="inside results object"):
        b"".join(result.chunks())


@pytest.mark.parametrize("compression", ["plain", *STREAMS])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_bit_flip_is_refused_or_harmless(
    archive: Path, tmp_path: Path, compression: str, where: float, bit: int
) -> None:
    """Never a silent change: a flipped bit fails reading or verification, or the
    archive reads exactly as before (a flip in tar bookkeeping or gzip's header)."""
    data = bytearray(STREAMS.get(compression, lambda b: b)(archive.read_bytes()))
    data[int(where * len(data))] ^= 1 << bit
    path = tmp_path / f"flip.{compression}"
    path.write_bytes(data)
    try:
        content, problems = _content(path)
    except DQError:
        return
    assert problems or content == _content(archive)[0]


# -- a file that changes between import's two passes -------------------------------


def _import_changed_between_passes(
    archive: Path,
    target: Endpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[Path, Path], object],
) -> Any:
    """Import a copy of ``archive`` whose file ``change(forged, path)`` alters right
    after the verifying pass; ``forged``: the archive re-signed with a key less."""
    members = members_of(archive)
    at = [n for n, _ in members].index(_first_documents(members))
    name, data = members[at]
    members[at] = (name, b"".join(data.splitlines(keepends=True)[1:]))  # a key less
    forged = resign(members, tmp_path / "other.tar")
    path = tmp_path / "incoming.tar"
    shutil.copy(archive, path)
    verify = transfer_api.verify_archive

    def verify_then_change(*args: Any, **kwargs: Any) -> Any:
        report = verify(*args, **kwargs)
        change(forged, path)
        return report

    monkeypatch.setattr(transfer_api, "verify_archive", verify_then_change)
    report = import_archive(target, path)
    monkeypatch.undo()
    return report


def test_an_archive_swapped_between_verifying_and_writing_is_reported(
    archive: Path, target: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dq import`` verifies the file, then reads it again to write. A file
    rewritten in place in between must not import as if verified: the writing pass
    checks that it read what the first pass verified."""
    report = _import_changed_between_passes(archive, target, tmp_path, monkeypatch, shutil.copy)
    assert not report.ok
    assert any("changed" in d for d in report.differences), report.differences


def test_an_archive_renamed_over_between_verifying_and_writing_imports_what_was_verified(
    archive: Path, target: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync tool or a download replaces a file by renaming another over its name:
    both passes read the one file import opened, so the verified archive is what is
    imported, whole, and nothing of the other file."""
    report = _import_changed_between_passes(archive, target, tmp_path, monkeypatch, os.replace)
    assert report.ok, report.differences
    with open_endpoint({**SOURCE, "filesystem": {"root": str(tmp_path / "check")}}) as check:
        assert import_archive(check, archive).ok
        assert _everything(target) == _everything(check)


@pytest.mark.parametrize(
    "edit",
    [{"version": 1}, {"version": 3}, {"version": "2"}, {"format": "other"}, {"format": None}],
    ids=["version-1", "version-3", "version-str", "format-other", "format-missing"],
)
def test_a_manifest_whose_format_or_version_is_not_the_headers_is_refused(
    archive: Path, tmp_path: Path, edit: dict[str, Any]
) -> None:
    """The manifest's own ``format`` and ``version`` are outside the archive digest;
    the writer writes them from the same constants as the header's, so any other
    value means the file was edited."""
    members = members_of(archive)
    name, data = members[-1]
    assert name.endswith("manifest.json")
    manifest = {**json.loads(data), **edit}
    members[-1] = (name, json.dumps({k: v for k, v in manifest.items() if v is not None}).encode())
    forged = write_tar(members, tmp_path / "forged.tar")
    with pytest.raises(IntegrityError, match="manifest says format"):
        verify_archive(forged)


# -- ordinary tools, an empty store -------------------------------------------------

TOOLS = {"tar.gz": "zcat", "tar.xz": "xzcat", "tar.bz2": "bzcat"}


@pytest.mark.parametrize("suffix", list(TOOLS))
def test_ordinary_tools_open_an_export(source_root: Path, tmp_path: Path, suffix: str) -> None:
    if shutil.which("tar") is None or shutil.which(TOOLS[suffix]) is None:
        pytest.skip(f"tar or {TOOLS[suffix]} not installed")
    with open_endpoint({**SOURCE, "filesystem": {"root": str(source_root)}}) as source:
        path = tmp_path / f"backup.{suffix}"
        assert export_archive(source, path).ok
    listed = subprocess.run(["tar", "tf", str(path)], capture_output=True, text=True, check=True)
    names = listed.stdout.splitlines()
    assert names[0] == "dq-archive/header.json"
    assert names[-1] == "dq-archive/manifest.json"
    plain = subprocess.run([TOOLS[suffix], str(path)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        assert tar.getnames() == names
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["tar", "xf", str(path), "-C", str(out)], check=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(names)


@pytest.fixture(scope="module")
def source_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("src") / "root"
    with open_endpoint({**SOURCE, "filesystem": {"root": str(root)}}) as source:
        populate(source)
    return root


def test_an_empty_store_round_trips(tmp_path: Path, target: Endpoint) -> None:
    with open_endpoint({"filesystem": {"root": str(tmp_path / "empty")}}) as source:
        path = tmp_path / "empty.tar.gz"
        assert export_archive(source, path, verify=True).ok
    assert verify_archive(path).ok
    report = import_archive(target, path, verify=True)
    assert report.ok
    assert report.keys == 0
    assert _everything(target) == []
