"""Publishing a contract vs one bare JSON-Schema validation of the same document.

    .venv/bin/python benchmarks/bench_publish.py [--sizes 100,1000,20000] [--repeat 5]

For contracts with N properties (one schema object), medians of ``--repeat`` runs:

* ``floor``  — one ``jsonschema_rs`` (Rust, draft 2019-09, formats on) validation of
  the ODCS document against the v3.1.0 schema, validator compiled beforehand;
* ``put``    — one raw store ``create`` of the same ``ContractVersion`` (memory backend);
* ``import`` — ``ContractRegistry.import_odcs`` of the document as JSON text;
* ``publish``— ``ContractRegistry.publish`` of the imported contract (fresh store each
  run, so it is always a first publish: schema check is not repeated, store put).

Target (issue 10): publish <= 2 x floor + put, and 20,000 properties under 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jsonschema_rs

from dq_metadata.models import ContractVersion
from dq_metadata.scope import Scope
from dq_registries.domain.contracts import ContractRegistry
from dq_stores import ContractStore, MemoryBackend

SCOPE = Scope("bench", "prod")


def document(properties: int) -> dict[str, Any]:
    """An ODCS v3.1.0 contract with one table of ``properties`` typed columns."""
    columns = [
        {
            "name": f"column_{i}",
            "logicalType": "integer" if i % 3 == 0 else "string",
            "physicalType": "BIGINT" if i % 3 == 0 else "VARCHAR(64)",
            "required": i % 2 == 0,
            "description": f"column number {i}",
            **({"quality": [{"metric": "nullValues", "mustBe": 0}]} if i % 10 == 0 else {}),
        }
        for i in range(properties)
    ]
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "bench", "version": "1.0.0",
        "status": "active", "name": "bench",
        "schema": [{"name": "wide_table", "physicalType": "table", "properties": columns}],
    }  # fmt: skip


def _median(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,20000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    schema_text = (
        resources.files("dq_registries.domain.contracts")
        .joinpath("odcs-json-schema-v3.1.0.json")
        .read_text("utf-8")
    )
    floor_validator = jsonschema_rs.validator_for(json.loads(schema_text), validate_formats=True)
    print(
        f"{'properties':>10} {'floor ms':>9} {'put ms':>8} {'import ms':>10} {'publish ms':>11} {'publish/(2*floor+put)':>22}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        doc = document(size)
        text = json.dumps(doc)
        assert floor_validator.is_valid(doc)
        floor = _median(lambda d=doc: floor_validator.is_valid(d), args.repeat)
        registry = ContractRegistry(SCOPE, ContractStore(MemoryBackend()))
        contract = registry.import_odcs(text)
        record = ContractVersion(
            contract=contract, published_by="bench", published_at=datetime.now(UTC)
        )

        def put(rec: ContractVersion = record) -> None:
            ContractStore(MemoryBackend()).create(SCOPE, rec)

        def publish(c: Any = contract) -> None:
            ContractRegistry(SCOPE, ContractStore(MemoryBackend())).publish(c, actor="bench")

        put_s = _median(put, args.repeat)
        import_s = _median(lambda t=text, r=registry: r.import_odcs(t), args.repeat)
        publish_s = _median(publish, args.repeat)
        ratio = publish_s / (2 * floor + put_s)
        print(
            f"{size:>10} {floor * 1e3:>9.1f} {put_s * 1e3:>8.1f} {import_s * 1e3:>10.1f} "
            f"{publish_s * 1e3:>11.1f} {ratio:>22.2f}"
        )


if __name__ == "__main__":
    main()
