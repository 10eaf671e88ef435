"""Registry operations vs the same documents written straight through the typed store.

    .venv/bin/python benchmarks/bench_registries.py [--quick] [--backends memory,filesystem,sqlite]

For each backend, in one run, interleaved in blocks of ten operations, times:

* ``publish``: ``ContractRegistry.publish(mapping)`` vs ``ContractStore.create`` +
  ``ContractHeadStore.create`` of the same, already built records;
* ``start``: ``JobRunRegistry.start(job_id)`` vs ``JobRunStore.create`` of the run;
* ``finish``: ``JobRunRegistry.finish(run_id, "succeeded", metrics=…)`` vs
  ``JobRunStore.update`` of the finished run.

The floor of each operation is the typed-store write **plus the single validation
the operation needs** (the ODCS contract parse for publish, one ``JobRun``
validation for start and finish), timed separately on the same input. The ratio
printed is registry / floor; the target (issue 8) is ≤ 1.2x. What a registry does
beyond that is domain work: publish reads the contract's head and highest version,
start reads the job definition, finish reads the run it changes.

``--save-many N`` times instead ``JobDefinitionRegistry.save_many`` of N new job
definitions (one contract, one action profile referenced by each) on each backend,
then the same batch again unchanged (no new revision).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dq_metadata.errors import NotFoundError
from dq_metadata.models import ContractHead, ContractVersion, JobDefinition, LifecycleEvent
from dq_metadata.scope import Scope
from dq_registries.domain.actions import ActionProfileRegistry
from dq_registries.domain.contracts import ContractRegistry
from dq_registries.domain.contracts.odcs import parse_contract
from dq_registries.domain.jobs import JobDefinitionRegistry
from dq_registries.domain.runs import JobRunRegistry
from dq_stores.backend import DocumentBackend
from dq_stores.typed import (
    ActionProfileStore,
    ContractHeadStore,
    ContractStore,
    JobDefinitionStore,
    JobRunStore,
)

SCOPE = Scope("bench", "dev")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def contract(i: int, prefix: str) -> dict[str, Any]:
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": f"{prefix}-{i}",
        "version": "1.0.0",
        "status": "active",
        "name": f"Orders {i}",
        "schema": [
            {
                "name": f"orders_{i}",
                "properties": [
                    {"name": "id", "logicalType": "string", "required": True},
                    {"name": "amount", "logicalType": "number"},
                    {"name": "created", "logicalType": "date"},
                ],
            }
        ],
    }


def records(i: int) -> tuple[ContractVersion, ContractHead]:
    parsed = parse_contract(contract(i, "direct"))
    event = LifecycleEvent(from_status=None, to_status="active", actor="me", at=T0)
    version = ContractVersion(
        contract=parsed, published_by="me", published_at=T0, lifecycle=[event]
    )
    return version, ContractHead(contract_id=parsed.id, latest_version="1.0.0", updated_at=T0)


def run_dict(run_id: str, i: int = 0, **extra: Any) -> dict[str, Any]:
    # distinct creation times, like the registry's runs (the time is the sort key)
    created = T0 + timedelta(seconds=i)
    return {"run_id": run_id, "job_id": "nightly", "created_at": created.isoformat(), **extra}


BLOCK = 10


def block(operation: Callable[[int], object], ids: range) -> float:
    """Mean µs of ``operation(i)`` over ``ids``, timed as one block."""
    start = time.perf_counter()
    for i in ids:
        operation(i)
    return (time.perf_counter() - start) * 1e6 / len(ids)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@contextmanager
def open_backend(name: str, where: Path) -> Iterator[DocumentBackend]:
    if name == "memory":
        from dq_stores.memory import MemoryBackend

        backend: DocumentBackend = MemoryBackend()
    elif name == "filesystem":
        from dq_stores.filesystem import FilesystemBackend

        backend = FilesystemBackend(where / "fs")
    else:
        from dq_stores.sql import SqlBackend

        backend = SqlBackend(f"sqlite:///{where / 'dq.sqlite'}")
    with backend:
        yield backend


def bench_backend(
    backend: DocumentBackend, samples: int
) -> list[tuple[str, float, float, float, float]]:
    contracts = ContractRegistry(SCOPE, ContractStore(backend), clock=Clock())
    versions, heads = ContractStore(backend), ContractHeadStore(backend)
    jobs, runs_store = JobDefinitionStore(backend), JobRunStore(backend)
    jobs.put(
        SCOPE,
        JobDefinition.model_validate(
            {
                "id": "nightly",
                "name": "n",
                "job_type": "validation",
                "contract": {"id": "orders", "version": "1.0.0"},
                "dataset": "orders",
            }
        ),
    )
    runs = JobRunRegistry(SCOPE, runs_store, clock=Clock())
    prebuilt = [records(i) for i in range(samples)]
    queued = [runs_store.validate(run_dict(f"direct-{i}", i)) for i in range(samples)]
    finished = [
        runs_store.validate(
            run_dict(
                f"direct-{i}",
                i,
                status="succeeded",
                started_at=T0.isoformat(),
                finished_at=T0.isoformat(),
                metrics={"rows": 1000.0, "failed": 3.0},
            )
        )
        for i in range(samples)
    ]
    keys = ("p", "pd", "pv", "pr", "s", "sd", "sv", "sr", "f", "fd", "fv", "fr")
    t: dict[str, list[float]] = {k: [] for k in keys}
    metrics = {"rows": 1000.0, "failed": 3.0}
    # Blocks of BLOCK operations of one kind, the kinds interleaved block by block:
    # one cold operation right after a different one would mostly time cache misses.
    for r in range(samples // BLOCK):
        ids = range(r * BLOCK, (r + 1) * BLOCK)
        t["p"].append(block(lambda i: contracts.publish(contract(i, "reg"), actor="me"), ids))
        t["pd"].append(block(lambda i: direct_publish(versions, heads, prebuilt[i]), ids))
        t["pv"].append(block(lambda i: parse_contract(contract(i, "check")), ids))
        t["pr"].append(block(lambda i: publish_reads(versions, heads, f"reg-{i}"), ids))
        started: list[Any] = []
        t["s"].append(block(lambda i, out=started: out.append(runs.start("nightly")), ids))
        t["sd"].append(block(lambda i: runs_store.create(SCOPE, queued[i]), ids))
        t["sv"].append(block(lambda i: runs_store.validate(run_dict(f"check-{i}")), ids))
        t["sr"].append(block(lambda i: jobs.get(SCOPE, "nightly"), ids))
        for run in started:  # untimed: finish needs running runs
            runs.mark_running(run.run_id)
        order = iter(started)
        t["f"].append(
            block(
                lambda i, rs=order: runs.finish(next(rs).run_id, "succeeded", metrics=metrics), ids
            )
        )
        t["fd"].append(block(lambda i: runs_store.update(SCOPE, finished[i], 1), ids))
        t["fv"].append(
            block(lambda i: runs_store.validate(finished[i].model_dump(mode="json")), ids)
        )
        t["fr"].append(block(lambda i: runs_store.get(SCOPE, queued[i].run_id), ids))
    med = {k: statistics.median(v) for k, v in t.items()}
    return [
        (op, med[k], med[k + "d"], med[k + "v"], med[k + "r"])
        for op, k in (("publish", "p"), ("start", "s"), ("finish", "f"))
    ]


def direct_publish(
    versions: ContractStore, heads: ContractHeadStore, pair: tuple[ContractVersion, ContractHead]
) -> None:
    versions.create(SCOPE, pair[0])
    heads.create(SCOPE, pair[1])


def publish_reads(versions: ContractStore, heads: ContractHeadStore, contract_id: str) -> None:
    """What publish must read first: the version (absent), the head, the highest version."""
    with suppress(NotFoundError):
        versions.get(SCOPE, f"{contract_id}@1.0.0")
    with suppress(NotFoundError):
        heads.get(SCOPE, contract_id)
    versions.list_versions(SCOPE, contract_id, limit=1, descending=True)


def bench_save_many(backend: DocumentBackend, count: int) -> tuple[float, float]:
    """Seconds of ``save_many`` of ``count`` new jobs, then of the same batch unchanged."""
    contracts, jobs = ContractStore(backend), JobDefinitionStore(backend)
    profiles = ActionProfileStore(backend)
    ContractRegistry(SCOPE, contracts, job_definitions=jobs).publish(
        contract(0, "orders"), actor="me"
    )
    ActionProfileRegistry(SCOPE, profiles, job_definitions=jobs).save(
        {"id": "pager", "name": "pager", "action_type": "quarantine", "target": "q"}
    )
    registry = JobDefinitionRegistry(SCOPE, jobs, contracts=contracts, action_profiles=profiles)
    batch = [
        {
            "id": f"job-{i:05d}",
            "name": f"job {i}",
            "job_type": "validation",
            "contract": {"id": "orders-0", "version": "1.0.0"},
            "dataset": "orders_0",
            "checkpoints": [{"name": "nn", "check": "not_null", "params": {"column": "id"}}],
            "on_failure": ["pager"],
        }
        for i in range(count)
    ]
    start = time.perf_counter()
    saved = registry.save_many(batch)
    first = time.perf_counter() - start
    assert len(saved) == count
    assert jobs.count(SCOPE) == count
    start = time.perf_counter()
    registry.save_many(batch)
    return first, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--backends", default="memory,filesystem,sqlite")
    parser.add_argument("--save-many", type=int, metavar="N", help="time save_many of N jobs")
    args = parser.parse_args()
    if args.save_many:
        print(f"JobDefinitionRegistry.save_many of {args.save_many:,} jobs, seconds")
        for name in args.backends.split(","):
            with tempfile.TemporaryDirectory() as where, open_backend(name, Path(where)) as b:
                new, unchanged = bench_save_many(b, args.save_many)
            print(f"{name:<11} new {new:8.2f}   unchanged {unchanged:8.2f}")
        return
    print(
        "medians, µs; floor = typed-store write + the one validation; "
        "reads = what the operation must read first"
    )
    print(f"{'backend':<11}{'operation':<10}{'registry':>10}{'store':>9}{'valid.':>9}"
          f"{'floor':>9}{'ratio':>8}{'reads':>9}{'ratio+reads':>13}")  # fmt: skip
    for name in args.backends.split(","):
        samples = {"memory": 600, "filesystem": 100, "sqlite": 200}[name]
        samples = samples // 4 if args.quick else samples
        with tempfile.TemporaryDirectory() as where, open_backend(name, Path(where)) as backend:
            for op, registry, store, validation, reads in bench_backend(backend, samples):
                floor = store + validation
                print(f"{name:<11}{op:<10}{registry:>10.1f}{store:>9.1f}{validation:>9.1f}"
                      f"{floor:>9.1f}{registry / floor:>7.2f}x{reads:>9.1f}"
                      f"{registry / (floor + reads):>12.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
