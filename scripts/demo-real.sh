#!/usr/bin/env bash
# The real-node demo: like scripts/demo.sh, but one LLMDeployment of a tiny model is served for
# real on the sandbox's real worker node, ending in a chat completion through its Service.
#   1. set up (scripts/setup.sh) with the engine environment and the real node's builds
#      (KUBELLM_ENGINES=1 KUBELLM_REAL_NODE=1: kubelet, containerd, CoreDNS, local-path-provisioner,
#      the kubellm image from operator/Dockerfile, the CPU vLLM image; about 30 minutes once,
#      then a no-op);
#   2. scripts/demo_real.py: sandbox up --real-node, a local Hub mirror serving a tiny model,
#      the operator, a LicensePolicy and the LLMDeployment; prints each decision as status reports
#      it, the objects kubellm created and the completion.
# Root (the real node runs kubelet and containerd). The sandbox stays up at the end (make
# demo-down stops it); `scripts/demo-real.sh --down` stops it at the end. Arguments go to
# scripts/demo_real.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBELLM_ENGINES=1 KUBELLM_REAL_NODE=1 KUBELLM_ARGOCD=${KUBELLM_ARGOCD:-0}
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
step "scripts/demo_real.py"
exec .venv/bin/python scripts/demo_real.py "$@"
