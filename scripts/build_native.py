"""Build the optional C accelerator(s) in place, next to their sources under src/.

    .venv/bin/python scripts/build_native.py [--force]

Reads the extensions from pyproject.toml (``[tool.setuptools] ext-modules``, the
same list ``pip install`` builds) and compiles each one whose ``.so`` is missing or
older than one of its sources. Needs a C compiler, the Python headers and setuptools in
the running interpreter; without them it says so and exits 0 — the library then
uses its pure-Python path (see docs/adr/0016-native-head-reads.md).
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _extensions() -> list[dict[str, object]]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        config = tomllib.load(f)
    return list(config["tool"]["setuptools"].get("ext-modules", []))


def _built(name: str) -> Path:
    parts = name.split(".")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return ROOT / "src" / Path(*parts[:-1]) / (parts[-1] + suffix)


def _stale(ext: dict[str, object]) -> bool:
    target = _built(str(ext["name"]))
    if not target.exists():
        return True
    names = [*ext["sources"], *ext.get("depends", [])]  # type: ignore[misc, attr-defined]
    sources = [ROOT / str(s) for s in names]
    return any(s.stat().st_mtime > target.stat().st_mtime for s in sources)


def main() -> int:
    force = "--force" in sys.argv[1:]
    todo = [ext for ext in _extensions() if force or _stale(ext)]
    if not todo:
        return 0
    try:
        from setuptools import Distribution, Extension
    except ImportError:
        print("build_native: setuptools is not installed; skipped (pure-Python path)")
        return 0
    os.chdir(ROOT)
    extensions = [
        Extension(**{k.replace("-", "_"): v for k, v in ext.items()})  # type: ignore[arg-type]
        for ext in todo
    ]
    dist = Distribution({"ext_modules": extensions, "package_dir": {"": "src"}})
    command = dist.get_command_obj("build_ext")
    command.inplace = True  # type: ignore[attr-defined]
    command.build_temp = str(ROOT / "build" / "native")  # type: ignore[attr-defined]
    try:
        dist.run_command("build_ext")
    except Exception as exc:  # a missing compiler or header: keep the Python path
        print(f"build_native: build failed ({exc}); the pure-Python path is used")
        return 0
    for ext in todo:
        os.utime(_built(str(ext["name"])))  # newer than its source, even if unchanged
        print(f"build_native: built {_built(str(ext['name'])).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
