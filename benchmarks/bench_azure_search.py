"""Contract search on Azure Blob: requests and latency per search at N vs 4N contracts.

    .venv/bin/python benchmarks/bench_azure_search.py [--docs 300] [--samples 20]
                                                      [--publish-only]

Endpoint as in ``bench_azure.py`` (``--connection-string``, the environment, or an
Azurite started from ``node_modules``). Each contract has ~20 search tokens (name,
tags, a description drawn from a 400-word vocabulary); ten carry the rare word
``needle`` at every size. Printed per size: median ms and HTTP requests of a rare
search (fixed matches), a two-term search and a common word (matches grow with N).
Also printed: requests to publish one contract-shaped document with 100 search tokens
(``--publish-only`` prints that alone; run it against an older checkout to compare).
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import time
import uuid

from azure.storage.blob import BlobServiceClient

from bench_azure import Counter, _client, _start_azurite
from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend
from dq_stores.documents import MUST_NOT_EXIST, DocumentWrite, IndexEntry
from dq_stores.search import search_fields

KIND = "contract"
VOCABULARY = ["".join(p) for p in itertools.product("bcdfghklmn", "aeiou", "prst", "aeio")][:400]


def _contract(
    key: str, title: list[str], body: list[str], **extra: tuple[str, ...]
) -> DocumentWrite:
    payload = canonical_json({"id": key, "title": title, "body": body})
    index = IndexEntry({**search_fields(title, body), **extra}, key)
    return DocumentWrite(key, payload, content_hash(payload), index)


def _corpus(start: int, stop: int) -> list[DocumentWrite]:
    rng = random.Random(start)
    docs = []
    for i in range(start, stop):
        words = rng.sample(VOCABULARY, 16)
        if i % (stop // 10 or 1) == 0 and i < 10 * (stop // 10 or 1):
            words.append("needle")
        title = [f"sales.orders_{i}", "gold"]
        docs.append(_contract(f"c{i:06d}", title, [" ".join(words)], dataset=(f"d{i}",)))
    return docs


def _search(
    backend: AzureBlobBackend, scope: Scope, counter: Counter, text: str, samples: int
) -> str:
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        page = backend.search(scope, KIND, text, limit=20)
        times.append((time.perf_counter() - t0) * 1000)
    hits = len(page.hits)
    requests = counter.count(lambda: backend.search(scope, KIND, text, limit=20))
    return (
        f"{text!r}: {statistics.median(times):.1f} ms, {requests} requests ({hits} hits on page 1)"
    )


def bench_publish(backend: AzureBlobBackend, counter: Counter) -> None:
    title = ["Customer orders", "sales.orders", "gold", "pii"]
    words = ["".join(pair) for pair in itertools.product("abcdefghij", repeat=2)]
    doc = _contract(
        "orders", title, [f"Orders placed by a customer {' '.join(words[:90])}"],
        dataset=("orders",), status=("active",),
    )  # fmt: skip
    tokens = sum(len(doc.index.fields[f]) for f in ("search_title", "search_body"))
    requests = counter.count(
        lambda: backend.put(Scope("bench", "publish"), KIND, doc, MUST_NOT_EXIST)
    )
    print(f"publish (create) of a contract with {tokens} search tokens: {requests} requests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--connection-string", default=os.environ.get("DQ_BENCH_AZURE_CONNECTION_STRING")
    )
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--publish-only", action="store_true")
    args = parser.parse_args()
    proc = None
    cs = args.connection_string
    if cs is None:
        cs, proc = _start_azurite()
    container = f"bench{uuid.uuid4().hex[:12]}"
    counter = Counter()
    with BlobServiceClient.from_connection_string(cs) as service:
        service.create_container(container)
        try:
            with _client(cs, counter) as client:
                backend = AzureBlobBackend(container, client=client)
                bench_publish(backend, counter)
                if not args.publish_only:
                    for scope, n in ((Scope("bench", "small"), args.docs),
                                     (Scope("bench", "large"), 4 * args.docs)):  # fmt: skip
                        t0 = time.perf_counter()
                        requests = counter.count(
                            lambda s=scope, n=n: backend.put_many(s, KIND, _corpus(0, n))
                        )
                        load = time.perf_counter() - t0
                        print(f"{n} contracts: loaded in {load:.0f} s, {requests / n:.1f} req/doc")
                        for text in ("needle", "needle gold", VOCABULARY[7]):
                            print("  " + _search(backend, scope, counter, text, args.samples))
                backend.close()
        finally:
            service.delete_container(container)
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    main()
