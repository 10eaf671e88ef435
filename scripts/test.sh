#!/usr/bin/env bash
# Everything the test suite needs, then lint, type-check and test.
#   - Python deps into .venv (".[dev]": all backends + test tools)
#   - Azurite into ./node_modules from package-lock.json (npm ci)
#   - PostgreSQL server binaries (Debian package) when missing and we may install
# The tests start their own PostgreSQL and Azurite servers (see docs/testing.md).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k semver
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh dev

if command -v npm >/dev/null 2>&1; then
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
else
    echo "warning: npm not found; Azure tests need Azurite (install Node.js >= 20)" >&2
fi

have_pg() {
    command -v pg_ctl >/dev/null 2>&1 && return 0
    command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/pg_ctl" ] && return 0
    ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1
}
if ! have_pg; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        echo "warning: PostgreSQL binaries not found; install postgresql or set DQ_TEST_POSTGRES_URL" >&2
    fi
fi

.venv/bin/ruff check src tests benchmarks examples
.venv/bin/ruff format --check src tests benchmarks examples
.venv/bin/mypy src
# Two workers (the machine has 2 cores); DQ_TEST_WORKERS=0 runs serially.
.venv/bin/pytest -n "${DQ_TEST_WORKERS:-2}" "$@"
