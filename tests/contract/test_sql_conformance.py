"""The shared document-backend conformance suite on PostgreSQL and on SQLite, plus
SQL-specific checks of atomic commits (placeholders, lock order, error order)."""

import functools
import itertools
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ConflictError, DQError, NotFoundError
from dq_metadata.scope import Scope
from dq_stores import DocumentBackend
from dq_stores.documents import (
    ANY,
    MUST_NOT_EXIST,
    ConditionCheck,
    Delete,
    FieldFilter,
    Operation,
    Put,
    Query,
    at_revision,
)
from dq_stores.memory import MemoryBackend
from dq_stores.testing import DocumentBackendConformance, SearchConformance
from dq_stores.testing._helpers import KIND, SCOPE, doc

sql = pytest.importorskip("dq_stores.sql")

Raw = Callable[[str], Any]  # one scalar of a SQL query run as a superuser / on the file

_KEYS = st.tuples(st.sampled_from([KIND, "gadget"]), st.sampled_from(["k0", "k1", "k2"]))
_REVISION = st.integers(1, 3).map(at_revision)


@st.composite
def _operation(draw: st.DrawFn) -> Operation:
    kind, key = draw(_KEYS)
    shape = draw(st.sampled_from(["put", "delete", "check"]))
    if shape == "put":
        expect = draw(st.sampled_from([ANY, MUST_NOT_EXIST]) | _REVISION)
        return Put(kind, doc(key, draw(st.integers(0, 9))), expect)
    if shape == "delete":
        return Delete(kind, key, draw(st.just(ANY) | _REVISION))
    return ConditionCheck(kind, key, draw(st.just(MUST_NOT_EXIST) | _REVISION))


_COMMITS = st.lists(
    st.lists(_operation(), min_size=1, max_size=5, unique_by=lambda op: (op.kind, op.key)),
    min_size=1,
    max_size=8,
)


def _outcome(backend: DocumentBackend, scope: Scope, ops: list[Operation]) -> Any:
    try:
        result = backend.commit(scope, ops)
    except (ConflictError, NotFoundError) as exc:
        return type(exc).__name__, str(exc).replace(str(scope), "<scope>")
    return [None if d is None else (d.kind, d.key, d.revision, d.deleted, d.body) for d in result]


def _histories(backend: DocumentBackend, scope: Scope) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for kind in (KIND, "gadget"):
        for key in ("k0", "k1", "k2"):
            try:
                history = backend.history(scope, kind, key)
            except NotFoundError:
                continue
            out[kind, key] = [(d.revision, d.deleted, d.body) for d in history]
    return out


class SqlCommitChecks:
    """What the SQL commit design promises beyond the port's conformance suite."""

    def test_the_first_failing_operation_in_order_is_the_one_raised(
        self, backend: DocumentBackend
    ) -> None:
        backend.put(SCOPE, KIND, doc("p", 1), MUST_NOT_EXIST)
        missing_first: list[Operation] = [
            Put(KIND, doc("p", 2), at_revision(1)),
            Delete(KIND, "missing"),
            Put(KIND, doc("q", 1), at_revision(7)),
        ]
        with pytest.raises(NotFoundError, match="missing"):
            backend.commit(SCOPE, missing_first)
        stale_first = [missing_first[2], missing_first[1], missing_first[0]]
        with pytest.raises(ConflictError, match="'q'"):
            backend.commit(SCOPE, stale_first)
        with pytest.raises(ConflictError, match="'p' already exists"):
            backend.commit(SCOPE, [ConditionCheck(KIND, "p", MUST_NOT_EXIST), Delete(KIND, "x")])
        assert backend.history(SCOPE, KIND, "p")[-1].revision == 1

    def test_guards_on_absent_keys_leave_no_trace(
        self, backend: DocumentBackend, raw_scalar: Raw
    ) -> None:
        quiet = Scope(SCOPE.tenant, "guarded-only")
        backend.put(SCOPE, KIND, doc("w", 1), MUST_NOT_EXIST)
        ops: list[Operation] = [
            ConditionCheck(KIND, "ghost", MUST_NOT_EXIST),
            ConditionCheck("gadget", "ghost", MUST_NOT_EXIST),
        ]
        assert backend.commit(quiet, ops) == [None, None]
        with pytest.raises(ConflictError):
            backend.commit(quiet, [*ops, ConditionCheck(KIND, "nothing", at_revision(1))])
        backend.commit(
            SCOPE, [ConditionCheck(KIND, "ghost", MUST_NOT_EXIST), Put(KIND, doc("v", 1))]
        )
        assert list(backend.list_environments(SCOPE.tenant)) == [SCOPE.environment]
        assert quiet not in list(backend.iter_scopes())
        with pytest.raises(NotFoundError):
            backend.history(quiet, KIND, "ghost")
        assert raw_scalar("SELECT count(*) FROM dq_heads WHERE revision = 0") == 0

    @settings(
        max_examples=25,
        deadline=None,
        # one backend per test (a fresh scope per example); the mixin runs in two classes
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(commits=_COMMITS)
    def test_commits_do_what_the_reference_backend_does(
        self, backend: DocumentBackend, commits: list[list[Operation]]
    ) -> None:
        # Same outcomes (revisions, or the first failing operation's error) and the
        # same histories as the in-memory reference, for any sequence of commits.
        scope = Scope(SCOPE.tenant, f"h{next(_EXAMPLES)}")
        reference = MemoryBackend()
        for ops in commits:
            assert _outcome(backend, scope, ops) == _outcome(reference, scope, ops), ops
        assert _histories(backend, scope) == _histories(reference, scope)

    def test_absent_guards_prevent_write_skew(self, backend: DocumentBackend) -> None:
        # Each commit creates its key only if the other's is still absent.
        for round_ in range(15):
            x, y = f"x{round_}", f"y{round_}"
            barrier = threading.Barrier(2)

            def claim(mine: str, theirs: str, barrier: Any = barrier) -> bool:
                barrier.wait()
                try:
                    backend.commit(
                        SCOPE,
                        [ConditionCheck(KIND, theirs, MUST_NOT_EXIST), Put(KIND, doc(mine, 1))],
                    )
                except ConflictError:
                    return False
                return True

            with ThreadPoolExecutor(2) as pool:
                wins = [pool.submit(claim, x, y), pool.submit(claim, y, x)]
                outcome = [w.result() for w in wins]
            assert outcome.count(True) == 1, f"round {round_}: {outcome}"
            written = [k for k in (x, y) if _exists(backend, k)]
            assert written == [x if outcome[0] else y]

    def test_crossing_commits_queue_in_one_order(
        self, backend: DocumentBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Opposite operation orders over the same keys (existing and new ones) must
        # neither deadlock (the backend would retry: see its debug log) nor lose an update.
        caplog.set_level(logging.DEBUG, logger="dq_stores.sql.backend")
        backend.commit(SCOPE, [Put(KIND, doc("a", 0)), Put(KIND, doc("b", 0))])
        keys = ("a", "b")

        def run(order: tuple[str, ...], rounds: int = 25) -> None:
            for i in range(rounds):
                ops: list[Operation] = [Put(KIND, doc(k, i)) for k in order]
                ops.append(Put(KIND, doc(f"n-{i}", i)))  # both create it
                backend.commit(SCOPE, ops)

        orders = [keys, keys[::-1]] * 2
        with ThreadPoolExecutor(len(orders)) as pool:
            for f in [pool.submit(run, order) for order in orders]:
                f.result()
        assert [backend.get(SCOPE, KIND, k).revision for k in keys] == [101, 101]
        assert backend.get(SCOPE, KIND, "n-3").revision == 4
        assert not [r for r in caplog.records if "Deadlock" in r.getMessage()]


_EXAMPLES = itertools.count()


def _exists(backend: DocumentBackend, key: str) -> bool:
    try:
        backend.get(SCOPE, KIND, key)
    except NotFoundError:
        return False
    return True


@pytest.mark.postgres
class TestPostgresConformance(DocumentBackendConformance, SearchConformance, SqlCommitChecks):
    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, postgres_url: str) -> Callable[[], DocumentBackend]:
        # picklable: child processes build their own engine and pool
        return functools.partial(sql.SqlBackend, postgres_url, pool_size=2)

    @pytest.fixture
    def raw_scalar(self, postgres_admin_url: str) -> Raw:
        def scalar(query: str) -> Any:
            import psycopg

            with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
                row = conn.execute(query).fetchone()
                assert row is not None
                return row[0]

        return scalar

    def test_commits_without_row_level_security(self, postgres_url: str) -> None:
        with sql.SqlBackend(postgres_url, row_level_security=False) as backend:
            guarded: list[Operation] = [
                Put(KIND, doc("r", 1)),
                ConditionCheck(KIND, "s", MUST_NOT_EXIST),
            ]
            assert [d and d.revision for d in backend.commit(SCOPE, guarded)] == [1, None]
            with pytest.raises(ConflictError, match="'r' already exists"):
                backend.commit(
                    SCOPE, [Put(KIND, doc("t", 1)), Put(KIND, doc("r", 2), MUST_NOT_EXIST)]
                )
            assert backend.get(SCOPE, KIND, "r").revision == 1
            assert not _exists(backend, "t")

    def test_a_restore_conflict_names_the_key_that_has_a_history(self, postgres_url: str) -> None:
        # the statement reports the first conflicting row by its number among all
        # the batch's revisions: keys before it with several revisions must not shift it
        target = Scope("restored", "prod")
        with sql.SqlBackend(postgres_url) as backend:
            for key in ("a", "b", "c"):
                for n in range(3 if key != "b" else 1):
                    backend.put(SCOPE, KIND, doc(key, n), ANY)
            backend.put(target, KIND, doc("c", 9), ANY)
            histories = [(h[0].key, h) for h in backend.iter_histories(SCOPE, KIND)]
            assert [len(h) for _k, h in histories] == [3, 1, 3]
            with pytest.raises(ConflictError, match="'c' already has a history"):
                backend.restore_many(target, KIND, histories)
            assert [d.key for d in backend.query(target, KIND).items] == ["c"]
            assert len(backend.history(target, KIND, "c")) == 1

    @pytest.mark.parametrize("replace", [False, True])
    def test_a_restore_failing_after_its_conflict_check_leaves_every_key_as_it_was(
        self, postgres_url: str, postgres_admin_url: str, replace: bool
    ) -> None:
        # restore_postgres writes a batch with one statement (heads first, their
        # insert being the conflict check, then revisions and postings) in one
        # implicit transaction: a failure after the heads must roll them back too
        import psycopg

        target = Scope("restored", "prod")
        old = Query(filters=(FieldFilter("colour", ("old",)),))
        with sql.SqlBackend(postgres_url) as backend:
            for key, colour in (("a", "red"), ("b", "boom")):
                backend.put(SCOPE, KIND, doc(key, 1, colour=colour), ANY)
                if replace:  # else the target keys have no history
                    backend.put(target, KIND, doc(key, 2, colour="old"), ANY)
            histories = [(h[0].key, h) for h in backend.iter_histories(SCOPE, KIND)]
            with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
                admin.execute(  # fails the postings statement only, for "b"
                    "ALTER TABLE dq_postings ADD CONSTRAINT no_boom"
                    " CHECK (value <> 'boom') NOT VALID"
                )
            before = list(backend.iter_histories(target, KIND))
            with pytest.raises(DQError, match="no_boom"):
                backend.restore_many(target, KIND, histories, replace=replace)
            assert list(backend.iter_histories(target, KIND)) == before
            expected = ["a", "b"] if replace else []
            assert [d.key for d in backend.query(target, KIND, old).items] == expected
            # without the failing value the same batch goes through, as a whole
            with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
                admin.execute("ALTER TABLE dq_postings DROP CONSTRAINT no_boom")
            backend.restore_many(target, KIND, histories, replace=replace)
            assert [len(backend.history(target, KIND, k)) for k in ("a", "b")] == [1, 1]
            assert backend.query(target, KIND, old).items == []


class TestSqliteConformance(DocumentBackendConformance, SearchConformance, SqlCommitChecks):
    supports_multiprocess = True

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], DocumentBackend]:
        return functools.partial(sql.SqlBackend, f"sqlite:///{tmp_path / 'dq.sqlite'}")

    @pytest.fixture
    def raw_scalar(self, tmp_path: Path) -> Raw:
        def scalar(query: str) -> Any:
            with sqlite3.connect(tmp_path / "dq.sqlite") as conn:
                return conn.execute(query).fetchone()[0]

        return scalar
