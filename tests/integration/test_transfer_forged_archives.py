"""Archives forged *consistently* (the manifest re-signed to match) and malformed ones.

The manifest's digests are not a signature: anyone can rewrite an archive and
compute a matching manifest. What the reader must still guarantee: the archive
writes only into the scopes its header names, every history it holds is one the
target will accept (so the verifying pass, not the writing one, refuses a bad
line and nothing is written), and a malformed member is one clear error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration._forge import Members, members_of, resign, write_tar
from tests.integration._transfer_world import SCOPES, populate

from dq_metadata.errors import DQError, IntegrityError
from dq_metadata.scope import Scope
from dq_registries.operations.transfer import (
    Endpoint,
    export_archive,
    import_archive,
    open_endpoint,
    verify_archive,
)
from dq_stores.documents import ANY
from dq_stores.testing._helpers import doc


def _config(path: Path) -> dict[str, Any]:
    return {
        "default_backend": "sqlite",
        "sqlite": {"url": f"sqlite:///{path}"},
        "results": {"inline_limit_bytes": 64},
    }


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("forged")
    with open_endpoint(
        {"filesystem": {"root": str(tmp / "src")}, "results": {"inline_limit_bytes": 64}}
    ) as source:
        populate(source)
        path = tmp / "backup.tar"
        assert export_archive(source, path).ok
    return path


@pytest.fixture(scope="module")
def pruned_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive of a store ``dq gc`` pruned: its first scope has pruned histories."""
    tmp = tmp_path_factory.mktemp("pruned")
    with open_endpoint(
        {"filesystem": {"root": str(tmp / "src")}, "results": {"inline_limit_bytes": 64}}
    ) as source:
        populate(source)
        scope = SCOPES[-1]
        for history in list(source.backend.iter_histories(scope)):
            if len(history) > 1:
                head = history[-1]
                source.backend.prune_history(scope, head.kind, head.key, head.revision)
        path = tmp / "pruned.tar"
        assert export_archive(source, path).ok
    return path


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Endpoint]:
    with open_endpoint(_config(tmp_path / "dst.sqlite3")) as endpoint:
        yield endpoint


def _everything(endpoint: Endpoint) -> list[tuple[str, str, str, int]]:
    return sorted(
        (str(s), h[-1].kind, h[-1].key, len(h))
        for s in endpoint.backend.iter_scopes()
        for h in endpoint.backend.iter_histories(s)
    )


def _edit_last_line(members: Members, change: Callable[[dict[str, Any]], None]) -> Members:
    """``change`` the last history of the archive's last documents member."""
    at = max(i for i, (name, _) in enumerate(members) if name.endswith(".jsonl"))
    name, data = members[at]
    lines = data.splitlines(keepends=True)
    line = json.loads(lines[-1])
    change(line)
    lines[-1] = json.dumps(line).encode() + b"\n"
    return [*members[:at], (name, b"".join(lines)), *members[at + 1 :]]


def test_an_archive_writes_only_into_the_scopes_its_header_names(
    archive: Path, target: Endpoint, tmp_path: Path
) -> None:
    """The header says one scope; members of another tenant (non-empty in the target)
    must not be written, with or without --replace."""
    members = []
    for name, data in members_of(archive):
        if name.endswith("header.json"):
            header = json.loads(data)
            header["scopes"] = [["acme", "prod"]]
            members.append((name, json.dumps(header).encode()))
        else:
            members.append((name, data))
    forged = resign(members, tmp_path / "forged.tar")
    victim = Scope("globex", "prod")
    target.backend.put(victim, "widget", doc("theirs", "keep"), ANY)
    before = _everything(target)
    with pytest.raises(IntegrityError, match="header does not list"):
        verify_archive(forged)
    for replace in (False, True):
        with pytest.raises(IntegrityError, match="header does not list"):
            import_archive(target, forged, replace=replace)
        assert _everything(target) == before


def _bad_sha(line: dict[str, Any]) -> None:
    rev = line["revisions"][-1]
    rev.update(deleted=False, body='{"x":1}', sha256="0" * 64)


def _naive_time(line: dict[str, Any]) -> None:
    line["revisions"][-1]["written_at"] = "2024-01-01T00:00:00"


def _gap(line: dict[str, Any]) -> None:
    line["revisions"][-1]["revision"] += 5


def _bad_key(line: dict[str, Any]) -> None:
    line["key"] = "bad\x00key"
    for rev in line["revisions"]:
        rev.setdefault("key", None)


def _bad_kind(line: dict[str, Any]) -> None:
    line["kind"] = "Not A Kind"


def _bad_index(line: dict[str, Any]) -> None:
    rev = line["revisions"][-1]
    rev.update(
        deleted=False,
        body='{"x":1}',
        sha256=hashlib.sha256(b'{"x":1}').hexdigest(),
        fields={"tag": [""]},
    )


@pytest.mark.parametrize(
    "change",
    [_bad_sha, _naive_time, _gap, _bad_key, _bad_kind, _bad_index],
    ids=lambda f: f.__name__,
)
def test_a_history_the_target_would_refuse_fails_verification_and_writes_nothing(
    archive: Path, target: Endpoint, tmp_path: Path, change: Callable[[dict[str, Any]], None]
) -> None:
    """A re-signed archive whose *last* history is invalid: the verifying pass refuses
    it, so the earlier scopes are not written either."""
    forged = resign(_edit_last_line(members_of(archive), change), tmp_path / "forged.tar")
    with pytest.raises(IntegrityError):
        verify_archive(forged)
    with pytest.raises(IntegrityError):
        import_archive(target, forged)
    assert _everything(target) == []


def _json_member(suffix: str, change: Callable[[Any], Any]) -> Callable[[Members], Members]:
    def edit(members: Members) -> Members:
        out = []
        for name, data in members:
            edited = (
                json.dumps(change(json.loads(data))).encode() if name.endswith(suffix) else data
            )
            out.append((name, edited))
        return out

    return edit


def _without(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda obj: {k: v for k, v in obj.items() if k != key}


def _bytes_apart_from_their_metadata(members: Members) -> Members:
    """Swap a results object's bytes with the documents member after them."""
    at = next(i for i, (name, _) in enumerate(members) if name.endswith(".bin"))
    after = next(i for i in range(at + 1, len(members)) if members[i][0].endswith(".jsonl"))
    out = list(members)
    out[at], out[after] = out[after], out[at]
    return out


MALFORMED = {
    "results bytes apart from their metadata": _bytes_apart_from_their_metadata,
    "header is a list": _json_member("header.json", lambda h: ["dq-archive"]),
    "header without scopes": _json_member("header.json", _without("scopes")),
    "header scopes a string": _json_member("header.json", lambda h: {**h, "scopes": "acme"}),
    "header scope of three": _json_member(
        "header.json", lambda h: {**h, "scopes": [["acme", "prod", "x"]]}
    ),
    "results meta a list": _json_member("000001.json", lambda m: [1]),
    "results meta without size": _json_member("000001.json", _without("size")),
    "results meta without ref": _json_member("000001.json", _without("ref")),
    "results meta size a string": _json_member("000001.json", lambda m: {**m, "size": "big"}),
    "manifest a list": _json_member("manifest.json", lambda m: []),
    "manifest scopes a list": _json_member("manifest.json", lambda m: {**m, "scopes": []}),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_member_is_one_clear_error(
    archive: Path, target: Endpoint, tmp_path: Path, name: str
) -> None:
    members = MALFORMED[name](members_of(archive))
    path = write_tar(members, tmp_path / "bad.tar")
    with pytest.raises(DQError):
        verify_archive(path)
    with pytest.raises(DQError):
        import_archive(target, path)
    assert _everything(target) == []


def test_the_scopes_are_the_headers(archive: Path) -> None:
    assert set(verify_archive(archive).scopes) == {f"{s.tenant}/{s.environment}" for s in SCOPES}


def test_a_pruned_history_without_its_marker_fails_verification_and_writes_nothing(
    pruned_archive: Path, target: Endpoint, tmp_path: Path
) -> None:
    """The last scope's markers are dropped (and the manifest re-signed): the earlier
    scopes must not be written before the restore of a pruned history fails."""
    members = []
    for name, data in members_of(pruned_archive):
        lines = data.splitlines(keepends=True) if name.endswith(".jsonl") else [data]
        kept = [line for line in lines if b'"kind":"dq_pruned_history"' not in line]
        members.append((name, b"".join(kept)))
    assert members != members_of(pruned_archive)
    forged = resign(members, tmp_path / "forged.tar")
    with pytest.raises(IntegrityError, match="pruned-history marker"):
        verify_archive(forged)
    with pytest.raises(IntegrityError, match="pruned-history marker"):
        import_archive(target, forged)
    assert _everything(target) == []
    assert import_archive(target, pruned_archive, verify=True).ok  # the intact one imports


def test_a_scope_whose_members_are_not_together_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path
) -> None:
    members = members_of(archive)
    first = next(i for i, (name, _) in enumerate(members) if name.endswith(".jsonl"))
    name, data = members[first]
    lines = data.splitlines(keepends=True)
    split = name.replace("000001", "000002")
    moved = [*members[: first + 1], *members[first + 1 : -1], (split, lines[-1]), members[-1]]
    moved[first] = (name, b"".join(lines[:-1]))
    forged = resign(moved, tmp_path / "forged.tar")
    with pytest.raises(IntegrityError, match="not together"):
        verify_archive(forged)
    assert _everything(target) == []
