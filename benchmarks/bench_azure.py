"""Azure Blob backend vs raw azure-storage-blob calls on the same Azurite, in one run.

    .venv/bin/python benchmarks/bench_azure.py [--connection-string CS] [--docs 2000]
                                               [--samples 200] [--big [--big-mb 1024]]

Endpoint: ``--connection-string``, else ``DQ_BENCH_AZURE_CONNECTION_STRING``, else an
Azurite started from ``node_modules`` (``npm ci``) on a free port, in memory.

Each backend operation is timed interleaved with its raw twin: the same HTTP
requests issued directly with the SDK (same client settings), so the ratio is the
library's own overhead. Also printed: HTTP requests per operation, and
latest-for-dataset at a small and a large store (flat = index works).
``--big``: a 1 GiB result streamed up and back through AzureBlobResultsStore,
generated on the fly, with this process's peak RSS (target < 200 MB).

Also: a two-document commit (ADR 0010) against two single puts of the same documents
(latency and requests; the "raw ms" column there is the two puts).

Targets (DESIGN §7): get / put ≤ 1.2x raw; latest large/small ≤ 1.5x.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.storage.blob import BlobServiceClient, ContainerClient

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_metadata.sortkeys import semver_sort_key
from dq_stores.azure_blob import AzureBlobBackend, AzureBlobResultsStore
from dq_stores.azure_blob._client import ClientSettings, make_service_client
from dq_stores.documents import (
    MUST_NOT_EXIST,
    DocumentWrite,
    FieldFilter,
    IndexEntry,
    Put,
    Query,
    at_revision,
)

ROOT = Path(__file__).resolve().parents[1]
AZURITE = ROOT / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
SCOPE = Scope("bench", "prod")
KIND = "contract"
STATUSES = ("active", "draft", "deprecated", "retired")
VERSIONS_PER_DATASET = 10


def _start_azurite() -> tuple[str, subprocess.Popen[bytes]]:
    if not AZURITE.exists():
        sys.exit("Azurite missing: run `npm ci` in the repository root")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            shutil.which("node") or "node",
            str(AZURITE),
            "--inMemoryPersistence",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--skipApiVersionCheck",
            "--silent",
            "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    cs = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    return cs, proc


def _body(i: int) -> bytes:
    return canonical_json(
        {
            "apiVersion": "v3.0.2",
            "kind": "DataContract",
            "id": f"contract-{i}",
            "description": {"purpose": "benchmark document " + "x" * 300},
            "schema": [{"name": f"dataset_{i}", "properties": [{"name": "id", "type": "int"}]}],
        }
    )


def _write(i: int, datasets: int, rng: random.Random) -> DocumentWrite:
    dataset = f"dataset-{i % datasets}"
    version = f"{i // datasets}.{rng.randrange(20)}.0"
    body = _body(i)
    index = IndexEntry(
        {"dataset": (dataset,), "status": (rng.choice(STATUSES),)}, semver_sort_key(version)
    )
    return DocumentWrite(f"{dataset}@{version}#{i}", body, content_hash(body), index)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def _pair(
    ours: Callable[[int], object], raw: Callable[[int], object], n: int
) -> tuple[float, float]:
    ours_t: list[float] = []
    raw_t: list[float] = []
    for i in range(n):
        order = ((raw, raw_t), (ours, ours_t)) if i % 2 else ((ours, ours_t), (raw, raw_t))
        for fn, out in order:
            t0 = time.perf_counter()
            fn(i)
            out.append(time.perf_counter() - t0)
    return _median_ms(ours_t), _median_ms(raw_t)


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def hook(self, _request: Any) -> None:
        self.n += 1

    def count(self, fn: Callable[[], object]) -> int:
        before = self.n
        fn()
        return self.n - before


def _client(cs: str, counter: Counter | None = None) -> BlobServiceClient:
    extra = {"raw_request_hook": counter.hook} if counter else {}
    return make_service_client(
        connection_string=cs, account_url=None, credential=None, settings=ClientSettings(), **extra
    )


def _populate(backend: AzureBlobBackend, scope: Scope, n: int) -> tuple[float, int]:
    datasets = max(1, n // VERSIONS_PER_DATASET)
    rng = random.Random(n)
    t0 = time.perf_counter()
    backend.put_many(scope, KIND, (_write(i, datasets, rng) for i in range(n)))
    return time.perf_counter() - t0, datasets


def _latest_query(dataset: str) -> Query:
    return Query(
        (FieldFilter("dataset", (dataset,)), FieldFilter("status", ("active",))),
        descending=True,
        limit=1,
    )


def _bench_get(
    backend: AzureBlobBackend,
    counter: Counter,
    built: AzureBlobBackend,
    raw: ContainerClient,
    row: Callable[[str, float, float, int | str], None],
    samples: int,
) -> None:
    """get: one GET of the head; raw: the same GET. ``backend`` was given its client
    (each request then carries the clock's per-operation response hook, ADR 0004);
    ``built`` built its own (the client-level hook)."""
    key = "orders@1.0.0"
    for name, store in (("get", backend), ("get (client the backend built)", built)):
        ours, floor = _pair(
            lambda i, s=store: s.get(SCOPE, KIND, key),
            lambda i: raw.download_blob("raw/head").readall(),
            samples,
        )
        row(name, ours, floor, counter.count(lambda: backend.get(SCOPE, KIND, key)))
    built.close()


def bench_ops(cs: str, container: str, samples: int, docs: int) -> None:
    counter = Counter()
    client = _client(cs, counter)
    backend = AzureBlobBackend(container, client=client)
    raw: ContainerClient = _client(cs).get_container_client(container)
    pool = ThreadPoolExecutor(8)
    body = _body(0)
    fields = {"dataset": ("orders",), "status": ("active",)}
    doc = DocumentWrite(
        "orders@1.0.0", body, content_hash(body), IndexEntry(fields, semver_sort_key("1.0.0"))
    )
    backend.put(SCOPE, KIND, doc, MUST_NOT_EXIST)
    head_name = "bench/prod/contract/h/orders_401_2e0_2e0"
    raw.upload_blob("raw/head", raw.download_blob(head_name).readall(), overwrite=True)

    print(f"{'operation':34} {'backend ms':>10} {'raw ms':>8} {'ratio':>6} {'requests':>8}")

    def row(name: str, ours: float, floor: float, requests: int | str) -> None:
        print(f"{name:34} {ours:10.2f} {floor:8.2f} {ours / floor:6.2f} {requests!s:>8}")

    _bench_get(
        backend, counter, AzureBlobBackend(container, connection_string=cs), raw, row, samples
    )

    # update with unchanged index: GET head, PUT archive (If-None-Match *), PUT head (If-Match)
    state = {"rev": backend.get(SCOPE, KIND, doc.key).revision}

    def put(i: int) -> None:
        state["rev"] = backend.put(SCOPE, KIND, doc, at_revision(state["rev"])).revision

    def raw_put(i: int) -> None:
        down = raw.download_blob("raw/head")
        data = down.readall()
        raw.upload_blob(
            f"raw/r/{uuid.uuid4().hex}",
            data,
            overwrite=True,
            match_condition=MatchConditions.IfMissing,
        )
        raw.upload_blob(
            "raw/head",
            data,
            overwrite=True,
            etag=down.properties.etag,
            match_condition=MatchConditions.IfNotModified,
            metadata={"rev": "1", "deleted": "0"},
        )

    ours, floor = _pair(put, raw_put, samples)
    row("put (update, same index)", ours, floor, counter.count(lambda: put(0)))

    # create with 2 indexed fields: 6 entry PUTs in parallel, then the head PUT (If-None-Match *)
    def create(i: int) -> None:
        w = DocumentWrite(f"new-{i}-{uuid.uuid4().hex[:8]}", body, doc.sha256, doc.index)
        backend.put(SCOPE, KIND, w, MUST_NOT_EXIST)

    def raw_create(i: int) -> None:
        name = uuid.uuid4().hex
        list(
            pool.map(
                lambda j: raw.upload_blob(
                    f"raw/x/{name}/{j}", b"", overwrite=True, metadata={"m": "e30"}
                ),
                range(6),
            )
        )
        raw.upload_blob(
            f"raw/h/{name}", body, overwrite=True, match_condition=MatchConditions.IfMissing
        )

    ours, floor = _pair(create, raw_create, max(20, samples // 2))
    row("put (create, 2 indexed fields)", ours, floor, counter.count(lambda: create(-1)))

    # latest-for-dataset: list the dataset's descending range, read 2 heads in parallel
    for v in ("1.1.0", "2.0.0", "2.1.0"):
        w = DocumentWrite(f"orders@{v}", body, doc.sha256, IndexEntry(fields, semver_sort_key(v)))
        backend.put(SCOPE, KIND, w, MUST_NOT_EXIST)
    latest_q = _latest_query("orders")
    prefix = "bench/prod/contract/x/dataset/orders/d/"
    heads = ["bench/prod/contract/h/orders_402_2e1_2e0", "bench/prod/contract/h/orders_402_2e0_2e0"]

    def raw_latest(i: int) -> None:
        next(
            iter(
                raw.list_blobs(
                    name_starts_with=prefix, include=["metadata"], results_per_page=4
                ).by_page()
            )
        )
        list(pool.map(lambda n: raw.download_blob(n).readall(), heads))

    ours, floor = _pair(lambda i: backend.query(SCOPE, KIND, latest_q), raw_latest, samples)
    row(
        "latest-for-dataset",
        ours,
        floor,
        counter.count(lambda: backend.query(SCOPE, KIND, latest_q)),
    )

    pool.shutdown()
    bench_commit(backend, counter, samples)
    bench_scale(backend, counter, samples, docs)
    backend.close()
    client.close()


def bench_commit(backend: AzureBlobBackend, counter: Counter, samples: int) -> None:
    """A two-document commit (updates, unchanged index) vs two single puts, interleaved."""
    body = _body(1)
    index = IndexEntry({"dataset": ("pair",)}, "1")
    pair = [DocumentWrite(k, body, content_hash(body), index) for k in ("pair-a", "pair-b")]
    revs = {w.key: backend.put(SCOPE, KIND, w, MUST_NOT_EXIST).revision for w in pair}

    def commit(i: int) -> None:
        ops = [Put(KIND, w, at_revision(revs[w.key])) for w in pair]
        for w, stored in zip(pair, backend.commit(SCOPE, ops), strict=True):
            assert stored is not None
            revs[w.key] = stored.revision

    def two_puts(i: int) -> None:
        for w in pair:
            revs[w.key] = backend.put(SCOPE, KIND, w, at_revision(revs[w.key])).revision

    ours, floor = _pair(commit, two_puts, samples)
    print(
        f"{'commit of 2 docs vs 2 single puts':34} {ours:10.2f} {floor:8.2f} {ours / floor:6.2f} "
        f"{counter.count(lambda: commit(0)):>4} vs {counter.count(lambda: two_puts(0))}"
    )


def bench_scale(backend: AzureBlobBackend, counter: Counter, samples: int, docs: int) -> None:
    """latest-for-dataset and a filtered page at a small and a large store."""
    # flat: latest at a small and a large store
    small_scope, large_scope = Scope("bench", "small"), Scope("bench", "large")
    t_small, ds_small = _populate(backend, small_scope, max(300, docs // 10))
    t_large, ds_large = _populate(backend, large_scope, docs)
    print(
        f"\npopulated {max(300, docs // 10)} docs in {t_small:.1f}s, {docs} in {t_large:.1f}s "
        f"({docs / t_large:.0f} docs/s via put_many)"
    )
    rng = random.Random(3)
    small_names = [f"dataset-{rng.randrange(ds_small)}" for _ in range(samples)]
    large_names = [f"dataset-{rng.randrange(ds_large)}" for _ in range(samples)]
    # interleaved, like the raw pairs, so load on the machine hits both sides alike
    lat_large, lat_small = _pair(
        lambda i: backend.query(large_scope, KIND, _latest_query(large_names[i])),
        lambda i: backend.query(small_scope, KIND, _latest_query(small_names[i])),
        samples,
    )
    reqs = counter.count(
        lambda: [backend.query(large_scope, KIND, _latest_query(n)) for n in large_names[:20]]
    )
    print(
        f"latest-for-dataset small {lat_small:.2f} ms, large {lat_large:.2f} ms, "
        f"ratio {lat_large / lat_small:.2f}, requests/op {reqs / 20:.1f} "
        "(random statuses: 1 in 4 versions active)"
    )
    page_q = Query((FieldFilter("status", ("draft",)),), limit=50)
    page_large, page_small = _pair(
        lambda i: backend.query(large_scope, KIND, page_q),
        lambda i: backend.query(small_scope, KIND, page_q),
        max(10, samples // 5),
    )
    print(
        f"filtered page of 50  small {page_small:.2f} ms, large {page_large:.2f} ms,"
        f" ratio {page_large / page_small:.2f}, requests "
        f"{counter.count(lambda: backend.query(large_scope, KIND, page_q))}"
    )
    bench_pages_and_count(backend, counter, large_scope, samples)
    bench_bulk(backend, counter, min(docs, 2000))


def _generated(total: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    block = hashlib.sha256(b"seed").digest() * (chunk // 32)
    sent = 0
    while sent < total:
        size = min(chunk, total - sent)
        yield block[:size]
        sent += size


def bench_big(cs: str, container: str, megabytes: int) -> None:
    store = AzureBlobResultsStore(container, connection_string=cs)
    total = megabytes * 1024 * 1024
    t0 = time.perf_counter()
    ref = store.upload(SCOPE, "big-run", "result.bin", _generated(total))
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    received = sum(len(c) for c in store.open(SCOPE, ref))
    down = time.perf_counter() - t0
    assert received == total
    store.delete(SCOPE, ref)
    store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{megabytes} MiB result: upload {up:.1f}s ({megabytes / up:.0f} MiB/s), "
        f"download+verify {down:.1f}s ({megabytes / down:.0f} MiB/s), "
        f"peak RSS of this process {peak_mb:.0f} MB (target < 200 MB)"
    )


def bench_pages_and_count(
    backend: AzureBlobBackend, counter: Counter, scope: Scope, samples: int
) -> None:
    """Page 1 vs page 10 (50 per page, fewer on small stores) and a filtered count on
    one store (issue 12: both within 1.5x of page 1), with requests per operation."""
    filters = (FieldFilter("status", ("draft",)),)
    matches = backend.count(scope, KIND, filters)
    limit = max(2, min(50, matches // 11))  # 50, or less on a small store: page 10 exists
    query = Query(filters, limit=limit)
    tokens: list[str | None] = [None]
    for _ in range(9):
        tokens.append(backend.query(scope, KIND, Query(filters, limit=limit,
                                                       page_token=tokens[-1])).next_token)  # fmt: skip
    assert tokens[9] is not None
    tenth = Query(filters, limit=limit, page_token=tokens[9])
    rounds = max(5, samples // 10)
    page10, page1 = _pair(
        lambda i: backend.query(scope, KIND, tenth), lambda i: backend.query(scope, KIND, query),
        rounds,
    )  # fmt: skip
    count, page1b = _pair(
        lambda i: backend.count(scope, KIND, filters),
        lambda i: backend.query(scope, KIND, query),
        rounds,
    )
    print(
        f"page 1 of {limit} (status=draft) {page1:.1f} ms, {counter.count(lambda: backend.query(scope, KIND, query))} requests;"
        f" page 10 {page10:.1f} ms ({page10 / page1:.2f}x), {counter.count(lambda: backend.query(scope, KIND, tenth))} requests"
    )  # fmt: skip
    print(
        f"filtered count ({matches} matches) {count:.1f} ms ({count / page1b:.2f}x page 1),"
        f" {counter.count(lambda: backend.count(scope, KIND, filters))} requests"
    )  # fmt: skip


def bench_bulk(backend: AzureBlobBackend, counter: Counter, docs: int) -> None:
    """put_many throughput and requests per document (new keys, 2 indexed fields)."""
    scope = Scope("bench", "bulk")
    rng = random.Random(5)
    writes = [_write(i, max(1, docs // 10), rng) for i in range(docs)]
    t0 = time.perf_counter()
    requests = counter.count(lambda: backend.put_many(scope, KIND, writes))
    seconds = time.perf_counter() - t0
    print(
        f"bulk import (put_many) of {docs} new docs: {docs / seconds:.0f} docs/s,"
        f" {requests / docs:.1f} requests/doc"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--connection-string", default=os.environ.get("DQ_BENCH_AZURE_CONNECTION_STRING")
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--big", action="store_true", help="1 GiB results round trip only")
    parser.add_argument("--big-mb", type=int, default=1024)
    args = parser.parse_args()
    proc = None
    cs = args.connection_string
    if cs is None:
        cs, proc = _start_azurite()
    container = f"bench{uuid.uuid4().hex[:12]}"
    with BlobServiceClient.from_connection_string(cs) as service:
        service.create_container(container)
        try:
            if args.big:  # first, so the peak RSS is the results store's alone
                bench_big(cs, container, args.big_mb)
            else:
                bench_ops(cs, container, args.samples, args.docs)
        finally:
            service.delete_container(container)
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    main()
