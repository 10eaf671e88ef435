#!/usr/bin/env bash
# Create .venv and install the project. Usage: scripts/bootstrap.sh [EXTRAS]
#   EXTRAS defaults to "" (filesystem default only); scripts/test.sh passes "dev".
# The install (editable) also builds the optional C accelerator in place under src/
# when a C compiler is available (without one the pure-Python path is used); it is
# re-run when pyproject.toml or a C source (.c, .h) is newer than the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.installed-${extras:-core}"
changed_c=""
if [ -f "$stamp" ]; then
    changed_c="$(find src \( -name '*.c' -o -name '*.h' \) -newer "$stamp" | head -n 1)"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ -n "$changed_c" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    if [ -n "$extras" ]; then
        .venv/bin/python -m pip install --quiet -e ".[$extras]"
    else
        .venv/bin/python -m pip install --quiet -e .
    fi
    touch "$stamp"
fi
