"""Only the wiring modules of dq_registries name adapter modules; no import cycle to the container."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dq_registries"
ADAPTERS = re.compile(r"dq_stores\.(memory|filesystem|sql|azure_blob)")
WIRING = {"container.py", "plugins.py"}


def test_adapter_modules_are_named_only_in_the_wiring_modules() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{number}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name not in WIRING
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ADAPTERS.search(line)
    ]
    assert offenders == []


def test_the_container_does_not_import_the_context() -> None:
    imports = re.compile(r"^\s*(from|import) dq_registries\.(context|container)\b", re.M)
    text = (SRC / "container.py").read_text(encoding="utf-8")
    assert [m[2] for m in imports.finditer(text)] == []
    for name in ("config.py", "config_checks.py", "config_env.py", "plugins.py"):
        text = (SRC / name).read_text(encoding="utf-8")
        assert [m[2] for m in imports.finditer(text)] == []
