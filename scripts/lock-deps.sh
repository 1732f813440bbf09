#!/usr/bin/env bash
# Regenerate operator/requirements.lock: the runtime dependency closure of pyproject.toml with
# exact versions and sha256 hashes, installed by operator/Dockerfile with `pip install
# --require-hashes`. Python 3.11 (the image's base), resolved for every platform (markers kept),
# so amd64 and arm64 images install the same versions.
#   scripts/lock-deps.sh                        re-resolve, keeping the pins that still fit
#   scripts/lock-deps.sh --upgrade              take the newest versions PyPI offers
#   scripts/lock-deps.sh --upgrade-package NAME one package (any `uv pip compile` option works)
# Needs uv (in the dev extra: `pip install -e '.[dev]'`). tests/unit/test_image.py fails when the
# lock no longer satisfies pyproject.toml's dependencies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
uv=.venv/bin/uv
[[ -x $uv ]] || uv=$(command -v uv) || {
  echo "error: uv not found: pip install -e '.[dev]' (or pip install uv)" >&2
  exit 1
}
exec "$uv" pip compile pyproject.toml \
  --universal --python-version 3.11 --generate-hashes \
  --custom-compile-command scripts/lock-deps.sh \
  --output-file operator/requirements.lock --quiet "$@"
