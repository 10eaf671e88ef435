"""``dq export / import / migrate / verify-archive`` and the README's three commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from tests.integration._transfer_world import RAW_KEYS, RAW_KIND, SCOPES, observe, populate

from dq_registries.operations.transfer import open_endpoint
from dq_stores.documents import ANY
from dq_stores.testing._helpers import doc
from dq_stores.testing.restore import comparable

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def dq(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in done.stderr
    return done


def _config(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({**body, "results": {"inline_limit_bytes": 64}}))
    return path


def test_readme_moves_the_filesystem_default_to_postgres_in_three_commands(
    tmp_path: Path, postgres_url: str
) -> None:
    home = tmp_path / "home"
    with open_endpoint(
        {"filesystem": {"root": str(home)}, "results": {"inline_limit_bytes": 64}}
    ) as fs:
        populate(fs)
        before = observe(fs)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Move, back up and prove", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 3
    script = block.group(1).replace("postgresql+psycopg://dq@db.internal/dq", postgres_url)
    script += "\ndq runs list -t acme -e prod --json > runs.json\n"
    done = subprocess.run(
        ["bash", "-euc", script], cwd=tmp_path, env=_env(DQ_HOME=str(home)),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert len(runs["items"] if isinstance(runs, dict) else runs) == 2
    pg = {"default_backend": "postgres", "postgres": {"url": postgres_url}}
    with open_endpoint({**pg, "results": {"inline_limit_bytes": 64}}) as target:
        assert observe(target) == before


def test_export_import_merge_verify_and_exit_codes(tmp_path: Path) -> None:
    source = _config(tmp_path / "src.yaml", {"filesystem": {"root": str(tmp_path / "src")}})
    target = _config(
        tmp_path / "dst.yaml",
        {"default_backend": "sqlite", "sqlite": {"url": f"sqlite:///{tmp_path / 'dst.sqlite3'}"}},
    )
    with open_endpoint(source) as src:
        populate(src)
    archive = tmp_path / "backup.tar.gz"

    exported = dq(
        tmp_path, "export", "--out", str(archive), "--config", str(source), "--verify", "--json"
    )
    assert exported.returncode == 0, exported.stderr
    report = json.loads(exported.stdout)
    assert report["verified"] is True
    assert set(report["scopes"]) == {f"{s.tenant}/{s.environment}" for s in SCOPES}
    assert exported.stderr == ""  # --json: no progress bar, no chatter

    checked = dq(tmp_path, "verify-archive", str(archive), "--json")
    assert checked.returncode == 0
    assert json.loads(checked.stdout)["scopes"] == report["scopes"]

    imported = dq(tmp_path, "import", str(archive), "--config", str(target), "--verify", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["keys_written"] == report["keys"]

    again = dq(tmp_path, "import", str(archive), "--config", str(target))
    assert again.returncode == 1
    assert "--merge" in again.stderr

    merged = dq(tmp_path, "import", str(archive), "--config", str(target), "--merge", "--json")
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["keys_skipped"] == report["keys"]

    migrated = dq(tmp_path, "migrate", "--from", str(source), "--to", str(target), "--verify")
    assert migrated.returncode == 0, migrated.stderr
    assert "dq migrate" in migrated.stdout

    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(archive.read_bytes()[:-200])
    broken = dq(tmp_path, "verify-archive", str(damaged))
    assert broken.returncode == 1
    assert broken.stderr.startswith("error: ")

    bad = dq(tmp_path, "export", "--out", str(archive), "--config", str(source), "--env", "prod")
    assert bad.returncode == 2


def _histories(config: Path) -> dict[tuple[str, str, str], list[tuple[object, ...]]]:
    with open_endpoint(config) as end:
        return {
            (str(scope), h[0].kind, h[0].key): [comparable(d) for d in h]
            for scope in SCOPES
            for h in end.backend.iter_histories(scope)
        }


def test_a_store_pruned_by_gc_moves_and_replace_overwrites(tmp_path: Path) -> None:
    source = _config(tmp_path / "src.yaml", {"filesystem": {"root": str(tmp_path / "src")}})

    def sqlite(name: str) -> Path:
        url = f"sqlite:///{tmp_path / (name + '.sqlite3')}"
        return _config(
            tmp_path / f"{name}.yaml", {"default_backend": "sqlite", "sqlite": {"url": url}}
        )

    target, second = sqlite("dst"), sqlite("second")
    with open_endpoint(source) as src:
        populate(src)
    scope = SCOPES[0]
    scoped = ("-t", scope.tenant, "-e", scope.environment, "--config", str(source))
    gc = dq(tmp_path, "gc", *scoped, "--keep-revisions", "1", "--json")
    assert gc.returncode == 0, gc.stderr
    before = _histories(source)
    pruned = [k for k, h in before.items() if k[0] == str(scope) and h[0][2] > 1]
    assert pruned  # gc left histories starting after revision 1

    archive = tmp_path / "pruned.tar.gz"
    exported = dq(tmp_path, "export", "--out", str(archive), "--config", str(source), "--verify")
    assert exported.returncode == 0, exported.stderr
    imported = dq(tmp_path, "import", str(archive), "--config", str(target), "--verify")
    assert imported.returncode == 0, imported.stderr
    migrated = dq(tmp_path, "migrate", "--from", str(source), "--to", str(second), "--verify")
    assert migrated.returncode == 0, migrated.stderr
    assert _histories(target) == _histories(second) == before
    with open_endpoint(source) as src, open_endpoint(target) as dst:
        for _scope, kind, key in pruned:
            assert dst.backend.pruned_prefix(scope, kind, key) == src.backend.pruned_prefix(
                scope, kind, key
            )
    checked = dq(tmp_path, "verify", "-t", scope.tenant, "-e", scope.environment,
                 "--config", str(target))  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The source moves on; the target's copy of that key is now different.
    with open_endpoint(source) as src:
        src.backend.put(scope, RAW_KIND, doc(RAW_KEYS[1], "newer", tag="t"), ANY)
    newer = tmp_path / "newer.tar.gz"
    assert dq(tmp_path, "export", "--out", str(newer), "--config", str(source)).returncode == 0
    refused = dq(tmp_path, "import", str(newer), "--config", str(target))
    assert refused.returncode == 1
    assert "--replace" in refused.stderr
    merged = dq(tmp_path, "import", str(newer), "--config", str(target), "--merge", "--json")
    assert merged.returncode == 1  # the differing key is a conflict, left alone
    assert len(json.loads(merged.stdout)["conflicts"]) == 1
    both = dq(tmp_path, "import", str(newer), "--config", str(target), "--merge", "--replace")
    assert both.returncode == 2
    replaced = dq(tmp_path, "import", str(newer), "--config", str(target), "--replace",
                  "--verify", "--json")  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["verified"] is True
    assert _histories(target) == _histories(source)
    again = dq(tmp_path, "migrate", "--from", str(source), "--to", str(second), "--replace",
               "--verify")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert _histories(second) == _histories(source)


def test_import_and_migrate_replace_into_the_filesystem_default(tmp_path: Path) -> None:
    source = _config(tmp_path / "src.yaml", {"filesystem": {"root": str(tmp_path / "src")}})
    copy = _config(tmp_path / "fs.yaml", {"filesystem": {"root": str(tmp_path / "fs")}})
    second = _config(tmp_path / "fs2.yaml", {"filesystem": {"root": str(tmp_path / "fs2")}})
    with open_endpoint(source) as src:
        populate(src)
    older = tmp_path / "older.tar.gz"
    assert dq(tmp_path, "export", "--out", str(older), "--config", str(source)).returncode == 0
    for target in (copy, second):
        assert dq(tmp_path, "import", str(older), "--config", str(target)).returncode == 0
    before = _histories(source)
    assert _histories(copy) == before

    scope = SCOPES[0]
    with open_endpoint(source) as src:  # the source moves on: one key gains a revision
        src.backend.put(scope, RAW_KIND, doc(RAW_KEYS[1], "newer", tag="t"), ANY)
    newer = tmp_path / "newer.tar.gz"
    assert dq(tmp_path, "export", "--out", str(newer), "--config", str(source)).returncode == 0
    replaced = dq(tmp_path, "import", str(newer), "--config", str(copy), "--replace",
                  "--verify", "--json")  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["verified"] is True
    assert _histories(copy) == _histories(source) != before
    migrated = dq(tmp_path, "migrate", "--from", str(source), "--to", str(second), "--replace",
                  "--verify")  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    assert _histories(second) == _histories(source)
    for target in (copy, second):
        checked = dq(tmp_path, "verify", "--config", str(target))
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_invalid_tenant_or_environment_is_a_usage_error_not_an_empty_archive(
    tmp_path: Path,
) -> None:
    source = _config(tmp_path / "src.yaml", {"filesystem": {"root": str(tmp_path / "src")}})
    target = _config(tmp_path / "dst.yaml", {"filesystem": {"root": str(tmp_path / "dst")}})
    archive = tmp_path / "out.tar"
    for scope in (("-t", "ACME!"), ("-t", "acme", "-e", "../prod")):
        exported = dq(tmp_path, "export", "--out", str(archive), "--config", str(source), *scope)
        assert exported.returncode == 2, exported.stdout
        assert exported.stderr.startswith("error: invalid ")
        assert not archive.exists()
        migrated = dq(tmp_path, "migrate", "--from", str(source), "--to", str(target), *scope)
        assert migrated.returncode == 2, migrated.stdout
        assert migrated.stderr.startswith("error: invalid ")


def test_replace_drops_a_marker_the_targets_own_gc_left(tmp_path: Path) -> None:
    """The target pruned a key (as ``dq gc`` does) the source holds whole: after
    ``--replace`` no marker says revisions of it are gone — ``--verify`` agrees
    with the source and ``dq verify`` finds nothing."""
    source = _config(tmp_path / "src.yaml", {"filesystem": {"root": str(tmp_path / "src")}})
    url = f"sqlite:///{tmp_path / 'dst.sqlite3'}"
    target = _config(tmp_path / "dst.yaml", {"default_backend": "sqlite", "sqlite": {"url": url}})
    scope = SCOPES[0]
    for config, tag in ((source, "s"), (target, "t")):
        with open_endpoint(config) as end:
            for n in range(4):
                end.backend.put(scope, RAW_KIND, doc(RAW_KEYS[0], f"{tag}{n}", tag=tag), ANY)
    with open_endpoint(target) as end:  # what `dq gc --keep-revisions 1` does to a key
        end.backend.prune_history(scope, RAW_KIND, RAW_KEYS[0], 4)
        assert end.backend.pruned_prefix(scope, RAW_KIND, RAW_KEYS[0]) is not None
    scoped = ("-t", scope.tenant, "-e", scope.environment)
    archive = tmp_path / "src.tar.gz"
    assert dq(tmp_path, "export", "--out", str(archive), "--config", str(source)).returncode == 0
    for command in (
        ("import", str(archive), "--config", str(target)),
        ("migrate", "--from", str(source), "--to", str(target)),
    ):
        replaced = dq(tmp_path, *command, "--replace", "--verify", "--json")
        assert replaced.returncode == 0, replaced.stdout + replaced.stderr
        assert json.loads(replaced.stdout)["verified"] is True
        checked = dq(tmp_path, "verify", *scoped, "--config", str(target))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert _histories(target) == _histories(source)
