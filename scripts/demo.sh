#!/usr/bin/env bash
# Demo (placeholder, to be extended): install the sandbox, bring it up, show its GPU nodes.
# Leaves the sandbox running; stop it with `.venv/bin/kubellm sandbox down`.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/kubellm ]] || { python3 -m venv .venv && .venv/bin/python -m pip install -q -e '.[dev]'; }
PATH="/usr/local/go/bin:$PATH"

.venv/bin/kubellm sandbox install
.venv/bin/kubellm sandbox up
KUBECONFIG=$(.venv/bin/kubellm sandbox kubeconfig)
export KUBECONFIG
BIN=$(dirname "$(.venv/bin/kubellm sandbox install 2>/dev/null | awk '$1 == "kubectl" {print $2}')")
export PATH="$BIN:$PATH"

echo
echo "# kubectl get nodes (simulated by kwok, labelled like NVIDIA GPU Feature Discovery)"
kubectl get nodes -L nvidia.com/gpu.product,nvidia.com/gpu.count,nvidia.com/gpu.memory
echo
echo "# allocatable GPUs per node"
kubectl get nodes -o custom-columns='NODE:.metadata.name,GPUS:.status.allocatable.nvidia\.com/gpu,CPU:.status.allocatable.cpu,MEMORY:.status.allocatable.memory'
echo
echo "export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH   # to use it; stop with: .venv/bin/kubellm sandbox down"
