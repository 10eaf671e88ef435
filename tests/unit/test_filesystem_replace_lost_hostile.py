"""A replace journal whose staged file is lost or torn, at every kill point and
every file position, and a recovery that is itself killed: the scope ends wholly
old or wholly new (``verify`` clean, writable), or — only once files were
swapped — every open raises ``IntegrityError`` and touches nothing. Never a mix,
never a scope wedged with the applying flag raised (ADR 0002, R3 row).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from tests.support.kill_steps import sigkill_at_call
from tests.unit.test_filesystem_replace_steps import KEYS, KIND, SCOPE, _history, _shape

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import IntegrityError, NotFoundError
from dq_stores.documents import ANY, DocumentWrite
from dq_stores.filesystem import FilesystemBackend
from dq_stores.verify import verify


def _arm(step: int) -> None:
    sigkill_at_call(step)


def _replace_dying_at(root: str, durability: Any, step: int) -> None:
    backend = FilesystemBackend(root, durability=durability)
    backend.history(SCOPE, KIND, "a")
    _arm(step)
    backend.restore_many(SCOPE, KIND, [(k, _history(k, 1)) for k in KEYS], replace=True)


def _open_dying_at(root: str, durability: Any, step: int) -> None:
    _arm(step)
    FilesystemBackend(root, durability=durability).history(SCOPE, KIND, "a")


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "index.sqlite3" not in path.name and path.name != ".applying":
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def _version(backend: FilesystemBackend) -> int:
    versions = set()
    for key in KEYS:
        shape = _shape(backend.history(SCOPE, KIND, key))
        found = [v for v in (0, 1) if shape == _shape(_history(key, v))]
        assert found, f"{key!r} is no version whole: {shape}"
        versions.add(found[0])
    assert len(versions) == 1, f"a replace is visible in part: {versions}"
    return versions.pop()


def _outcome(root: Path, durability: str) -> str:
    before = _files(root)
    try:
        with FilesystemBackend(root, durability=durability) as fresh:
            version = _version(fresh)
            assert list(verify(fresh, SCOPE)) == []
            body = canonical_json({"later": 1})
            fresh.put(SCOPE, KIND, DocumentWrite("a", body, content_hash(body)), ANY)
            assert fresh.get(SCOPE, KIND, "a").body == body
    except IntegrityError as exc:
        message = str(exc)
    else:
        docs = root / "steps/replace/docs" / KIND
        assert [p.name for p in docs.iterdir() if p.name.startswith(".")] == []
        return f"v{version}"
    assert "swapped" in message, message
    assert _files(root) == before  # nothing touched
    with pytest.raises(IntegrityError), FilesystemBackend(root) as again:
        again.history(SCOPE, KIND, "a")
    with FilesystemBackend(root) as again:  # dq verify reports it rather than crashing
        problems = [p.code for p in verify(again, SCOPE)]
    assert problems, "verify must report a scope it cannot open"
    return "refused"


def _journal(root: Path) -> bool:
    return (root / "steps/replace/.lock").read_bytes().startswith(b"replace ")


def _seed(root: Path, durability: str) -> None:
    with FilesystemBackend(root, durability=durability) as backend:
        backend.restore_many(SCOPE, KIND, [(k, _history(k, 0)) for k in KEYS])


def _kill(target: Any, *args: Any) -> int | None:
    child = multiprocessing.get_context("fork").Process(target=target, args=args)
    child.start()
    child.join(60)
    return child.exitcode


@pytest.mark.parametrize("damage", ["lost", "torn"])
@pytest.mark.parametrize("durability", ["full", "process"])
def test_a_lost_staged_file_at_any_step_and_position(
    tmp_path: Path, durability: str, damage: str
) -> None:
    outcomes: dict[str, int] = {}
    for step in range(1, 80):
        root = tmp_path / f"s{step}"
        _seed(root, durability)
        if _kill(_replace_dying_at, str(root), durability, step) == 0:
            break
        if not _journal(root):
            continue
        docs = root / "steps/replace/docs" / KIND
        staged = sorted(p.name for p in docs.iterdir() if ".x" in p.name)
        for victim in staged:
            case = tmp_path / f"s{step}-{victim}"
            os.system(f"cp -a {root} {case}")
            target = case / "steps/replace/docs" / KIND / victim
            if damage == "lost":
                target.unlink()
            else:
                target.write_bytes(target.read_bytes()[:-3])
            result = _outcome(case, durability)
            outcomes[result] = outcomes.get(result, 0) + 1
    assert outcomes.get("v0"), outcomes  # lost before any swap: discarded


@pytest.mark.parametrize("durability", ["full", "process"])
def test_a_recovery_of_a_journal_with_a_lost_file_killed_at_any_step(
    tmp_path: Path, durability: str
) -> None:
    """Journal complete, nothing swapped, one staged file lost (or none): the
    recovering process is killed at every step of the discard (or the roll-forward);
    the next one finishes it."""
    for victim in (0, 1, None):  # None: nothing lost, the recovery rolls forward
        root = tmp_path / f"v{victim}"
        _seed(root, durability)
        for step in range(1, 80):
            if _kill(_replace_dying_at, str(root), durability, step) != 0 and _journal(root):
                # first step past the journal: keep it
                lock = (root / "steps/replace/.lock").read_bytes()
                break
        else:
            raise AssertionError("no journal")
        docs = root / "steps/replace/docs" / KIND
        staged = sorted(p for p in docs.iterdir() if ".x" in p.name)
        if victim is not None:
            staged[victim * (len(staged) - 1)].unlink()
        assert (root / "steps/replace/.lock").read_bytes() == lock
        for step in range(1, 80):
            if _kill(_open_dying_at, str(root), durability, step) == 0:
                break
        assert _outcome(root, durability) == ("v1" if victim is None else "v0")
        with FilesystemBackend(root) as backend, pytest.raises(NotFoundError):
            backend.get(SCOPE, KIND, "missing")
