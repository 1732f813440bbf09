#!/usr/bin/env bash
# The local demo: everything kubellm does, on this machine, in one command.
#   1. set up (Debian packages if missing, .venv, the Go-built Kubernetes binaries; scripts/setup.sh);
#   2. start the sandbox: a real kube-apiserver, controller-manager, scheduler and etcd, with
#      kwok simulating GPU nodes (2 x 8 H100, 2 x 4 A100-80GB, 4 x 1 L4, 1 CPU node);
#   3. start a local stand-in for the Hugging Face Hub (tests/hubfixtures: real repo shapes and
#      cards, tiny weights) and the operator (`kubellm run`) pointed at it;
#   4. apply the CRDs, the licence policy and every example, then show what kubellm decided:
#      `kubectl get llmd`, the conditions, the serving pods on their GPU nodes.
# The operator and the fake Hub stop at the end; the sandbox stays up for you to explore
# (stop it with `.venv/bin/kubellm sandbox down`). `scripts/demo.sh --down` stops it too.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

KUBELLM=.venv/bin/kubellm
step "kubellm sandbox up"
$KUBELLM sandbox up || true   # says so when it is already up
$KUBELLM sandbox status >/dev/null
KUBECONFIG=$($KUBELLM sandbox kubeconfig)
export KUBECONFIG
BIN=$($KUBELLM sandbox install 2>/dev/null | awk '$1 == "kubectl" {print $2}' | xargs dirname)
export PATH="$BIN:$PATH"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  if [[ ${1:-} == --down ]]; then $KUBELLM sandbox down; fi
}
trap 'cleanup "${DEMO_DOWN:-}"' EXIT
[[ ${1:-} == --down ]] && DEMO_DOWN=--down

step "fake Hugging Face Hub on loopback"
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PYTHONPATH=tests .venv/bin/python -m hubfixtures.server --port "$port" >"$work/hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "fake hub on" "$work/hub.log" && break; sleep 0.1; done
cat "$work/hub.log"

step "CRDs, licence policy, Hub token Secret"
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/llmdeployments.kubellm.io crd/licensepolicies.kubellm.io
kubectl apply -f examples/licensepolicy.yaml
kubectl create secret generic hf-token --from-literal=HF_TOKEN=hf_good \
  --dry-run=client -o yaml | kubectl apply -f -

step "kubellm run (the operator)"
HF_ENDPOINT="http://127.0.0.1:$port" HF_HOME="$work/hf" HF_HUB_DISABLE_TELEMETRY=1 \
  $KUBELLM run -A --resync-seconds 30 >"$work/operator.log" 2>&1 &
pids+=($!)

step "kubectl apply -f examples/"
for f in examples/*.yaml; do
  [[ $f == examples/licensepolicy.yaml ]] || kubectl apply -f "$f"
done

step "waiting for every LLMDeployment to be decided (Ready, or refused with a reason)"
for _ in $(seq 90); do
  pending=$(kubectl get llmd -o jsonpath='{range .items[*]}{.metadata.name}={.status.ready}/{.status.reason}{"\n"}{end}' |
    grep -cvE '=True/|=False/(LicenseDenied|DoesNotFit|InvalidSpec|Unsupported|GatedModel|ModelNotFound)' || true)
  [[ $pending -eq 0 ]] && break
  sleep 2
done

step "kubectl get llmd"
kubectl get llmd -o wide
step "what kubellm decided, and why"
kubectl get llmd -o jsonpath='{range .items[*]}{"\n"}{.metadata.name}: {.status.license.decision} ({.status.license.class}), {.status.sizing.message}{"\n"}{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}{end}'
step "serving pods on their GPU nodes (simulated by kwok)"
kubectl get pods -o wide -l app.kubernetes.io/managed-by=kubellm
step "the shared model caches (one per repo, revision and file set)"
kubectl get pvc,jobs -l app.kubernetes.io/managed-by=kubellm
echo
echo "operator log: last lines"
tail -n 5 "$work/operator.log"
echo
echo "The sandbox is still up: export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH"
echo "Plan offline: .venv/bin/kubellm plan -f examples/ --policy examples/licensepolicy.yaml"
echo "Stop it: .venv/bin/kubellm sandbox down"
