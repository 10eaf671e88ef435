"""PostgreSQL document backend vs raw psycopg on the same server, in one run.

    .venv/bin/python benchmarks/bench_postgres.py [--url URL] [--docs 10000] [--big 1000000]
        [--states] [--states-big]
    .venv/bin/python benchmarks/bench_postgres.py --sqlite   # commit vs puts on SQLite only

``--states`` measures instead get / create / update / filtered page on tables loaded
through ``put_many`` and never analysed (autovacuum off: the state right after a bulk
import, restore or migration) and on the same load analysed, at ``--docs`` documents
(and also 100,000 with ``--states-big``), against raw psycopg in the same database.

URL: ``--url``, else ``DQ_BENCH_POSTGRES_URL``, else
``postgresql+psycopg://postgres@127.0.0.1:5432/test`` if it answers, else a throw-away
server started from the PostgreSQL binaries as the tests do. The URL's role must be able to
create a database and a role: the run uses a fresh database owned by an ordinary
role (so row-level security applies as in production) and drops both afterwards.

Prints medians (µs) and ratios backend / raw. "raw floor" is the least raw
psycopg needs (one prepared statement, scope set once per session); "raw same"
sends exactly the backend's statements the same way (one pipeline: set_config +
prepared statements, one Sync).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import semver_sort_key
from dq_stores import ANY, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.documents import MUST_NOT_EXIST, Put, at_revision
from dq_stores.documents import MUST_NOT_EXIST as ABSENT
from dq_stores.sql import SqlBackend
from dq_stores.sql._executor import Revision
from dq_stores.sql._postgres import _SCOPE, _write_statements
from dq_stores.sql._statements import select_documents

SCOPE = Scope("acme", "prod")
KIND = "contract"
STATUSES = ("active", "draft", "deprecated")
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def medians_us(fns: tuple[Callable[[], Any], ...], runs: int, rounds: int = 20) -> list[float]:
    """Median µs of each of ``fns``, measured in interleaved rounds.

    Interleaving matters on a shared machine: measured one after the other, a
    burst of load during one variant skews every ratio against the others.
    """
    for fn in fns:
        for _ in range(min(200, runs)):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for fn, out in zip(fns, times, strict=True):
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
    return [statistics.median(t) * 1e6 for t in times]


def contract(i: int, datasets: int) -> DocumentWrite:
    ds = f"dataset_{i % datasets}"
    version = f"{i // datasets + 1}.{i % 7}.0"
    status = STATUSES[i % 3]
    body = canonical_json(
        {
            "id": f"c{i}",
            "version": version,
            "status": status,
            "schema": [{"name": ds}],
            "description": "x" * 400,
        }
    )
    return DocumentWrite(
        f"c{i}",
        body,
        content_hash(body),
        IndexEntry({"dataset": (ds,), "status": (status,)}, semver_sort_key(version)),
    )


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    dsn = admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    name = f"dq_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'bench'").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(name)
            )
        )
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    host, port = info.get("host", "127.0.0.1"), info.get("port", 5432)
    try:
        yield f"postgresql+psycopg://{name}:bench@{host}:{port}/{name}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def load(backend: SqlBackend, start: int, stop: int, datasets: int) -> float:
    t0 = time.perf_counter()
    backend.put_many(SCOPE, KIND, (contract(i, datasets) for i in range(start, stop)))
    return (stop - start) / (time.perf_counter() - t0)


def raw_connection(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True
    )
    conn.execute(
        "SELECT set_config('dq.tenant', %s, false), set_config('dq.environment', %s, false)",
        (SCOPE.tenant, SCOPE.environment),
    )
    return conn


def query_sql(query: Query) -> tuple[str, list[Any]]:
    return select_documents(
        ("%s", " OFFSET 0"), SCOPE.tenant, SCOPE.environment, KIND, query, None, query.limit + 1
    )


def bench_ops(
    backend: SqlBackend, url: str, docs: int, datasets: int, runs: int
) -> dict[str, float]:
    raw = raw_connection(url)
    no_rls = SqlBackend(url, row_level_security=False)
    latest = Query(
        filters=(FieldFilter("dataset", ("dataset_7",)), FieldFilter("status", ("active",))),
        descending=True,
        limit=1,
    )
    page = Query(filters=(FieldFilter("status", ("active",)),), limit=50)
    key = "c7"
    get_sql = (
        "SELECT environment, kind, key, revision, body, sha256, fields, sort_key, written_at,"
        " deleted FROM dq_heads WHERE tenant = %s AND environment = %s AND kind = %s AND key = %s"
    )
    get_params = (SCOPE.tenant, SCOPE.environment, KIND, key)
    write = contract(7, datasets)
    rev = Revision.of(write)
    put_statements = _write_statements(ANY, rev)
    put_params: dict[str, Any] = {
        **rev.params(SCOPE, KIND, datetime.now(UTC)),
        "rev": None,
        "pf": [f for f, _ in rev.postings],
        "pv": [v for _, v in rev.postings],
    }
    scope_params = (SCOPE.tenant, SCOPE.environment)

    def pipelined(statements: list[tuple[str, Any]]) -> Any:
        with raw.pipeline():
            raw.execute(_SCOPE, scope_params, prepare=True)
            cursors = [raw.execute(q, p, prepare=True) for q, p in statements]
        return cursors[0].fetchall()

    def stamped() -> None:  # the time and the record-hash prefix, as the backend sends them
        put_params.update(rev.params(SCOPE, KIND, datetime.now(UTC)))

    def raw_put() -> None:  # same statements, one explicit transaction, scope per session
        stamped()
        with raw.transaction():
            for stmt in put_statements:
                raw.execute(stmt, put_params, prepare=True)

    def raw_put_same() -> None:
        stamped()
        pipelined([(q, put_params) for q in put_statements])

    def raw_query(q: Query) -> Callable[[], Any]:
        text, params = query_sql(q)
        return lambda: raw.execute(text, params, prepare=True).fetchall()

    def raw_query_same(q: Query) -> Callable[[], Any]:
        text, params = query_sql(q)
        return lambda: pipelined([(text, params)])

    results: dict[str, float] = {}
    cases: dict[str, tuple[Callable[[], Any], ...]] = {
        "get": (
            lambda: backend.get(SCOPE, KIND, key),
            lambda: no_rls.get(SCOPE, KIND, key),
            lambda: raw.execute(get_sql, get_params, prepare=True).fetchone(),
            lambda: pipelined([(get_sql, get_params)]),
        ),
        "put": (
            lambda: backend.put(SCOPE, KIND, write, ANY),
            lambda: no_rls.put(SCOPE, KIND, write, ANY),
            raw_put,
            raw_put_same,
        ),
        "latest_for_dataset": (
            lambda: backend.query(SCOPE, KIND, latest),
            lambda: no_rls.query(SCOPE, KIND, latest),
            raw_query(latest),
            raw_query_same(latest),
        ),
        "filtered_page_50": (
            lambda: backend.query(SCOPE, KIND, page),
            lambda: no_rls.query(SCOPE, KIND, page),
            raw_query(page),
            raw_query_same(page),
        ),
    }
    print(f"\n== {docs:,} documents ({runs} runs each; µs medians) ==")
    print(
        f"{'operation':<20}{'backend':>9}{'rls off':>9}{'raw floor':>11}{'raw same':>10}"
        f"{'÷floor':>8}{'÷same':>7}{'off÷floor':>11}"
    )
    for name, fns in cases.items():
        b, o, f, s = medians_us(fns, runs)
        results[name] = b
        print(
            f"{name:<20}{b:>9.0f}{o:>9.0f}{f:>11.0f}{s:>10.0f}{b / f:>8.2f}{b / s:>7.2f}{o / f:>11.2f}"
        )
    no_rls.close()
    raw.close()
    return results


class TurnCounter:
    """A loopback TCP proxy that counts round trips: client sends that follow a reply.

    Used with one pooled connection, so the count is the operation's round trips.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.turns = 0
        self._last_from_server = True
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._target, timeout=10)
                for a, b, to_server in ((client, upstream, True), (upstream, client, False)):
                    threading.Thread(target=self._pump, args=(a, b, to_server), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_server: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self._lock:
                    if to_server and self._last_from_server:
                        self.turns += 1
                    self._last_from_server = not to_server
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


def bench_commit(url: str, datasets: int, runs: int) -> None:
    """Two-document commits vs two single puts: µs medians and round trips per call."""
    backend = SqlBackend(url)
    a, b = contract(7, datasets), contract(8, datasets)
    counter = itertools.count()
    head = {"revision": backend.put(SCOPE, "head", b, ANY).revision}

    def publish(target: SqlBackend) -> None:  # a new version document + its head, guarded
        version = contract(next(counter) + 10_000_000, datasets)
        target.commit(
            SCOPE,
            [
                Put(KIND, version, MUST_NOT_EXIST),
                Put("head", b, at_revision(head["revision"])),
            ],
        )
        head["revision"] += 1

    def publish_as_puts(target: SqlBackend) -> None:
        version = contract(next(counter) + 10_000_000, datasets)
        target.put(SCOPE, KIND, version, MUST_NOT_EXIST)
        target.put(SCOPE, "head", b, at_revision(head["revision"]))
        head["revision"] += 1

    cases: dict[str, Callable[[SqlBackend], Any]] = {
        "put (one document)": lambda t: t.put(SCOPE, KIND, a, ANY),
        "2 single puts": lambda t: (t.put(SCOPE, KIND, a, ANY), t.put(SCOPE, KIND, b, ANY)),
        "commit of 2 puts": lambda t: t.commit(SCOPE, [Put(KIND, a), Put(KIND, b)]),
        "publish as 2 puts": publish_as_puts,
        "publish commit": publish,
    }
    medians = medians_us(tuple(functools.partial(fn, backend) for fn in cases.values()), runs)
    backend.close()
    trips = count_round_trips(url, cases) if url.startswith("postgresql") else [0.0] * len(cases)
    print(f"\n== commits vs single puts ({runs} runs each; µs medians, round trips per call) ==")
    for name, median, trip in zip(cases, medians, trips, strict=True):
        print(f"{name:<22}{median:>9.0f}{trip:>8.1f}")


def count_round_trips(url: str, cases: dict[str, Callable[[SqlBackend], Any]]) -> list[float]:
    """Round trips per call of each case, through a counting proxy (one connection)."""
    info = psycopg.conninfo.conninfo_to_dict(url.replace("postgresql+psycopg://", "postgresql://"))
    target = (str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)))
    proxy = TurnCounter(target)
    via = url.replace(f"@{target[0]}:{target[1]}/", f"@127.0.0.1:{proxy.port}/")
    counted = SqlBackend(via, pool_size=1, max_overflow=0)
    trips: list[float] = []
    for fn in cases.values():
        fn(counted)  # prepares the statements on this connection
        before = proxy.turns
        for _ in range(20):
            fn(counted)
        trips.append((proxy.turns - before) / 20)
    counted.close()
    proxy.close()
    return trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("DQ_BENCH_POSTGRES_URL"))
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument(
        "--big", type=int, default=0, help="also measure at this size (e.g. 1000000)"
    )
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--states", action="store_true", help="never analysed vs analysed")
    parser.add_argument("--states-big", action="store_true", help="--states, also at 100k")
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="only the commit benchmark, on a temporary SQLite file",
    )
    args = parser.parse_args()
    datasets = max(1, args.docs // 10)
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            bench_commit(f"sqlite:///{tmp}/bench.sqlite", datasets, args.runs)
        return
    with contextlib.ExitStack() as stack:
        admin_url = args.url or stack.enter_context(find_server())
        if args.states or args.states_big:
            sizes = [args.docs, *([100_000] if args.states_big else [])]
            for docs in sizes:
                for analysed in (False, True):
                    with fresh_database(admin_url) as url:
                        bench_state(url, docs, analysed, min(args.runs, 500))
            return
        run(stack.enter_context(fresh_database(admin_url)), args, datasets)


@contextlib.contextmanager
def find_server() -> Iterator[str]:
    """The default server if it answers, else a throw-away one started like the tests do."""
    try:
        psycopg.connect(DEFAULT_URL.replace("+psycopg", ""), connect_timeout=3).close()
    except psycopg.OperationalError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.support.postgres import _start_local

        started = _start_local()
        if isinstance(started, str):
            raise SystemExit(f"no PostgreSQL server: {started}") from None
        server = next(started)
        print(f"started a throw-away server: {server.admin_dsn}")
        try:
            yield server.admin_dsn
        finally:
            started.close()
        return
    yield DEFAULT_URL


def run(url: str, args: argparse.Namespace, datasets: int) -> None:
    backend = SqlBackend(url)
    try:
        rate = load(backend, 0, args.docs, datasets)
        print(f"bulk load (put_many): {rate:,.0f} docs/s for {args.docs:,} documents")
        with raw_connection(url) as conn:
            conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load
        small = bench_ops(backend, url, args.docs, datasets, args.runs)
        bench_commit(url, datasets, args.runs)
        if args.big > args.docs:
            rate = load(backend, args.docs, args.big, datasets)
            print(f"bulk load (put_many): {rate:,.0f} docs/s up to {args.big:,} documents")
            with raw_connection(url) as conn:
                conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load
            big = bench_ops(backend, url, args.big, datasets, args.runs)
            print(f"\n== {args.big:,} vs {args.docs:,} documents (target <= 1.5x) ==")
            for name in ("latest_for_dataset", "filtered_page_50", "get"):
                print(f"{name:<20}{big[name] / small[name]:>8.2f}x")
    finally:
        backend.close()


def _never_analysed_load(url: str, docs: int, datasets: int) -> SqlBackend:
    """``docs`` contracts loaded through ``put_many`` with every statistics refresh off."""
    backend = SqlBackend(url, analyze_after=None)
    with raw_connection(url) as conn:
        for table in ("dq_revisions", "dq_heads", "dq_postings"):
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    load(backend, 0, docs, datasets)
    return backend


def bench_state(url: str, docs: int, analysed: bool, runs: int) -> None:
    """get / create / update / filtered page in one statistics state, ÷ raw psycopg."""
    datasets = max(1, docs // 10)
    backend = _never_analysed_load(url, docs, datasets)
    raw = raw_connection(url)
    if analysed:
        raw.execute("ANALYZE dq_revisions, dq_heads, dq_postings")
    reltuples = raw.execute("SELECT reltuples FROM pg_class WHERE relname = 'dq_heads'").fetchone()
    page = Query(filters=(FieldFilter("dataset", ("dataset_7",)),), descending=True, limit=50)
    page_sql, page_params = query_sql(page)
    get_sql = (
        "SELECT environment, kind, key, revision, body, sha256, fields, sort_key, written_at,"
        " deleted FROM dq_heads WHERE tenant = %s AND environment = %s AND kind = %s AND key = %s"
    )
    get_params = (SCOPE.tenant, SCOPE.environment, KIND, "c7")
    fresh = iter(range(10 * docs, 10**9))

    def same(statements: list[tuple[str, Any]]) -> Any:
        """The backend's statements sent as it sends them: scope + pipeline, one Sync."""
        with raw.pipeline():
            raw.execute(_SCOPE, (SCOPE.tenant, SCOPE.environment), prepare=True)
            cursors = [raw.execute(q, p, prepare=True) for q, p in statements]
        return cursors[0].fetchall()

    def write_statements(write: DocumentWrite, expect: Any) -> list[tuple[str, Any]]:
        rev = Revision.of(write)
        params: dict[str, Any] = {
            **rev.params(SCOPE, KIND, datetime.now(UTC)),
            "rev": None,
            "pf": [f for f, _ in rev.postings],
            "pv": [v for _, v in rev.postings],
        }
        return [(q, params) for q in _write_statements(expect, rev)]

    def raw_write(write: DocumentWrite, expect: Any) -> None:  # the floor: no scope per write
        with raw.transaction():
            for stmt, params in write_statements(write, expect):
                raw.execute(stmt, params, prepare=True)

    update = contract(7, datasets)
    cases: dict[str, tuple[Callable[[], Any], ...]] = {
        "get": (
            lambda: backend.get(SCOPE, KIND, "c7"),
            lambda: raw.execute(get_sql, get_params, prepare=True).fetchone(),
            lambda: same([(get_sql, get_params)]),
        ),
        "create": (
            lambda: backend.put(SCOPE, KIND, contract(next(fresh), datasets), ABSENT),
            lambda: raw_write(contract(next(fresh), datasets), ABSENT),
            lambda: same(write_statements(contract(next(fresh), datasets), ABSENT)),
        ),
        "update": (
            lambda: backend.put(SCOPE, KIND, update, ANY),
            lambda: raw_write(update, ANY),
            lambda: same(write_statements(update, ANY)),
        ),
        "filtered_page_50": (
            lambda: backend.query(SCOPE, KIND, page),
            lambda: raw.execute(page_sql, page_params, prepare=True).fetchall(),
            lambda: same([(page_sql, page_params)]),
        ),
    }
    state = "analysed" if analysed else "never analysed"
    print(f"\n== {docs:,} documents, {state} (reltuples {reltuples and reltuples[0]}) ==")
    print(
        f"{'operation':<20}{'backend':>9}{'raw floor':>11}{'raw same':>10}{'÷floor':>8}{'÷same':>7}"
    )
    for name, fns in cases.items():
        b, f, r = medians_us(fns, runs)
        print(f"{name:<20}{b:>9.0f}{f:>11.0f}{r:>10.0f}{b / f:>8.2f}{b / r:>7.2f}")
    raw.close()
    backend.close()


if __name__ == "__main__":
    main()
