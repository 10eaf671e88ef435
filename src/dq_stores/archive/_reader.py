"""Read a dq archive in one pass with bounded memory, verifying as it goes."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tarfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from dq_metadata.errors import IntegrityError, NotFoundError, ValidationError
from dq_metadata.scope import Scope
from dq_stores.archive import _guards
from dq_stores.archive._guards import (
    SeenKeys,
    check_record_size,
    expect_only_padding,
    open_decompressed,
    read_line,
)
from dq_stores.archive._lines import BodyNormalizer, ScopeTally, decode_line, loads_strict
from dq_stores.archive._writer import FORMAT, READABLE_VERSIONS, ROOT, member_digest_prefix
from dq_stores.documents import StoredDocument
from dq_stores.results import ResultRef
from dq_stores.retention import PRUNED_KIND, marker_key, parse_marker

__all__ = [
    "ArchiveEnd",
    "ArchiveHeader",
    "ArchiveHistory",
    "ArchiveItem",
    "ArchiveResult",
    "read_archive",
]

_READ = 1 << 16


@dataclass(frozen=True, slots=True)
class ArchiveHeader:
    version: int
    scopes: list[Scope]
    created_at: str
    source: str


@dataclass(frozen=True, slots=True)
class ArchiveHistory:
    scope: Scope
    history: list[StoredDocument]


@dataclass(slots=True)
class ArchiveResult:
    """A results object: ``meta`` (see ``ResultMeta``) and its bytes, to read once.

    Consume ``chunks()`` before asking the reader for the next item; whatever is
    left unread is read (and verified) then.
    """

    scope: Scope
    meta: dict[str, Any]
    _stream: IO[bytes]
    _sha: Any = field(default_factory=hashlib.sha256)
    _size: int = 0

    def chunks(self) -> Iterator[bytes]:
        """The object's bytes, in pieces of at most 64 KiB.

        Raises:
            IntegrityError: the archive ends (or its tar is damaged) inside them.
        """
        while True:
            try:
                chunk = self._stream.read(_READ)
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise IntegrityError(
                    f"the archive is truncated or damaged inside results object "
                    f"{self.meta.get('name')!r} in {self.scope}: {exc}"
                ) from exc
            if not chunk:
                return
            self._sha.update(chunk)
            self._size += len(chunk)
            yield chunk

    def _finish(self) -> bytes:
        for _ in self.chunks():
            pass
        if self._size != int(self.meta["size"]) or self._sha.hexdigest() != self.meta["sha256"]:
            raise IntegrityError(
                f"results object {self.meta.get('name')!r} in {self.scope} does not match "
                "its recorded size/sha256: the archive is damaged"
            )
        return bytes(self._sha.digest())


@dataclass(frozen=True, slots=True)
class ArchiveEnd:
    """The manifest as written, and what reading the archive found."""

    manifest: dict[str, Any]
    computed: dict[str, dict[str, Any]]
    archive_digest: str

    def problems(self) -> list[str]:
        """Every difference between the manifest and the archive's contents."""
        out: list[str] = []
        if self.manifest.get("archive_digest") != self.archive_digest:
            out.append("archive digest differs from the manifest's")
        written = self.manifest.get("scopes", {})
        for name in sorted(set(written) | set(self.computed)):
            a, b = written.get(name), self.computed.get(name)
            if a != b:
                out.append(f"scope {name}: manifest says {a}, archive holds {b}")
        return out


ArchiveItem = ArchiveHeader | ArchiveHistory | ArchiveResult | ArchiveEnd


_MEMBER = re.compile(
    r"dq-archive/scopes/([^/]+)/([^/]+)/(documents-[0-9]{6}\.jsonl|results/[0-9]{6}\.(?:json|bin))"
)


def _scope_of(name: str, allowed: set[Scope]) -> Scope:
    """The scope a data member belongs to; it must be one the header announced."""
    match = _MEMBER.fullmatch(name)
    if match is None:
        raise IntegrityError(f"unexpected archive member {name!r}")
    try:
        scope = Scope(match.group(1), match.group(2))
    except ValueError as exc:
        raise IntegrityError(f"archive member {name!r} names no valid scope") from exc
    if scope not in allowed:
        raise IntegrityError(
            f"archive member {name!r} belongs to scope {scope}, which the archive's header "
            "does not list: the archive was altered"
        )
    return scope


_REF_FIELDS = ("size", "sha256", "content_type")


def _result_meta(data: bytes, scope: Scope, name: str) -> dict[str, Any]:
    """A results object's metadata member, checked: what it names and what it must match.

    Its ``ref`` (what an importer checks the copy against) must repeat the
    object's own size, sha256 and content type, which its bytes are checked
    against while verifying: otherwise a verified archive would fail half-way
    through an import.
    """
    try:
        meta = loads_strict(data)
        ref = meta["ref"]
        for item in (meta, ref):
            ResultRef(
                scope,
                meta["run_id"],
                meta["name"],
                item["size"],
                item["sha256"],
                item["content_type"],
            )
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise IntegrityError(f"archive member {name!r} is not a results object's metadata") from exc
    if any(ref[f] != meta[f] or type(ref[f]) is not type(meta[f]) for f in _REF_FIELDS):
        raise IntegrityError(
            f"archive member {name!r}: the results object's ref does not repeat its size, "
            "sha256 and content type: the archive was altered"
        )
    return dict(meta)


class _ScopeCheck:
    """A scope's members are together and numbered as the writer numbers them, no
    key and no results object (run and name) is listed twice in it, and every
    pruned history (starting at ``k > 1``) has its marker there.

    Numbering: a scope's documents members, and its results objects, are numbered
    from ``000001`` without gaps, so no member name is used twice (``tar xf``
    keeps only the last of two members with one name: the archive would extract
    differently from how it imports).

    A key listed twice would be written twice (replaced, or a conflict, half-way
    through an import): refused here, while verifying (memory: see
    :class:`SeenKeys`). A store refuses to restore such a history without the marker recording
    ``pruned_through = k - 1`` (``DocumentBackend.restore_many``); checking it while
    verifying refuses the archive before anything is written. Memory: two 16-byte
    digests per pruned key of the current scope (markers may follow the histories
    they describe in a version-1 archive, so the check runs when the scope ends).
    """

    def __init__(self) -> None:
        self.scope: Scope | None = None
        self._done: set[Scope] = set()
        self._markers: set[bytes] = set()
        self._needed: dict[bytes, str] = {}
        self._keys = SeenKeys()
        self._objects = SeenKeys()
        self._next = {"documents": 1, "results": 1}

    def enter(self, scope: Scope, name: str) -> None:
        """Member ``name`` belongs to ``scope``: a scope's members are contiguous
        and numbered in order."""
        if scope != self.scope:
            self._enter_new(scope, name)
        if name.endswith(".bin"):
            return  # named after its metadata (checked by the reader)
        series = "documents" if name.endswith(".jsonl") else "results"
        number = int(name.rsplit("-" if series == "documents" else "/", 1)[1][:6])
        if number != self._next[series]:
            raise IntegrityError(
                f"archive member {name!r}: a scope's {series} members are numbered from "
                f"000001 without gaps or repeats, and this one should be "
                f"{self._next[series]:06d}: the archive was altered"
            )
        self._next[series] += 1

    def _enter_new(self, scope: Scope, name: str) -> None:
        self.end_scope()
        self._keys.clear()
        self._objects.clear()
        self._next = {"documents": 1, "results": 1}
        if self.scope is not None:
            self._done.add(self.scope)
        if scope in self._done:
            raise IntegrityError(
                f"archive member {name!r}: the members of scope {scope} are not "
                "together: the archive was altered"
            )
        self.scope = scope

    def add_result(self, meta: dict[str, Any], where: str) -> dict[str, Any]:
        """``meta``, once its results object's name (run and name) is known to appear
        once in its scope: a second object of that name would replace the first's
        bytes under the runs that reference it."""
        if not self._objects.add(str(meta["run_id"]), str(meta["name"])):
            raise IntegrityError(
                f"archive member {where!r}: results object {meta['name']!r} of run "
                f"{meta['run_id']!r} appears twice in scope {self.scope}: the archive was altered"
            )
        return meta

    @staticmethod
    def _digest(marker: str, pruned_through: int) -> bytes:
        return hashlib.blake2b(f"{marker}\x00{pruned_through}".encode(), digest_size=16).digest()

    def add(self, history: list[StoredDocument], where: str) -> None:
        head = history[-1]
        if not self._keys.add(head.kind, head.key):
            raise IntegrityError(
                f"{where}: {head.kind} {head.key!r} appears twice in scope {self.scope} (an "
                "earlier line holds its history too): the archive was altered"
            )
        if head.kind == PRUNED_KIND:
            if not head.deleted:
                prefix = parse_marker(head)
                self._markers.add(self._digest(head.key, prefix.pruned_through))
        elif history[0].revision > 1:
            digest = self._digest(marker_key(head.kind, head.key), history[0].revision - 1)
            self._needed.setdefault(digest, f"{head.kind} {head.key!r}")

    def end_scope(self) -> None:
        missing = [what for digest, what in self._needed.items() if digest not in self._markers]
        if missing:
            raise IntegrityError(
                f"{len(missing)} pruned histor{'y' if len(missing) == 1 else 'ies'} in "
                f"{self.scope} (e.g. {missing[0]}) lack the pruned-history marker recording "
                "the revisions pruned before them: the archive is incomplete or was altered"
            )
        self._markers.clear()
        self._needed.clear()


def _end(
    manifest: dict[str, Any], tallies: dict[str, ScopeTally], listed: set[Scope], digest: str
) -> ArchiveEnd:
    """The end: the manifest beside what was read (every listed scope, empty or not)."""
    computed = {k: t.as_dict() for k, t in tallies.items()}
    for scope in listed:
        computed.setdefault(f"{scope.tenant}/{scope.environment}", ScopeTally().as_dict())
    for scope_name in manifest.get("scopes", {}):
        computed.setdefault(scope_name, ScopeTally().as_dict())
    return ArchiveEnd(manifest, computed, digest)


def _manifest(data: bytes, version: int) -> dict[str, Any]:
    """The manifest; its ``format`` and ``version`` must be the header's (the writer
    writes both from the same constants)."""
    try:
        manifest = loads_strict(data)
    except ValueError as exc:
        raise IntegrityError(f"the archive's manifest is not JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("scopes", {}), dict):
        raise IntegrityError("the archive's manifest is not a dq archive manifest")
    said = (manifest.get("format"), manifest.get("version"))
    if said != (FORMAT, version):
        raise IntegrityError(
            f"the archive's manifest says format {said[0]!r} version {said[1]!r}, its header "
            f"{FORMAT!r} version {version}: the archive was altered"
        )
    return manifest


def read_archive(
    path: str | os.PathLike[str] | io.BufferedReader,
    *,
    normalize: BodyNormalizer | None = None,
    max_line_bytes: int | None = None,
) -> Iterator[ArchiveItem]:
    """Yield the header, then every history and results object, then the end.

    Compression is detected from the file's contents. The end carries the manifest
    and the counts/digests computed while reading (with ``normalize``, as the
    writer had); compare them with :meth:`ArchiveEnd.problems`. The end is yielded
    only once the whole file was read: nothing but NUL padding may follow the
    manifest (and after the compressed data nothing but further streams of its
    format, read as part of the tar). ``max_line_bytes``: the longest line and
    JSON member accepted (default :data:`MAX_LINE_BYTES`).

    ``path`` may also be a file the caller opened (``open(path, "rb")``): it is read
    from its start and left open, so two passes can read the same file even if the
    name is meanwhile given to another one.

    Raises:
        NotFoundError: no file at ``path``.
        ValidationError: not a dq archive, or a version this library cannot read.
        IntegrityError: a damaged or forged archive: a bad line (a key listed twice
            in a scope, a JSON name twice in an object, a line over the maximum
            record size included), results bytes not matching, a member numbered
            out of sequence (a name used twice), bytes after the manifest — the
            message names the member and line.
    """
    limit = _guards.MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    handle: contextlib.AbstractContextManager[io.BufferedReader]
    if isinstance(path, io.BufferedReader):  # the caller's open file: read from its start
        path.seek(0)
        shown, handle = repr(path.name), contextlib.nullcontext(path)
    else:
        shown = repr(os.fspath(path))
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise NotFoundError(f"no archive at {shown}") from None
    with handle as opened:
        try:
            tar = tarfile.open(fileobj=open_decompressed(opened), mode="r|")  # noqa: SIM115
        except tarfile.TarError as exc:
            raise ValidationError(f"{shown} is not a dq archive (tar): {exc}") from exc
        with tar:
            yield from _items(tar, normalize, limit)


def _items(
    tar: tarfile.TarFile, normalize: BodyNormalizer | None, limit: int
) -> Iterator[ArchiveItem]:
    digest = hashlib.sha256()
    tallies: dict[str, ScopeTally] = {}
    pending: tuple[str, dict[str, Any]] | None = None  # (the .bin member expected, meta)
    version: int | None = None  # the header's, once read
    allowed: set[Scope] = set()
    checks = _ScopeCheck()
    try:
        for member in tar:
            name = member.name
            stream = tar.extractfile(member) if member.isfile() else None
            if not name.startswith(f"{ROOT}/") or stream is None:
                raise IntegrityError(f"unexpected archive member {name!r}")
            if not name.endswith((".jsonl", ".bin")):
                check_record_size(name, member.size, limit)
            if name == f"{ROOT}/manifest.json" and version is not None:
                checks.end_scope()
                end = _end(_manifest(stream.read(), version), tallies, allowed, digest.hexdigest())
                assert tar.fileobj is not None  # a stream-mode TarFile reads through it
                tar.fileobj.seek(member.offset_data + member.size)
                expect_only_padding(tar.fileobj)
                yield end
                return
            digest.update(member_digest_prefix(name, member.size))
            if version is None:
                header = _header(name, stream.read(), digest)
                version = header.version
                allowed = set(header.scopes)
                yield header
                continue
            scope = _scope_of(name, allowed)
            if pending is not None and name != pending[0]:
                raise IntegrityError(
                    f"archive member {pending[0]!r} does not follow its metadata: the archive "
                    "was altered"
                )
            checks.enter(scope, name)
            tally = tallies.setdefault(f"{scope.tenant}/{scope.environment}", ScopeTally())
            if name.endswith(".jsonl"):
                sha = yield from _histories(stream, name, scope, limit, checks, tally, normalize)
                digest.update(sha)
            elif name.endswith(".json"):
                data = stream.read()
                digest.update(hashlib.sha256(data).digest())
                pending = (
                    name[:-5] + ".bin",
                    checks.add_result(_result_meta(data, scope, name), name),
                )
            elif pending is not None:  # the .bin member its metadata announced
                item = ArchiveResult(scope, pending[1], stream)
                pending = None
                yield item
                digest.update(item._finish())
                tally.add_result(item.meta["sha256"], item._size, str(item.meta["content_type"]))
            else:
                raise IntegrityError(f"unexpected archive member {name!r}")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise IntegrityError(f"the archive is truncated or damaged: {exc}") from exc
    raise IntegrityError("the archive has no manifest: it is truncated (an interrupted export?)")


def _histories(
    stream: IO[bytes],
    name: str,
    scope: Scope,
    limit: int,
    checks: _ScopeCheck,
    tally: ScopeTally,
    normalize: BodyNormalizer | None,
) -> Generator[ArchiveItem, None, bytes]:
    """The histories of one documents member, checked; returns the member's sha256."""
    sha = hashlib.sha256()
    n = 0
    while line := read_line(stream, limit, f"{name} line {n + 1}"):
        n += 1
        sha.update(line)
        where = f"{name} line {n}"
        history = decode_line(line, scope, where)
        checks.add(history, where)
        tally.add_history(history, normalize)
        yield ArchiveHistory(scope, history)
    return sha.digest()


def _header(name: str, data: bytes, digest: Any) -> ArchiveHeader:
    try:
        header = loads_strict(data)
        ok = (
            name == f"{ROOT}/header.json"
            and isinstance(header, dict)
            and header.get("format") == FORMAT
        )
    except ValueError:
        ok = False
    if not ok:
        raise ValidationError("not a dq archive: its first member is not dq-archive/header.json")
    version = header.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        raise ValidationError(
            f"archive format version {version!r} is not readable by this library "
            f"(it reads versions {readable}); upgrade dq-platform-core"
        )
    listed = header.get("scopes")
    pairs = listed if isinstance(listed, list) else None
    try:
        if pairs is None or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise TypeError("not a list of pairs")
        scopes = [Scope(tenant, env) for tenant, env in pairs]
    except (TypeError, ValueError) as exc:
        raise IntegrityError(
            "the archive's header does not list its scopes as [tenant, environment] pairs"
        ) from exc
    digest.update(hashlib.sha256(data).digest())
    return ArchiveHeader(
        int(version),
        scopes,
        str(header.get("created_at", "")),
        str(header.get("source", "")),
    )
