#!/usr/bin/env bash
# The one test command: set up everything on a fresh machine, then run every check and test.
#   1. Debian packages, only if something is missing (python3 >= 3.11 + venv, git, Go);
#   2. .venv with `pip install -e '.[dev]'`;
#   3. `kubellm sandbox install` (builds Kubernetes, etcd, kwok, helm once; cached per version);
#   4. ruff, mypy, lint-imports, pytest over tests/ (unit, golden and e2e on the sandbox), then
#      the `real` e2e tests on a sandbox with its real worker node (only without extra arguments).
# Idempotent: a second run only re-runs the checks. Extra arguments go to pytest.
# CI (.ci/run) runs exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
# The real worker node's builds and tests are on unless KUBELLM_REAL_NODE=0.
export KUBELLM_REAL_NODE=${KUBELLM_REAL_NODE:-1}
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

# --- 4. checks and tests (all run; the script fails if any failed) --------------------------------
failed=()
check() {
  local name=$1
  shift
  step "$name"
  if ! "$@"; then failed+=("$name"); fi
}
check "ruff check" .venv/bin/ruff check .
check "mypy" .venv/bin/mypy
check "lint-imports" .venv/bin/lint-imports
check "pytest tests/ (unit + golden + e2e)" .venv/bin/pytest tests/ "$@"
# Real pods on the sandbox's real worker node (root; setup.sh built kubelet, containerd, CoreDNS,
# local-path-provisioner, the pause/Debian images, the kubellm image from operator/Dockerfile and
# the CPU vLLM image once): its own sandbox, so the kwok-only inventory the tests above expect is
# untouched. tests/e2e/test_real_serving.py + test_real_mirror.py run kubellm's download Job and
# vLLM for real (a tiny model; apply -> first token times are printed).
if [[ $# -eq 0 && $KUBELLM_REAL_NODE != 0 ]]; then
  check "pytest -m real (real worker node)" .venv/bin/pytest tests/e2e -m real
fi

echo
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]} ($((SECONDS - started)) s)" >&2
  exit 1
fi
echo "all checks passed ($((SECONDS - started)) s)"
