#!/usr/bin/env bash
# Downloads the wheels benchmarks/gpu/run.sh installs on a CUDA machine without network (Python 3.12, x86-64):
# the lowest transformers release the package supports, the regex release it needs, and bitsandbytes (quantized
# loading tests).
# Run from the repository root; .whl/ should be git-ignored (e.g. listed in .git/info/exclude).
set -eu
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    transformers==5.23.0 regex==2026.11.19 bitsandbytes==0.50.2
