"""A small but complete world to move: registries' documents and odd raw keys.

2 tenants x 2 environments; per scope: contracts with lifecycle history, a job
definition saved twice, a deleted job, runs (one with offloaded results, one
inline), and raw documents under the conformance suite's hostile keys with
multi-revision histories and tombstones.
"""

from __future__ import annotations

import hashlib
from typing import Any

from dq_metadata.scope import Scope
from dq_registries.operations.transfer import Endpoint
from dq_registries.wiring.context import DQContext
from dq_stores.documents import ANY, FieldFilter, Query
from dq_stores.testing._helpers import HOSTILE_KEYS, doc

SCOPES = (
    Scope("acme", "prod"),
    Scope("acme", "dev"),
    Scope("globex", "prod"),
    Scope("globex", "dev"),
)
RAW_KIND = "widget"
RAW_KEYS = HOSTILE_KEYS[:2] + HOSTILE_KEYS[6:8] + HOSTILE_KEYS[19:22]


def contract(version: str, status: str = "draft") -> dict[str, Any]:
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "orders",
        "version": version,
        "status": status,
        "schema": [{"name": "orders", "properties": [{"name": "id", "logicalType": "string"}]}],
    }


def job(job_id: str, tags: list[str]) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": f"job {job_id}",
        "job_type": "validation",
        "contract": {"id": "orders", "version": "1.0.0"},
        "dataset": "orders",
        "tags": tags,
    }


def populate(endpoint: Endpoint) -> None:
    """Write the world through the registries and the raw port."""
    for n, scope in enumerate(SCOPES):
        with DQContext.create(
            scope.tenant,
            scope.environment,
            endpoint.backend,
            endpoint.results,
            inline_result_limit=64,
        ) as dq:
            dq.contracts.publish(contract("1.0.0"), actor="ann")
            dq.contracts.transition("orders", "1.0.0", "active", actor="ann")
            dq.contracts.publish(contract("1.1.0"), actor="bob")
            dq.contracts.transition("orders", "1.1.0", "active", actor="bob")
            dq.contracts.transition(
                "orders", "1.0.0", "deprecated", actor="bob", reason="superseded"
            )
            dq.jobs.save(job("nightly", ["daily"]))
            dq.jobs.save(job("nightly", ["daily", "critical"]))
            dq.jobs.save(job("scratch", ["tmp"]))
            dq.jobs.delete("scratch")
            big = dq.runs.start("nightly", idempotency_key="big")
            dq.runs.mark_running(big.run_id)
            dq.runs.finish(big.run_id, "succeeded", results={"rows": list(range(200 + n))})
            small = dq.runs.start("nightly", idempotency_key="small")
            dq.runs.finish(small.run_id, "failed", results={"rows": 1}, error="boom")
        for i, key in enumerate(RAW_KEYS):
            endpoint.backend.put(scope, RAW_KIND, doc(key, 0, sort_key=f"a{i}", tag="t"), ANY)
            endpoint.backend.put(
                scope, RAW_KIND, doc(key, 1, sort_key=f"b{i}", tag=("t", "u")), ANY
            )
            if i % 3 == 0:
                endpoint.backend.delete(scope, RAW_KIND, key)


def observe(endpoint: Endpoint) -> dict[str, Any]:
    """What users see, per scope: latest-for-dataset, filtered pages, results hashes."""
    out: dict[str, Any] = {}
    for scope in SCOPES:
        with DQContext.create(
            scope.tenant,
            scope.environment,
            endpoint.backend,
            endpoint.results,
            inline_result_limit=64,
        ) as dq:
            latest = dq.contracts.get_latest_for_dataset("orders")
            runs = [v.item for v in dq.runs.list(limit=10).items]
            failed = [v.item for v in dq.runs.list(status="failed").items]
            tagged = [
                v.item for v in dq.jobs.list_by_tags(["critical", "daily"], match="any").items
            ]
            results = {
                r.run_id: hashlib.sha256(b"".join(dq.runs.open_results(r.run_id))).hexdigest()
                for r in runs
            }
            out[str(scope)] = {
                "latest": latest.model_dump(mode="json"),
                "runs": [(r.run_id, r.status, r.finished_at) for r in runs],
                "failed": [r.run_id for r in failed],
                "tagged": [j.id for j in tagged],
                "results": results,
                "raw_page": [
                    (d.key, d.revision, d.written_at)
                    for d in endpoint.backend.query(
                        scope,
                        RAW_KIND,
                        Query(filters=(FieldFilter("tag", ("u",)),), descending=True),
                    ).items
                ],
                "raw_count": endpoint.backend.count(scope, RAW_KIND),
            }
    return out
