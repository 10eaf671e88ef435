"""Export to an archive, verify it, import it elsewhere; refusals, merges and damage."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration._transfer_world import RAW_KEYS, RAW_KIND, SCOPES, observe, populate

from dq_metadata.errors import ConflictError, IntegrityError, ValidationError
from dq_registries.operations.transfer import (
    Endpoint,
    export_archive,
    import_archive,
    open_endpoint,
    verify_archive,
)
from dq_registries.operations.transfer._sink import comparable
from dq_stores.documents import ANY
from dq_stores.testing._helpers import doc


def _fs(path: Path) -> dict[str, Any]:
    return {
        "default_backend": "filesystem",
        "filesystem": {"root": str(path)},
        "results": {"inline_limit_bytes": 64},
    }


def _sqlite(path: Path) -> dict[str, Any]:
    return {
        "default_backend": "sqlite",
        "sqlite": {"url": f"sqlite:///{path}"},
        "results": {"inline_limit_bytes": 64},
    }


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Endpoint]:
    with open_endpoint(_fs(tmp_path / "src")) as endpoint:
        populate(endpoint)
        yield endpoint


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Endpoint]:
    with open_endpoint(_sqlite(tmp_path / "dst.sqlite3")) as endpoint:
        yield endpoint


def _everything(endpoint: Endpoint) -> list[Any]:
    return sorted(
        (str(s), h[-1].kind, h[-1].key, len(h), h[-1].deleted)
        for s in SCOPES
        for h in endpoint.backend.iter_histories(s)
    )


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.xz"])
def test_export_verify_import_round_trip(
    source: Endpoint, target: Endpoint, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"backup{suffix}"
    exported = export_archive(source, path, verify=True)
    assert exported.ok, exported.as_dict()
    assert exported.results_copied == len(SCOPES)
    assert not path.with_name(path.name + ".partial").exists()
    checked = verify_archive(path)
    assert checked.ok
    assert checked.scopes == exported.scopes
    imported = import_archive(target, path, verify=True)
    assert imported.ok, imported.as_dict()
    assert imported.keys_written == exported.keys
    assert observe(target) == observe(source)
    for scope in SCOPES:
        for history in source.backend.iter_histories(scope):
            if history[-1].kind == "job_run":
                continue  # relinked results references: covered by observe()
            head = history[-1]
            moved = target.backend.history(scope, head.kind, head.key)
            assert [comparable(d) for d in moved] == [comparable(d) for d in history]


def test_export_of_one_tenant_or_environment(source: Endpoint, tmp_path: Path) -> None:
    path = tmp_path / "acme.tar"
    assert set(export_archive(source, path, tenant="acme").scopes) == {"acme/prod", "acme/dev"}
    report = export_archive(source, path, tenant="globex", environment="dev")
    assert set(report.scopes) == {"globex/dev"}


def test_import_refuses_a_non_empty_scope_without_merge(
    source: Endpoint, target: Endpoint, tmp_path: Path
) -> None:
    path = tmp_path / "backup.tar.gz"
    export_archive(source, path)
    target.backend.put(SCOPES[2], "other", doc("mine"), ANY)
    with pytest.raises(ConflictError, match="--merge"):
        import_archive(target, path)
    assert _everything(target) == [(str(SCOPES[2]), "other", "mine", 1, False)]


def test_merge_skips_identical_reports_differing_and_overwrites_nothing(
    source: Endpoint, target: Endpoint, tmp_path: Path
) -> None:
    path = tmp_path / "backup.tar.gz"
    export_archive(source, path)
    scope = SCOPES[0]
    same, other = RAW_KEYS[0], RAW_KEYS[2]
    raw = source.backend.history(scope, RAW_KIND, same)
    target.backend.restore(scope, RAW_KIND, same, raw)  # identical: skipped
    target.backend.put(scope, RAW_KIND, doc(other, "different"), ANY)  # differs from source
    before = target.backend.history(scope, RAW_KIND, other)
    report = import_archive(target, path, merge=True)
    assert not report.ok
    assert report.keys_skipped == 1
    assert len(report.conflicts) == 1
    assert repr(other) in report.conflicts[0]
    assert target.backend.history(scope, RAW_KIND, other) == before
    assert report.keys_written == report.keys - 2
    again = import_archive(target, path, merge=True)
    assert again.keys_written == 0
    assert again.keys_skipped == report.keys - 1


def _rewrite(path: Path, out: Path, change: Any) -> None:
    with tarfile.open(path) as old, tarfile.open(out, "w") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read()  # type: ignore[union-attr]
            data = change(member.name, data)
            member.size = len(data)
            new.addfile(member, io.BytesIO(data))


def _forge_line(name: str, data: bytes) -> bytes:
    """Change one body and fix its sha256, so only the archive digests can tell."""
    if not name.endswith(".jsonl"):
        return data
    lines = data.splitlines(keepends=True)
    line = json.loads(lines[0])
    rev = line["revisions"][0]
    if not rev["deleted"]:
        body = json.dumps({"forged": True}, separators=(",", ":"))
        rev["body"] = body
        rev["sha256"] = hashlib.sha256(body.encode()).hexdigest()
    lines[0] = json.dumps(line).encode() + b"\n"
    return b"".join(lines)


def test_forged_archive_is_detected_and_imports_nothing(
    source: Endpoint, target: Endpoint, tmp_path: Path
) -> None:
    path, forged = tmp_path / "backup.tar", tmp_path / "forged.tar"
    export_archive(source, path)
    _rewrite(path, forged, _forge_line)
    report = verify_archive(forged)
    assert not report.ok
    assert any("archive digest" in d for d in report.differences)
    assert not import_archive(target, forged).ok
    assert _everything(target) == []


def test_truncated_or_foreign_files_are_refused(
    source: Endpoint, target: Endpoint, tmp_path: Path
) -> None:
    path = tmp_path / "backup.tar"
    export_archive(source, path)
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(IntegrityError):
        verify_archive(truncated)
    with pytest.raises(IntegrityError):
        import_archive(target, truncated)
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        tar.addfile(tarfile.TarInfo("hello.txt"), io.BytesIO(b""))
    with pytest.raises((ValidationError, IntegrityError)):
        verify_archive(foreign)
    assert _everything(target) == []


def test_failed_export_leaves_no_file(source: Endpoint, tmp_path: Path) -> None:
    results_dir = tmp_path / "src" / "acme" / "prod" / "results"
    for blob in results_dir.rglob("*"):
        if blob.is_file():
            blob.write_bytes(b"tampered")
    path = tmp_path / "backup.tar.gz"
    with pytest.raises(IntegrityError):
        export_archive(source, path)
    assert list(tmp_path.glob("backup*")) == []


def test_version_1_archives_of_pruned_stores_still_import(
    source: Endpoint, target: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version-1 archive (markers in kind order, after the contracts they describe)
    imports: pruned histories met before their marker are held back to the scope's end."""
    from dq_registries.operations.transfer import _events
    from dq_stores.archive import _writer

    scope = SCOPES[0]
    for hist in list(source.backend.iter_histories(scope)):
        if len(hist) > 1:
            source.backend.prune_history(scope, hist[0].kind, hist[0].key, hist[-1].revision)
    monkeypatch.setattr(_writer, "VERSION", 1)
    monkeypatch.setattr(_events, "_histories", lambda end, s: end.backend.iter_histories(s))
    archive = tmp_path / "v1.tar"
    export_archive(source, archive)
    monkeypatch.undo()
    with tarfile.open(archive) as tar:
        member = tar.extractfile("dq-archive/header.json")
        assert member is not None
        assert json.loads(member.read())["version"] == 1
    report = import_archive(target, archive, verify=True)
    assert report.ok, report.as_dict()
    assert _everything(target) == _everything(source)
