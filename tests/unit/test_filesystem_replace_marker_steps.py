"""A replace that drops a pruned-history marker, killed at *every* step.

Key ``a`` was pruned (marker: revisions 1..2 gone, history 3..4); a replace
gives it a whole history 1..2, which removes the marker in the same journal. The
child SIGKILLs itself just before the k-th system call of the write protocol,
for k = 1, 2, ... until the replace completes; after each kill a fresh backend
must see the key wholly old (3..4 with its marker) or wholly new (1..2, no
marker) through every read path, and ``verify`` must be clean.
"""

from __future__ import annotations

import multiprocessing
import shutil
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.kill_steps import sigkill_at_call

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores.documents import ANY, DocumentWrite, FieldFilter, IndexEntry, StoredDocument
from dq_stores.filesystem import FilesystemBackend
from dq_stores.retention import PRUNED_KIND
from dq_stores.verify import verify

SCOPE = Scope("steps", "marker")
KIND = "doc"
_AT = datetime(2020, 1, 2, tzinfo=UTC)


def _whole() -> list[StoredDocument]:
    out = []
    for rev in (1, 2):
        body = canonical_json({"new": rev})
        index = IndexEntry({"v": ("new",)}, f"{rev:03d}")
        at = _AT + timedelta(hours=rev)
        out.append(StoredDocument(SCOPE, KIND, "a", rev, body, content_hash(body), index, at))
    return out


def _replace_dying_at(root: str, step: int) -> None:
    backend = FilesystemBackend(root)
    backend.history(SCOPE, KIND, "a")  # open the scope before counting
    sigkill_at_call(step)
    backend.restore_many(SCOPE, KIND, [("a", _whole())], replace=True)


def _state(backend: FilesystemBackend) -> str:
    """``old`` or ``new``, asserting every read path agrees."""
    revisions = [d.revision for d in backend.history(SCOPE, KIND, "a")]
    prefix = backend.pruned_prefix(SCOPE, KIND, "a")
    markers = backend.count(SCOPE, PRUNED_KIND)
    listed = sum(1 for _ in backend.iter_histories(SCOPE, PRUNED_KIND))
    new = backend.count(SCOPE, KIND, [FieldFilter("v", ("new",))])
    if revisions == [1, 2]:
        assert (prefix, markers, listed, new) == (None, 0, 0, 1)
        return "new"
    assert revisions == [3, 4]
    assert prefix is not None
    assert prefix.pruned_through == 2
    assert (markers, listed, new) == (1, 1, 0)
    return "old"


def test_a_replace_dropping_a_marker_killed_at_any_step_is_old_or_new(tmp_path: Path) -> None:
    template = str(tmp_path / "template")
    with FilesystemBackend(template) as backend:
        for n in range(4):
            body = canonical_json({"old": n})
            write = DocumentWrite("a", body, content_hash(body), IndexEntry({"v": ("old",)}))
            backend.put(SCOPE, KIND, write, ANY)
        backend.prune_history(SCOPE, KIND, "a", 3)
        assert _state(backend) == "old"
    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for step in range(1, 120):  # each kill starts again from the pruned key
        root = str(tmp_path / f"store{step}")
        shutil.copytree(template, root)
        child = ctx.Process(target=_replace_dying_at, args=(root, step))
        child.start()
        child.join(30)
        with FilesystemBackend(root) as fresh:  # opening the scope replays any note
            outcomes.append(_state(fresh))
            assert list(verify(fresh, SCOPE)) == []
        marker_dir = Path(root) / "steps/marker/docs" / PRUNED_KIND
        if outcomes[-1] == "new":  # no revision file, head or temp of the marker left
            assert [p.name for p in marker_dir.iterdir()] == []
        shutil.rmtree(root)
        if child.exitcode == 0:
            break
        assert child.exitcode == -signal.SIGKILL
    else:
        raise AssertionError("the replace never completed")
    assert outcomes[0] == "old", outcomes  # killed before its commit point: nothing changed
    assert "new" in outcomes[:-1], outcomes  # killed after it: rolled forward
    assert outcomes[-1] == "new"
