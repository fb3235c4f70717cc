#!/usr/bin/env bash
# Sets up .venv (scripts/setup_env.sh), then runs ruff and the tests against the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/ruff check .
# pytest exits 5 when it collects no test: set -e makes that a failure too.
.venv/bin/pytest -q "$@"
