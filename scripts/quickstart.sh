#!/usr/bin/env bash
# The main job on the embedded default (filesystem, no server needed):
# installs the project into .venv, then runs `dq quickstart` in ./dq-quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/dq quickstart --dir "${DQ_QUICKSTART_DIR:-./dq-quickstart}" "$@"
