#!/usr/bin/env bash
# The local demo: everything kubellm does, on this machine, in one command.
#   1. set up (Debian packages if missing, .venv, the Go-built Kubernetes binaries; scripts/setup.sh);
#   2. start the sandbox: a real kube-apiserver, controller-manager, scheduler and etcd, with
#      kwok simulating GPU nodes (2 x 8 H100, 2 x 4 A100-80GB, 4 x 1 L4, 1 CPU node);
#   3. seed an offline Hugging Face cache with the real metadata files of the example models
#      (examples/hub-metadata: model cards, config.json, safetensors indexes; sources in
#      SOURCES.yaml) and start the operator (`kubellm run`) on it with HF_HUB_OFFLINE=1: no Hub
#      access, yet the licence and sizing decisions are made on the real values;
#   4. apply the CRDs, the licence policy and every example, then show what kubellm decided:
#      `kubectl get llmd -o wide`, a table (model, licence, GPUs and nodes, Ready, reason), the
#      conditions, the serving pods on their GPU nodes.
# The operator stops at the end; the sandbox stays up for you to explore
# (stop it with `.venv/bin/kubellm sandbox down`). `scripts/demo.sh --down` stops it at the end;
# `make demo-down` stops a sandbox left up.
set -euo pipefail
cd "$(dirname "$0")/.."
# The demo needs neither the engine environments (multi-GB, for the tests) nor the real node.
export KUBELLM_ENGINES=${KUBELLM_ENGINES:-0}
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

step "offline Hugging Face cache from examples/hub-metadata (real metadata, no weights)"
export HF_HOME="$work/hf"
HF_HUB_CACHE=$(.venv/bin/python scripts/seed_hf_cache.py "$HF_HOME")
export HF_HUB_CACHE HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
for ref in "$HF_HUB_CACHE"/models--*/refs/main; do
  repo=${ref%/refs/main}
  repo=${repo##*/models--}
  printf '  %-52s %s\n' "${repo/--//}" "$(cat "$ref")"
done

step "CRDs, licence policy, Hub token Secret"
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/llmdeployments.kubellm.io crd/licensepolicies.kubellm.io
kubectl apply -f examples/licensepolicy.yaml
kubectl create secret generic hf-token --from-literal=HF_TOKEN=hf_good \
  --dry-run=client -o yaml | kubectl apply -f -

step "kubellm run (the operator)"
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

step "what kubellm decided, and why (conditions)"
kubectl get llmd -o jsonpath='{range .items[*]}{"\n"}{.metadata.name}: {.status.license.decision} ({.status.license.class}), {.status.sizing.message}{"\n"}{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}{end}'
step "serving pods on their GPU nodes (simulated by kwok)"
kubectl get pods -o wide -l app.kubernetes.io/managed-by=kubellm
step "the shared model caches (one per repo, revision and file set)"
kubectl get pvc,jobs -l app.kubernetes.io/managed-by=kubellm
echo
echo "operator log: last lines"
tail -n 5 "$work/operator.log"

step "kubectl get llmd -o wide"
kubectl get llmd -o wide
step "summary: one line per LLMDeployment"
row='%-16s %-52s %-8s %-40s %-16s %-6s %s\n'
# shellcheck disable=SC2059
printf "$row" NAME MODEL LICENCE GPUS NODES READY REASON
kubectl get llmd -o jsonpath='{range .items[*]}{.metadata.name}|{.spec.model.repo}|{.status.license.decision}|{.status.sizing.gpuType}|{.status.sizing.gpusPerReplica}|{.spec.replicas}|{.status.ready}|{.status.reason}{"\n"}{end}' |
  while IFS='|' read -r name model licence gpu per replicas ready reason; do
    nodes=$(kubectl get pods -l "app.kubernetes.io/component=server,app.kubernetes.io/instance=$name" \
      -o jsonpath='{.items[*].spec.nodeName}' | tr ' ' ',')
    gpus=-
    if [[ -n $gpu ]]; then
      gpus="$gpu x ${per:-?}"
      [[ ${replicas:-1} == 1 ]] || gpus+=" (x$replicas replicas)"
      [[ -n $nodes ]] || gpus+=" (not placed)"
    fi
    # shellcheck disable=SC2059
    printf "$row" "$name" "$model" "${licence:--}" "$gpus" "${nodes:--}" "${ready:--}" "${reason:--}"
  done
echo
echo "why the others are not serving:"
kubectl get llmd -o jsonpath='{range .items[?(@.status.ready=="False")]}  {.metadata.name}: {.status.conditions[?(@.type=="Ready")].message}{"\n"}{end}'
echo
if [[ -n ${DEMO_DOWN:-} ]]; then
  echo "--down: stopping the sandbox now"
else
  echo "The sandbox is still up: export KUBECONFIG=$KUBECONFIG PATH=$BIN:\$PATH"
fi
echo "Plan offline on the same metadata: export HF_HUB_OFFLINE=1 HF_HOME=/tmp/kubellm-hf"
echo "  .venv/bin/python scripts/seed_hf_cache.py /tmp/kubellm-hf && .venv/bin/kubellm plan -f examples/ \\"
echo "    --policy examples/licensepolicy.yaml --inventory examples/cluster/inventory.yaml"
[[ -n ${DEMO_DOWN:-} ]] || echo "Stop it: make demo-down (= .venv/bin/kubellm sandbox down)"
