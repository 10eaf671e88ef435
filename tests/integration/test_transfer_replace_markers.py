"""``--replace`` and pruned-history markers the target holds from an earlier run.

A marker (kind ``dq_pruned_history``) records that revisions ``1..k-1`` of one
key were pruned (``dq gc``). When ``--replace`` gives that key the source's
history, the target's marker must describe the new history: the source's marker
when the source pruned the key too, none at all when the source's history starts
at revision 1 — otherwise ``dq verify`` finds revisions the marker says are gone,
and the next export carries the stale marker along. A run killed between the two
writes is completed by running it again with ``--replace``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dq_metadata.scope import Scope
from dq_registries.operations.transfer import (
    Endpoint,
    export_archive,
    import_archive,
    migrate,
    open_endpoint,
    tally_endpoint,
)
from dq_stores.documents import ANY
from dq_stores.testing._helpers import doc
from dq_stores.testing.restore import comparable
from dq_stores.verify import verify

SCOPE = Scope("acme", "prod")
KIND = "widget"
PRUNED, WHOLE = "pruned-in-target", "pruned-in-both"


def _config(kind: str, path: Path) -> dict[str, Any]:
    body: dict[str, Any] = {"results": {"inline_limit_bytes": 64}}
    if kind == "filesystem":
        body["filesystem"] = {"root": str(path)}
    elif kind == "sqlite":
        body.update(default_backend="sqlite", sqlite={"url": f"sqlite:///{path}.sqlite3"})
    else:
        body["default_backend"] = "memory"
    return body


@pytest.fixture(params=["memory", "sqlite", "filesystem"])
def target_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _write(endpoint: Endpoint, key: str, revisions: int, tag: str) -> None:
    for n in range(revisions):
        endpoint.backend.put(SCOPE, KIND, doc(key, f"{tag}{n}", sort_key=f"{n:03d}", tag=tag), ANY)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Endpoint]:
    """``PRUNED`` whole (1..4, no marker); ``WHOLE`` pruned through 2 (3..5)."""
    with open_endpoint(_config("filesystem", tmp_path / "src")) as endpoint:
        _write(endpoint, PRUNED, 4, "s")
        _write(endpoint, WHOLE, 5, "s")
        endpoint.backend.prune_history(SCOPE, KIND, WHOLE, 3)
        yield endpoint


def _diverged_target(endpoint: Endpoint) -> None:
    """The target's own copies, pruned by its own gc: ``PRUNED`` through 3 (4..6),
    ``WHOLE`` not at all (1..6)."""
    _write(endpoint, PRUNED, 6, "t")
    endpoint.backend.prune_history(SCOPE, KIND, PRUNED, 4)
    _write(endpoint, WHOLE, 6, "t")


def _problems(endpoint: Endpoint) -> list[str]:
    return [f"{p.kind} {p.key!r}: {p.message}" for p in verify(endpoint.backend, SCOPE)]


def _assert_mirrors(target: Endpoint, source: Endpoint) -> None:
    for key in (PRUNED, WHOLE):
        assert [comparable(d) for d in target.backend.history(SCOPE, KIND, key)] == [
            comparable(d) for d in source.backend.history(SCOPE, KIND, key)
        ]
        assert target.backend.pruned_prefix(SCOPE, KIND, key) == source.backend.pruned_prefix(
            SCOPE, KIND, key
        )
    assert _problems(target) == []
    problems: list[str] = []
    assert tally_endpoint(target, [SCOPE], problems) == tally_endpoint(source, [SCOPE], problems)


def _transfer(how: str, source: Endpoint, target: Endpoint, tmp_path: Path) -> bool:
    if how == "import":
        archive = tmp_path / "src.tar"
        if not archive.exists():
            assert export_archive(source, archive).ok
        return import_archive(target, archive, replace=True, verify=True).ok
    return migrate(source, target, replace=True, verify=True).ok


@pytest.mark.parametrize("how", ["import", "migrate"])
def test_replace_leaves_no_marker_that_no_longer_describes_the_key(
    source: Endpoint, tmp_path: Path, target_kind: str, how: str
) -> None:
    with open_endpoint(_config(target_kind, tmp_path / "dst")) as target:
        _diverged_target(target)
        assert _problems(target) == []
        assert _transfer(how, source, target, tmp_path)
        _assert_mirrors(target, source)
        again = tmp_path / "again.tar"  # and the target's own export carries no stale marker
        assert export_archive(target, again).ok
    with open_endpoint(_config(target_kind, tmp_path / "third")) as third:
        assert import_archive(third, again, verify=True).ok
        _assert_mirrors(third, source)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not an ``Exception``)."""


@pytest.mark.parametrize("how", ["import", "migrate"])
@pytest.mark.parametrize("kill_at", [1, 2])
def test_replace_killed_between_its_writes_is_completed_by_running_it_again(
    source: Endpoint,
    tmp_path: Path,
    target_kind: str,
    how: str,
    kill_at: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ``kill_at``-th write of the target (a restore or a marker's removal)
    dies before it happens; the target is then stale, and a second run with
    ``--replace`` makes it mirror the source."""
    with open_endpoint(_config(target_kind, tmp_path / "dst")) as target:
        _diverged_target(target)
        backend = type(target.backend)
        calls = {"n": 0}

        def dying(name: str) -> Any:
            original = getattr(backend, name)

            def write(self: Any, *args: Any, **kwargs: Any) -> Any:
                calls["n"] += 1
                if calls["n"] == kill_at:
                    raise _Killed
                return original(self, *args, **kwargs)

            return write

        with monkeypatch.context() as patch:
            for name in ("restore_many", "restore", "delete", "_delete"):
                if hasattr(backend, name):
                    patch.setattr(backend, name, dying(name))
            with pytest.raises(_Killed):
                _transfer(how, source, target, tmp_path)
        if kill_at == 2:  # the source's markers are in, the histories they describe not yet
            assert target.backend.pruned_prefix(SCOPE, KIND, WHOLE) is not None
            assert target.backend.history(SCOPE, KIND, WHOLE)[0].revision == 1
        assert _transfer(how, source, target, tmp_path)
        _assert_mirrors(target, source)
