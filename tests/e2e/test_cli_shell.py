"""``dq`` as a shell sees it: --version, completion, unwrapped output in pipes, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

BAD_JOB = {
    "id": "bad",
    "name": "bad",
    "job_type": "magic",
    "contract": {"id": "orders", "version": "1.0.0"},
    "dataset": "orders",
}


def run(*args: str, cwd: Path, columns: int = 40) -> subprocess.CompletedProcess[str]:
    """``dq`` with stdout and stderr piped (not a terminal), narrow $COLUMNS by default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_")}
    env["COLUMNS"] = str(columns)  # a pipe must not inherit a terminal's wrapping width
    return subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickstart workspace (contracts, jobs, several runs) and its config file."""
    where = tmp_path_factory.mktemp("shell")
    done = run("quickstart", "--dir", str(where / "qs"), "--json", cwd=where)
    assert done.returncode == 0, done.stderr
    (where / "bad-job.yaml").write_text(yaml.safe_dump(BAD_JOB), encoding="utf-8")
    (where / "contract.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    return where


def dq(demo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, "--config", str(demo / "qs" / "dq.yaml"), cwd=demo)


def test_version_prints_the_installed_distribution_version(tmp_path: Path) -> None:
    done = run("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout == f"dq {version('dq-platform-core')}\n"


def test_help_offers_shell_completion_and_documents_exit_codes(tmp_path: Path) -> None:
    done = run("--help", cwd=tmp_path, columns=200)
    assert done.returncode == 0
    assert "--install-completion" in done.stdout
    assert "--show-completion" in done.stdout
    text = " ".join(done.stdout.split())
    assert "Exit codes: 0 done; 1 refused" in text
    assert "2 bad command line" in text


def test_run_ids_and_page_tokens_are_never_wrapped_in_a_pipe(demo: Path) -> None:
    runs = json.loads(dq(demo, "runs", "list", "--json").stdout)["items"]
    assert len(runs) >= 2
    newest = runs[0]["run_id"]

    done = dq(demo, "runs", "list", "--limit", "1")

    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if newest in line)
    assert "orders" in row  # the whole row is one line, not folded cell by cell
    more = [line for line in done.stdout.splitlines() if line.startswith("more: --page-token ")]
    assert len(more) == 1
    token = more[0].removeprefix("more: --page-token ")
    following = json.loads(
        dq(demo, "runs", "list", "--limit", "1", "--page-token", token, "--json").stdout
    )
    assert following["items"][0]["run_id"] == runs[1]["run_id"]


# The same kind of mistake ends with the same exit code on every command:
# 2 = the command line is wrong; 1 = the input file, the config or the domain says no.
EXIT_CODES = [
    (["runs", "list", "--since", "yesterday"], 2),
    (["runs", "list", "--status", "bogus"], 2),
    (["runs", "list", "--since", "2026-02-01", "--until", "2026-01-01"], 2),
    (["runs", "list", "--limit", "0"], 2),
    (["runs", "list", "--page-token", "garbage"], 2),
    (["runs", "list", "--tenant", "Bad Tenant!"], 2),
    (["runs", "list", "--env", "../prod"], 2),
    (["runs", "list", "--no-such-option"], 2),
    (["jobs", "list", "--type", "magic"], 2),
    (["jobs", "list", "--limit", "5000"], 2),
    (["jobs", "show"], 2),
    (["jobs", "save", "bad-job.yaml", "--expected-revision", "-1"], 2),
    (["actions", "list", "--type", "fax"], 2),
    (["actions", "list", "--page-token", "garbage"], 2),
    (["contracts", "list", "--limit", "0"], 2),
    (["contracts", "publish", "contract.yaml", "--force"], 2),
    (["contracts", "publish", "contract.yaml", "--reason", " "], 2),
    (["contracts", "export", "orders", "1.0.0", "--format", "xml"], 2),
    (["runs", "show", "run-ghost"], 1),
    (["jobs", "show", "ghost"], 1),
    (["jobs", "save", "missing.yaml"], 1),
    (["jobs", "save", "bad-job.yaml"], 1),
    (["contracts", "publish", "contract.yaml"], 1),
    (["contracts", "latest", "no-such-dataset"], 1),
    (["contracts", "show", "orders", "--version", "9.9.9"], 1),
    (["actions", "delete", "ghost"], 1),
]


@pytest.mark.parametrize(("args", "code"), EXIT_CODES, ids=[" ".join(a) for a, _ in EXIT_CODES])
def test_each_kind_of_mistake_has_one_exit_code(demo: Path, args: list[str], code: int) -> None:
    done = dq(demo, *args)

    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    if not any(a.startswith("--no-such") for a in args) and args != ["jobs", "show"]:
        # our own errors are one line; click reports its parse errors in a box
        assert done.stderr.startswith("error: ")
        assert done.stderr.count("\n") == 1, done.stderr
