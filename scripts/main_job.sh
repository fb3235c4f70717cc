#!/usr/bin/env bash
# Sets up .venv (scripts/setup_env.sh), then runs the main job on real Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python trainers/alignment_demo.py "$@"
