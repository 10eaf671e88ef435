"""The README's promises, checked: its code runs and its commands exist."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_python_example_runs_on_the_filesystem_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = re.search(r"```python\n(.*?)```", README, re.DOTALL)
    assert block is not None
    shutil.copy(ROOT / "src/dq_registries/data/orders.odcs.yaml", tmp_path / "orders.odcs.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DQ_HOME", raising=False)
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    latest = namespace["latest"]
    assert (latest.id, latest.version) == ("orders", "1.0.0")  # type: ignore[attr-defined]
    found = namespace["found"]
    assert [h.contract_id for h in found.hits] == ["orders"]  # type: ignore[attr-defined]
    assert (tmp_path / ".dq" / "acme" / "prod").is_dir()


def test_readme_set_up_commands_are_the_scripts_ci_runs() -> None:
    assert "bash scripts/quickstart.sh" in README
    assert "bash scripts/test.sh" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "scripts/test.sh" in ci


def test_readme_yaml_examples_are_valid_configuration(tmp_path: Path) -> None:
    from dq_registries.wiring.config import load_config

    blocks = re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)
    assert blocks
    for i, text in enumerate(blocks):
        path = tmp_path / f"dq{i}.yaml"
        path.write_text(text, encoding="utf-8")
        settings = load_config(path)
        assert settings.backends_in_use()


def test_dq_help_lists_every_command_group() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dq_registries.cli", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for group in ("quickstart", "contracts", "jobs", "actions", "runs", "db"):
        assert group in out
