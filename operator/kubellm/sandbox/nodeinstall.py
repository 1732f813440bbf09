"""``kubellm sandbox install --real-node``: build the real worker node's binaries once.

What is built (versions in :mod:`kubellm.sandbox.versions`), into
``${XDG_CACHE_HOME:-~/.cache}/kubellm/sandbox/<node versions>/bin``:

- kubelet and kube-proxy, from the control plane's wrapper module (``install.build_kubernetes``:
  the same resolved modules, so on a warm Go cache this is seconds, not minutes);
- containerd, ctr and containerd-shim-runc-v2 (containerd v2, static, ``CGO_ENABLED=0`` as
  upstream's release builds of the shim);
- CoreDNS and rancher's local-path-provisioner, each with ``go install module@version``.

runc and the CNI plugins are Debian packages (scripts/setup.sh installs them when missing);
:func:`missing_debian_packages` names the ones that are absent. A second install is a no-op.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from kubellm.sandbox import install as kube_install
from kubellm.sandbox import versions
from kubellm.sandbox.errors import SandboxError
from kubellm.sandbox.install import Binaries, Progress

_CONTAINERD_MODULE = "github.com/containerd/containerd/v2"
#: Build tags: containerd's release ones (no cgo, so no btrfs); harmless for the others.
_TAGS = "urfave_cli_no_docs,no_btrfs,osusergo,netgo"
#: name -> (go install targets, binaries they write, -ldflags, extra environment)
_GO_INSTALLS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str, dict[str, str]]] = {
    "containerd": (
        tuple(
            f"{_CONTAINERD_MODULE}/cmd/{cmd}@{versions.CONTAINERD}"
            for cmd in ("containerd", "ctr", "containerd-shim-runc-v2")
        ),
        ("containerd", "ctr", "containerd-shim-runc-v2"),
        f"-X {_CONTAINERD_MODULE}/version.Version={versions.CONTAINERD}"
        f" -X {_CONTAINERD_MODULE}/version.Package=github.com/containerd/containerd",
        {"CGO_ENABLED": "0"},
    ),
    "coredns": (
        (f"github.com/coredns/coredns@{versions.COREDNS}",),
        ("coredns",),
        "-X github.com/coredns/coredns/coremain.GitCommit=" + versions.COREDNS,
        {"CGO_ENABLED": "0"},
    ),
    "local-path-provisioner": (
        (f"github.com/rancher/local-path-provisioner@{versions.LOCAL_PATH_PROVISIONER}",),
        ("local-path-provisioner",),
        "-X main.VERSION=" + versions.LOCAL_PATH_PROVISIONER,
        {"CGO_ENABLED": "0"},
    ),
}


def locate() -> tuple[dict[str, Path], list[str]]:
    """Found node binaries and the names still missing."""
    bin_dir = versions.node_bin_dir()
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in versions.NODE_BINARIES:
        path = bin_dir / name
        if path.is_file() and os.access(path, os.X_OK):
            found[name] = path
        else:
            missing.append(name)
    return found, missing


def missing_debian_packages() -> list[str]:
    """Debian packages of the real node whose files are absent (runc, CNI plugins, ...)."""
    return [
        package
        for package, files in versions.DEBIAN_NODE_PACKAGES.items()
        if not all(Path(f).exists() for f in files)
    ]


def binaries() -> Binaries:
    """The installed node binaries plus Debian's runc, or a SandboxError saying what to run."""
    found, missing = locate()
    problems = []
    if missing:
        problems.append(
            f"real-node binaries missing: {', '.join(missing)} (not in {versions.node_bin_dir()});"
            " run `kubellm sandbox install --real-node` (a few minutes with Go)"
        )
    packages = missing_debian_packages()
    if packages:
        problems.append(
            f"Debian packages missing: {', '.join(packages)}; run scripts/setup.sh or "
            f"`apt-get install {' '.join(packages)}`"
        )
    if problems:
        raise SandboxError("; ".join(problems))
    found["runc"] = Path(versions.DEBIAN_NODE_PACKAGES["runc"][0])
    return Binaries(found, versions.node_bin_dir())


def install(progress: Progress = print, *, force: bool = False) -> Binaries:
    """Build whatever node binary is missing; a no-op when all are there."""
    bin_dir = versions.node_bin_dir()
    bin_dir.mkdir(parents=True, exist_ok=True)
    # The kubelet build uses the control plane's wrapper module: one lock for both.
    with kube_install.lock(versions.cache_dir() / ".kube_install.lock"):
        _, missing = locate()
        if force:
            missing = list(versions.NODE_BINARIES)
        if not missing:
            progress(f"real-node binaries up to date in {bin_dir} ({versions.node_version_key()})")
            return binaries()
        started = time.monotonic()
        progress(f"building {', '.join(missing)} into {bin_dir}")
        env = kube_install.go_env(progress)
        kube: list[str] = [n for n in ("kubelet", "kube-proxy") if n in missing]
        if kube:
            kube_install.build_kubernetes(kube, bin_dir, env, progress)
        for group, (_, names, _, _) in _GO_INSTALLS.items():
            if any(n in missing for n in names):
                _go_install(group, bin_dir, env, progress)
        (bin_dir / "VERSIONS.json").write_text(
            json.dumps(
                {
                    "kubernetes": versions.KUBERNETES,
                    "containerd": versions.CONTAINERD,
                    "coredns": versions.COREDNS,
                    "local-path-provisioner": versions.LOCAL_PATH_PROVISIONER,
                },
                indent=2,
            )
            + "\n"
        )
        progress(f"real-node binaries built in {kube_install.elapsed(started)}")
    return binaries()


def _go_install(group: str, bin_dir: Path, env: dict[str, str], progress: Progress) -> None:
    targets, names, ldflags, extra = _GO_INSTALLS[group]
    tmp = bin_dir.parent / f"gobin.{group}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress(f"compiling {', '.join(targets)}")
    kube_install.stream(
        ["go", "install", "-v", "-trimpath", "-tags", _TAGS, "-ldflags", f"-s -w {ldflags}",
         *targets],
        env={**env, **extra, "GOBIN": str(tmp)},
        what=f"go install {group}",
        progress=progress,
        cwd=tmp,
    )
    for name in names:
        if not (tmp / name).exists():
            raise SandboxError(f"go install {group} wrote no {name} into {tmp}: {os.listdir(tmp)}")
        os.replace(tmp / name, bin_dir / name)
    shutil.rmtree(tmp, ignore_errors=True)
