"""Long results names through the CLI: ``dq runs``, ``dq migrate`` and ``dq gc``.

A results object with a 400-character unicode name, and a run written before
logical references whose ``uri`` holds only its long name's digest, survive
filesystem → PostgreSQL → Azure → filesystem byte for byte with their references
resolving; ``dq runs list/show`` read the old run; ``dq gc`` collects a
long-named orphan and keeps the referenced objects (ADR 0012, "Long names").
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.e2e.test_cli_transfer import dq
from tests.integration.test_legacy_result_refs import write_old_run

from dq_metadata.models import JobRun
from dq_metadata.scope import Scope
from dq_registries.domain.runs import JobRunRegistry
from dq_registries.operations.transfer import open_endpoint
from dq_stores.keys import encode_key
from dq_stores.typed import JobDefinitionStore, JobRunStore, ReportStore

SCOPE = Scope("acme", "prod")
NAME_400 = ("résultat-ü-😀-" * 40)[:396] + ".bin"
OLD_NAME = "ancien-" + "é" * 120 + ".json"
DATA = {"new-run": b"\x00new bytes\xff" * 1000, "old-run": b'{"old": true}'}


def _write(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(body))
    return path


def _populate(config: Path, root: Path) -> None:
    with open_endpoint(config) as end:
        assert end.results is not None
        ref = end.results.upload(SCOPE, "new-run", NAME_400, iter([DATA["new-run"]]))
        run = JobRun.model_validate(
            {"run_id": "new-run", "job_id": "nightly", "created_at": "2024-05-02T00:00:00Z"}
        )
        JobRunStore(end.backend).put(
            SCOPE, run.model_copy(update={"result_object": ref.to_object()})
        )
        old = end.results.upload(SCOPE, "old-run", OLD_NAME, iter([DATA["old-run"]]))
        uri = "file://" + str(root / "acme/prod/results/old-run" / encode_key(OLD_NAME))
        write_old_run(end.backend, "old-run", {"uri": uri, "size": old.size, "sha256": old.sha256})


def _observe(config: Path) -> dict[str, tuple[str, bytes]]:
    with open_endpoint(config) as end:
        runs = JobRunRegistry(
            SCOPE, JobRunStore(end.backend), reports=ReportStore(end.backend),
            job_definitions=JobDefinitionStore(end.backend), results=end.results,
        )  # fmt: skip
        out = {}
        for found in runs.list().items:
            obj = found.item.result_object
            assert obj is not None
            out[found.item.run_id] = (obj.name, b"".join(runs.open_results(found.item.run_id)))
        return out


@pytest.mark.postgres
@pytest.mark.azure
def test_long_names_survive_fs_pg_azure_fs_and_gc(
    tmp_path: Path, postgres_url: str, azure_connection_string: str, azure_container: str
) -> None:
    root = tmp_path / "src"
    fs = _write(tmp_path / "fs.yaml", {"filesystem": {"root": str(root)}})
    pg = _write(
        tmp_path / "pg.yaml", {"default_backend": "postgres", "postgres": {"url": postgres_url}}
    )
    az = _write(tmp_path / "az.yaml", {
        "default_backend": "azure_blob",
        "azure_blob": {"container": azure_container, "connection_string": azure_connection_string,
                       "prefix": "long/"},
    })  # fmt: skip
    back = _write(tmp_path / "back.yaml", {"filesystem": {"root": str(tmp_path / "back")}})
    _populate(fs, root)

    listed = dq(tmp_path, "runs", "list", "-t", "acme", "-e", "prod", "--config", str(fs), "--json")
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert sorted(r["run_id"] for r in items["items"]) == ["new-run", "old-run"]
    shown = dq(tmp_path, "runs", "show", "old-run", "-t", "acme", "-e", "prod", "--config",
               str(fs), "--json")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    ref = json.loads(shown.stdout)["run"]["result_object"]
    assert (ref["name"], ref["digest_name"]) == (encode_key(OLD_NAME), True)
    assert "file://" not in shown.stdout

    before = _observe(fs)
    assert before["new-run"] == (NAME_400, DATA["new-run"])
    assert before["old-run"][1] == DATA["old-run"]
    for src, dst in ((fs, pg), (pg, az), (az, back)):
        moved = dq(tmp_path, "migrate", "--from", str(src), "--to", str(dst), "--verify")
        assert moved.returncode == 0, moved.stdout + moved.stderr
        assert _observe(dst) == before

    # dq gc: a long-named orphan goes, the referenced long-named objects stay
    with open_endpoint(back) as end:
        assert end.results is not None
        end.results.upload(SCOPE, "crashed", "orphan-" + "é" * 120, iter([b"lost"]))
    an_hour_ago = time.time() - 3600
    for folder, _dirs, files in os.walk(tmp_path / "back"):
        for file in files:
            os.utime(os.path.join(folder, file), (an_hour_ago, an_hour_ago))
    gc = dq(tmp_path, "gc", "-t", "acme", "-e", "prod", "--config", str(back),
            "--orphaned-results-older-than", "30m", "--json")  # fmt: skip
    assert gc.returncode == 0, gc.stderr
    gone = [i for i in json.loads(gc.stdout)["items"] if i["what"] == "orphaned_result"]
    assert len(gone) == 1
    assert "orphan-" in gone[0]["key"]
    assert _observe(back) == before
