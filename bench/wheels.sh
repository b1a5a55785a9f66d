#!/usr/bin/env bash
# The service's own pure dependencies as wheels in .whl/, for a CUDA host that has PyTorch (and numpy, matplotlib,
# Pillow) but no package index: bench/gpu.sh installs them there into a scratch folder. Run it here, where pip
# reaches PyPI, after `make .venv/.installed`: the versions are the ones this checkout's .venv runs.
# PYTHON_VERSION is the GPU host's Python (default 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
names='alembic|annotated-types|greenlet|mako|pydantic|pydantic-core|pydantic-settings|python-dotenv|sqlalchemy'
names+='|typing-extensions|typing-inspection'
mapfile -t pins < <(.venv/bin/python -m pip freeze | tr '_' '-' | grep -i -E "^($names)==")
rm -rf .whl && mkdir .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "${PYTHON_VERSION:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
ls .whl
