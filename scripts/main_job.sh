#!/usr/bin/env bash
# Sets up .venv (scripts/setup_env.sh), then runs the main job: learn an augmentation policy with
# GAR while training a small CNN on real Fashion-MNIST (a few minutes on 2 CPU cores); TensorBoard
# logs go to runs/augment_search, the learned policy to runs/augment_search/policy (untracked).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python -m gar_tf_trainers.augment_search --dataset fashion_mnist --epochs 3 --overwrite "$@"
