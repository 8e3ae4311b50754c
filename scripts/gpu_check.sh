#!/usr/bin/env bash
# The GPU lane (issue 19): parity fixtures on CUDA (fp32, bf16) and the LLaDA-8B-shaped speed and batch table,
# in one call, under 8 minutes: see benchmarks/gpu_lane.py. Installs nothing into the environment.
#
# sculptrag's sampler settings are pydantic models, and some CUDA images (torch + transformers +
# sentence-transformers) have no pydantic. Then this script unpacks wheels from .whl/ into a temporary folder
# on PYTHONPATH. Fetch them once, on any machine with pip, into the repository's .whl/ (git-ignored):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
# (--python-version: the GPU machine's python3). Arguments are passed on (e.g. --parity DIR, --budget-s 300).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! python3 -c "import pydantic" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "pydantic is not installed here and .whl/ holds no wheels: see the top of $0 for the download" >&2
    exit 2
  fi
  site="$(mktemp -d)"
  for wheel in .whl/*.whl; do python3 -m zipfile -e "$wheel" "$site"; done
  export PYTHONPATH="$PYTHONPATH:$site"
fi
exec python3 benchmarks/gpu_lane.py "$@"
