"""Only the wiring package of dq_registries names adapter modules; no import cycle to the
container; a module's job shows in its folder (domain / wiring / operations / cli / checks)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "dq_registries"
ADAPTERS = re.compile(r"dq_stores\.(memory|filesystem|sql|azure_blob)")
WIRING = SRC / "wiring"


def test_adapter_modules_are_named_only_in_the_wiring_package() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{number}"
        for path in sorted(SRC.rglob("*.py"))
        if WIRING not in path.parents
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ADAPTERS.search(line)
    ]
    assert offenders == []


def test_the_container_does_not_import_the_context() -> None:
    imports = re.compile(r"^\s*(from|import) dq_registries\.wiring\.(context|container)\b", re.M)
    text = (WIRING / "container.py").read_text(encoding="utf-8")
    assert [m[2] for m in imports.finditer(text)] == []
    for name in ("config.py", "config_checks.py", "config_env.py", "plugins.py"):
        text = (WIRING / name).read_text(encoding="utf-8")
        assert [m[2] for m in imports.finditer(text)] == []


def test_domain_rules_import_no_wiring_operations_or_entry_points() -> None:
    outward = re.compile(r"^\s*(from|import) dq_registries\.(wiring|operations|cli)\b", re.M)
    offenders = [
        str(path.relative_to(SRC))
        for path in sorted((SRC / "domain").rglob("*.py"))
        if outward.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
