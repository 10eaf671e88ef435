"""Re-signed archives that hold a key twice, and bytes after the manifest.

An archive is refused by the verifying pass ``dq import`` runs before writing, so
a refused archive writes nothing: a key listed twice (its second history would
replace or conflict with its first half-way through the import), a line with a
JSON name twice (readers disagree which one counts), and anything after the
manifest or after the tar's end (data the archive digest does not cover).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.integration._forge import Members, members_of, resign, write_tar
from tests.integration._transfer_world import populate

from dq_metadata.errors import DQError, IntegrityError
from dq_registries.operations.transfer import (
    Endpoint,
    export_archive,
    import_archive,
    open_endpoint,
    verify_archive,
)

SOURCE = {"results": {"inline_limit_bytes": 64}}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile")
    with open_endpoint({**SOURCE, "filesystem": {"root": str(tmp / "src")}}) as source:
        populate(source)
        path = tmp / "backup.tar"
        assert export_archive(source, path).ok
    return path


def _target_config(path: Path) -> dict[str, Any]:
    return {**SOURCE, "default_backend": "sqlite", "sqlite": {"url": f"sqlite:///{path}"}}


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Endpoint]:
    with open_endpoint(_target_config(tmp_path / "dst.sqlite3")) as endpoint:
        yield endpoint


def _everything(endpoint: Endpoint) -> list[tuple[str, str, str, int]]:
    return sorted(
        (str(s), h[-1].kind, h[-1].key, len(h))
        for s in endpoint.backend.iter_scopes()
        for h in endpoint.backend.iter_histories(s)
    )


def _documents(members: Members) -> list[int]:
    return [i for i, (name, _) in enumerate(members) if name.endswith(".jsonl")]


def _scope_of(name: str) -> str:
    return "/".join(name.split("/")[2:4])


def _with_line(members: Members, at: int, position: int, line: bytes) -> Members:
    """``line`` inserted into documents member ``at`` before its ``position``-th line."""
    name, data = members[at]
    lines = data.splitlines(keepends=True)
    lines.insert(min(position, len(lines)), line)
    return [*members[:at], (name, b"".join(lines)), *members[at + 1 :]]


def _refused_and_nothing_written(forged: Path, target: Endpoint, match: str) -> None:
    with pytest.raises(IntegrityError, match=match):
        verify_archive(forged)
    for replace in (False, True):
        with pytest.raises(IntegrityError, match=match):
            import_archive(target, forged, replace=replace)
        assert _everything(target) == []


def test_a_key_twice_in_one_member_is_refused_before_anything_is_written(
    archive: Path, target: Endpoint, tmp_path: Path
) -> None:
    """The last documents member repeats its first line at its end: the earlier
    scopes would already be written when the import reached it."""
    members = members_of(archive)
    at = _documents(members)[-1]
    first = members[at][1].splitlines(keepends=True)[0]
    forged = resign(_with_line(members, at, 10**6, first), tmp_path / "forged.tar")
    name = members[at][0]
    lines = len(members[at][1].splitlines()) + 1
    _refused_and_nothing_written(forged, target, rf"{name} line {lines}: .* twice")


def test_the_same_revisions_twice_in_two_members_of_a_scope_are_refused(
    archive: Path, target: Endpoint, tmp_path: Path
) -> None:
    """A second documents member of the scope repeats a key of the first, with its
    revisions renumbered after the original's (a longer, consistent history)."""
    members = members_of(archive)
    at = _documents(members)[-1]
    name, data = members[at]
    line = json.loads(data.splitlines()[0])
    number = int(name[-len("000001.jsonl") : -len(".jsonl")])  # the next member's number
    extra = (name.replace(f"{number:06d}", f"{number + 1:06d}"), json.dumps(line).encode() + b"\n")
    forged = resign([*members[: at + 1], extra, *members[at + 1 :]], tmp_path / "forged.tar")
    _refused_and_nothing_written(forged, target, rf"{extra[0]} line 1: .* twice")


def test_a_revision_twice_in_one_history_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path
) -> None:
    members = members_of(archive)
    at = _documents(members)[-1]
    name, data = members[at]
    lines = data.splitlines(keepends=True)
    line = json.loads(lines[-1])
    line["revisions"].append(line["revisions"][-1])
    lines[-1] = json.dumps(line).encode() + b"\n"
    forged = resign(
        [*members[:at], (name, b"".join(lines)), *members[at + 1 :]], tmp_path / "f.tar"
    )
    _refused_and_nothing_written(forged, target, rf"{name} line {len(lines)}: ")


@pytest.mark.parametrize("path", ['"kind"', '"revisions"[0] "revision"', '"revisions"[0] "fields"'])
def test_a_json_name_twice_in_a_line_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path, path: str
) -> None:
    """``{"kind": "a", "kind": "b"}``: Python keeps the last, other readers the
    first; an archive that means two things is refused."""
    members = members_of(archive)
    at = _documents(members)[-1]
    name, data = members[at]
    lines = data.splitlines(keepends=True)
    text = lines[-1].decode()
    if path == '"kind"':
        text = text.replace('"kind":', '"kind":"widget","kind":', 1)
    elif path.endswith('"revision"'):
        text = text.replace('{"body":', '{"revision":1,"body":', 1)
    else:
        text = text.replace('"fields":', '"fields":{},"fields":', 1)
    lines[-1] = text.encode()
    forged = resign(
        [*members[:at], (name, b"".join(lines)), *members[at + 1 :]], tmp_path / "f.tar"
    )
    _refused_and_nothing_written(forged, target, rf"{name} line {len(lines)}: .*twice")


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_any_key_repeated_anywhere_in_its_scope_writes_nothing(
    archive: Path, tmp_path: Path, data: st.DataObject
) -> None:
    """Pick any history line, repeat it at any place of any documents member of
    the same scope (the manifest re-signed): refused, and nothing written."""
    members = members_of(archive)
    docs = _documents(members)
    source = data.draw(st.sampled_from(docs), label="member")
    lines = members[source][1].splitlines(keepends=True)
    line = data.draw(st.sampled_from(lines), label="line")
    same_scope = [i for i in docs if _scope_of(members[i][0]) == _scope_of(members[source][0])]
    into = data.draw(st.sampled_from(same_scope), label="into")
    position = data.draw(st.integers(0, len(members[into][1].splitlines())), label="position")
    forged = resign(_with_line(members, into, position, line), tmp_path / "forged.tar")
    # a run's line repeated before its results object is refused for that first
    refused = "twice|does not hold before it"
    with pytest.raises(IntegrityError, match=refused):
        verify_archive(forged)
    with open_endpoint(_target_config(tmp_path / "t.sqlite3")) as target:
        with pytest.raises(IntegrityError, match=refused):
            import_archive(target, forged, replace=data.draw(st.booleans(), label="replace"))
        assert _everything(target) == []
    (tmp_path / "t.sqlite3").unlink()


# -- bytes after the manifest -----------------------------------------------------


def _member_after_manifest(members: Members) -> Members:
    return [*members, ("dq-archive/scopes/acme/prod/documents-000099.jsonl", b"{}\n")]


def _manifest_twice(members: Members) -> Members:
    return [*members, members[-1]]


TRAILING_MEMBERS = {
    "a member after the manifest": _member_after_manifest,
    "the manifest twice": _manifest_twice,
}


@pytest.mark.parametrize("name", list(TRAILING_MEMBERS))
def test_a_member_after_the_manifest_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path, name: str
) -> None:
    forged = write_tar(TRAILING_MEMBERS[name](members_of(archive)), tmp_path / "trailing.tar")
    _refused_and_nothing_written(forged, target, "after the manifest")


COMPRESS = {
    "plain": lambda data: data,
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "bzip2": bz2.compress,
}


@pytest.mark.parametrize("compression", list(COMPRESS))
@pytest.mark.parametrize("inside", [True, False], ids=["in-the-stream", "after-the-stream"])
def test_bytes_after_the_tar_end_are_refused(
    archive: Path, target: Endpoint, tmp_path: Path, compression: str, inside: bool
) -> None:
    """Garbage after the end-of-archive blocks (inside the compressed stream), or
    after the compressed stream itself; the intact file is accepted."""
    tar = archive.read_bytes()
    compress = COMPRESS[compression]
    intact = tmp_path / f"intact.{compression}"
    intact.write_bytes(compress(tar))
    assert verify_archive(intact).ok
    garbage = b"hidden payload" * 3
    forged = tmp_path / f"forged.{compression}"
    forged.write_bytes(compress(tar + garbage) if inside else compress(tar) + garbage)
    _refused_and_nothing_written(forged, target, "after the end of the archive")


def test_a_second_compressed_stream_is_refused(
    archive: Path, target: Endpoint, tmp_path: Path
) -> None:
    forged = tmp_path / "two.tar.gz"
    forged.write_bytes(gzip.compress(archive.read_bytes()) + gzip.compress(b"x" * 100))
    _refused_and_nothing_written(forged, target, "after the end of the archive")


def test_a_truncated_compressed_archive_is_refused(archive: Path, tmp_path: Path) -> None:
    data = gzip.compress(archive.read_bytes())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) - 4])  # the gzip trailer (size) cut short
    with pytest.raises(DQError):
        verify_archive(cut)


# -- through the CLI ----------------------------------------------------------------


def _dq(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in done.stderr
    return done


def test_cli_refuses_a_key_twice_and_trailing_bytes_naming_where(
    archive: Path, tmp_path: Path
) -> None:
    members = members_of(archive)
    at = _documents(members)[0]
    name, data = members[at]
    first = data.splitlines(keepends=True)[0]
    twice = resign(_with_line(members, at, 1, first), tmp_path / "twice.tar")
    trailing = tmp_path / "trailing.tar"
    trailing.write_bytes(archive.read_bytes() + b"\x00" * 512 + b"more")
    config = tmp_path / "dst.yaml"
    config.write_text(yaml.safe_dump(_target_config(tmp_path / "dst.sqlite3")))
    for forged, says in ((twice, f"{name} line 2: "), (trailing, "after the end of the archive")):
        checked = _dq("verify-archive", str(forged))
        assert checked.returncode == 1, checked.stdout
        assert says in checked.stderr
        imported = _dq("import", str(forged), "--config", str(config))
        assert imported.returncode == 1, imported.stdout
        assert says in imported.stderr
    with open_endpoint(config) as target:
        assert _everything(target) == []
    fine = _dq("import", str(archive), "--config", str(config), "--verify")
    assert fine.returncode == 0, fine.stderr
    assert "error" not in fine.stderr
