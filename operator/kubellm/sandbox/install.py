"""``kubellm sandbox install``: build the sandbox binaries once from the Go module proxy.

What is built (versions in :mod:`kubellm.sandbox.versions`, the one pin place):

- kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd, in ONE ``go build``
  of a throw-away wrapper module (``<cache>/src/kubernetes``). ``go install
  k8s.io/kubernetes/cmd/...@v1.x`` cannot work because that module replaces its ``k8s.io/*``
  staging modules with local directories; the wrapper requires ``k8s.io/kubernetes`` and
  replaces every staging module it lists with the published ``v0.MINOR.PATCH`` tag (the list and
  the ``godebug`` lines are read from that release's own go.mod). Versions are stamped with
  ``-ldflags -X`` so the servers report ``v1.x`` instead of ``v0.0.0``.
- kwok and helm with ``go install module/cmd@version`` (their go.mod have no replace directives).

Binaries land in ``${XDG_CACHE_HOME:-~/.cache}/kubellm/sandbox/<versions>/bin``; a second install
is a no-op. A directory named by ``KUBEBUILDER_ASSETS`` (envtest convention) is searched first, so
binaries you already have are used and only missing ones are built. Go >= 1.26 is needed; an older
``go`` (>= 1.21) is used with ``GOTOOLCHAIN=go1.26.x``; one older still (Debian bookworm's 1.19)
downloads the toolchain module ``golang.org/toolchain`` into the cache. Either way the newer Go
comes from the module proxy.
Hand-written rather than a Makefile: the CLI, the pytest fixture and CI share this one path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kubellm.sandbox import versions
from kubellm.sandbox.errors import SandboxError

Progress = Callable[[str], None]
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
_WRAPPER_MODULE = "kubellm.local/sandbox-build"
_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9_.-]+)\s+=>\s+\./staging/", re.MULTILINE)
_GODEBUG = re.compile(r"^godebug\s.*$|^godebug\s*\((?:.|\n)*?^\)", re.MULTILINE)
_GO_INSTALL = {
    "kwok": (
        f"sigs.k8s.io/kwok/cmd/kwok@{versions.KWOK}",
        f"-X sigs.k8s.io/kwok/pkg/consts.Version={versions.KWOK.lstrip('v')}",
    ),
    "helm": (
        f"helm.sh/helm/v4/cmd/helm@{versions.HELM}",
        f"-X helm.sh/helm/v4/internal/version.version={versions.HELM}"
        " -X helm.sh/helm/v4/internal/version.gitTreeState=clean",
    ),
}

GO_MISSING = (
    "Go {need}+ is needed to build the sandbox binaries and no `go` was found on PATH. "
    "Install it from https://go.dev/dl/ (or on Debian/Ubuntu: `apt-get install golang-go`; "
    "an older go is fine, kubellm then sets GOTOOLCHAIN={toolchain} and Go fetches the newer "
    "toolchain through the module proxy). Or point KUBEBUILDER_ASSETS at a directory that "
    "already holds {binaries}."
)


@dataclass(frozen=True)
class Binaries:
    """Where each sandbox binary is; ``bin_dir`` is the per-version cache directory."""

    paths: dict[str, Path]
    bin_dir: Path

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]


def _assets_dir() -> Path | None:
    value = os.environ.get("KUBEBUILDER_ASSETS")
    return Path(value).expanduser() if value else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate(bin_dir: Path | None = None) -> tuple[dict[str, Path], list[str]]:
    """Found binaries and the names still missing (KUBEBUILDER_ASSETS first, then the cache)."""
    bin_dir = bin_dir or versions.bin_dir()
    found: dict[str, Path] = {}
    missing: list[str] = []
    assets = _assets_dir()
    for name in versions.BINARIES:
        for candidate in ([assets / name] if assets else []) + [bin_dir / name]:
            if _executable(candidate):
                found[name] = candidate
                break
        else:
            missing.append(name)
    return found, missing


def binaries() -> Binaries:
    """The installed binaries, or a SandboxError saying how to install them."""
    found, missing = locate()
    if missing:
        raise SandboxError(
            f"sandbox binaries missing: {', '.join(missing)} (not in {versions.bin_dir()}"
            + (f" nor KUBEBUILDER_ASSETS={_assets_dir()}" if _assets_dir() else "")
            + "). Run `kubellm sandbox install` (builds them with Go, a few minutes)."
        )
    return Binaries(found, versions.bin_dir())


def install(progress: Progress = print, *, force: bool = False) -> Binaries:
    """Build whatever is missing; a no-op when every binary is already there."""
    bin_dir = versions.bin_dir()
    bin_dir.mkdir(parents=True, exist_ok=True)
    with lock(versions.cache_dir() / ".install.lock"):
        found, missing = locate(bin_dir)
        if force:
            missing = list(versions.BINARIES)
        if not missing:
            progress(f"sandbox binaries up to date in {bin_dir} ({versions.version_key()})")
            return Binaries(found, bin_dir)
        started = time.monotonic()
        progress(f"building {', '.join(missing)} into {bin_dir} (minutes on a cold Go cache)")
        env = go_env(progress)
        wrapper = [b for b in missing if b in (*KUBE_BINARIES, "etcd")]
        if wrapper:
            build_kubernetes(wrapper, bin_dir, env, progress)
        for name in ("kwok", "helm"):
            if name in missing:
                _go_install(name, bin_dir, env, progress)
        (bin_dir / "VERSIONS.json").write_text(
            json.dumps(
                {
                    "kubernetes": versions.KUBERNETES,
                    "etcd": versions.ETCD,
                    "kwok": versions.KWOK,
                    "helm": versions.HELM,
                },
                indent=2,
            )
            + "\n"
        )
        progress(f"sandbox binaries built in {elapsed(started)}")
        found, missing = locate(bin_dir)
        if missing:  # pragma: no cover - go build succeeded but wrote nothing
            raise SandboxError(f"build finished but {', '.join(missing)} missing in {bin_dir}")
        return Binaries(found, bin_dir)


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _go_binary() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    for candidate in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go", str(Path.home() / "go/bin/go")):
        if _executable(Path(candidate)):
            return candidate
    return None


def parse_go_version(text: str) -> tuple[int, int] | None:
    """``go1.26.8`` / ``go1.24`` -> (1, 26) / (1, 24); None when unparseable."""
    match = re.search(r"go(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def go_env(progress: Progress = print) -> dict[str, str]:
    """Environment for running ``go``: PATH with go, GOTOOLCHAIN when the local go is too old."""
    go = _go_binary()
    need = ".".join(map(str, versions.GO_MIN))
    if go is None:
        raise SandboxError(
            GO_MISSING.format(
                need=need,
                toolchain=versions.GO_TOOLCHAIN,
                binaries=", ".join(versions.BINARIES),
            )
        )
    env = dict(os.environ)
    env["PATH"] = f"{Path(go).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("GOTOOLCHAIN", None)
    out = _run([go, "env", "GOVERSION"], env=env, what="go env GOVERSION").strip()
    have = parse_go_version(out)
    if have is not None and have < (1, 21):  # GOTOOLCHAIN arrived in go 1.21
        progress(f"{go} is {out}, too old for GOTOOLCHAIN; fetching {versions.GO_TOOLCHAIN}")
        newer = toolchain_from_proxy(env, progress)
        env["PATH"] = f"{newer.parent}{os.pathsep}{env['PATH']}"
        env["GOTOOLCHAIN"] = "local"
        env.pop("GOROOT", None)
    elif have is None or have < versions.GO_MIN:
        progress(f"{go} is {out or 'unknown'}; using GOTOOLCHAIN={versions.GO_TOOLCHAIN}")
        env["GOTOOLCHAIN"] = versions.GO_TOOLCHAIN
    return env


def toolchain_from_proxy(env: dict[str, str], progress: Progress) -> Path:
    """Fetch the Go toolchain module golang.org/toolchain with any go; return its bin/go.

    Module zips carry no file modes, so the tree is copied to the cache and made executable.
    """
    dest = versions.cache_root() / "go" / versions.GO_TOOLCHAIN
    go_bin = dest / "bin" / "go"
    if _executable(go_bin):
        return go_bin
    goos = _run(["go", "env", "GOOS"], env=env, what="go env GOOS").strip()
    goarch = _run(["go", "env", "GOARCH"], env=env, what="go env GOARCH").strip()
    module = f"golang.org/toolchain@v0.0.1-{versions.GO_TOOLCHAIN}.{goos}-{goarch}"
    scratch = versions.cache_root() / "go" / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    info = json.loads(
        _run(["go", "mod", "download", "-json", module], env=env, what=f"go mod download {module}",
             cwd=scratch)
    )
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(info["Dir"], partial)
    for root, dirs, files in os.walk(partial):
        os.chmod(root, 0o755)
        executable = Path(root).name == "bin" or f"{os.sep}pkg{os.sep}tool{os.sep}" in root + os.sep
        for name in files:
            os.chmod(Path(root) / name, 0o755 if executable else 0o644)
        for name in dirs:
            os.chmod(Path(root) / name, 0o755)
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    progress(f"Go toolchain {versions.GO_TOOLCHAIN} ready in {dest}")
    return go_bin


def _run(cmd: list[str], *, env: dict[str, str], what: str, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=3600
        )
    except OSError as exc:
        raise SandboxError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise SandboxError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def stream(
    cmd: list[str], *, env: dict[str, str], what: str, progress: Progress, cwd: Path | None = None
) -> None:
    """Run a long go command, reporting compiled-package counts every 20 s."""
    started = time.monotonic()
    lines: list[str] = []
    count = 0
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(20):
            last = lines[-1] if lines else "resolving modules"
            progress(f"  {what}: {count} packages compiled, {elapsed(started)} ({last[:70]})")

    beat = threading.Thread(target=heartbeat, daemon=True)
    try:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    except OSError as exc:
        raise SandboxError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    beat.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            lines.append(line)
            if not line.startswith(("go: ", "#")) and " " not in line:
                count += 1
        code = proc.wait()
    finally:
        done.set()
    if code != 0:
        tail = "\n".join(lines[-30:])
        raise SandboxError(f"{what} failed (exit {code}) after {elapsed(started)}:\n{tail}")
    progress(f"  {what}: done in {elapsed(started)} ({count} packages compiled)")


def wrapper_go_mod(kubernetes_go_mod: str) -> str:
    """The wrapper module's go.mod, derived from k8s.io/kubernetes's own go.mod text."""
    staging = sorted(set(_STAGING_REPLACE.findall(kubernetes_go_mod)))
    if not staging:
        raise SandboxError(
            f"k8s.io/kubernetes {versions.KUBERNETES} go.mod lists no ./staging replacements; "
            "the wrapper-module approach does not apply to this version, pin another one"
        )
    godebug = "\n".join(_GODEBUG.findall(kubernetes_go_mod))
    tag = versions.staging_version()
    replace = "\n".join(f"\t{mod} => {mod} {tag}" for mod in staging)
    go_line = re.search(r"^go\s+(\S+)", kubernetes_go_mod, re.MULTILINE)
    return (
        f"// Generated by kubellm sandbox install; throw-away, do not edit.\n"
        f"module {_WRAPPER_MODULE}\n\n"
        f"go {go_line.group(1) if go_line else '1.26.0'}\n\n"
        + (f"{godebug}\n\n" if godebug else "")
        + "require (\n"
        f"\tgo.etcd.io/etcd/server/v3 {versions.ETCD}\n"
        f"\tk8s.io/kubernetes {versions.KUBERNETES}\n"
        ")\n\n"
        f"replace (\n{replace}\n)\n"
    )


TOOLS_GO = """//go:build tools

// Package tools pins the commands kubellm sandbox builds (generated; throw-away).
package tools

import (
\t_ "go.etcd.io/etcd/server/v3"
\t_ "k8s.io/kubernetes/cmd/kube-apiserver"
\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"
\t_ "k8s.io/kubernetes/cmd/kube-scheduler"
\t_ "k8s.io/kubernetes/cmd/kube-proxy"
\t_ "k8s.io/kubernetes/cmd/kubectl"
\t_ "k8s.io/kubernetes/cmd/kubelet"
)
"""


def _resolve_key() -> str:
    """What the resolved wrapper module depends on: the pins and the commands it imports."""
    tools = hashlib.sha256(TOOLS_GO.encode()).hexdigest()[:12]
    return f"{versions.version_key()}+tools-{tools}"


def kubernetes_ldflags() -> str:
    minor = versions.KUBERNETES.lstrip("v").split(".")[1]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={versions.KUBERNETES}",
            f"-X {pkg}.gitMajor=1",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return " ".join(flags)


def build_kubernetes(
    names: list[str], bin_dir: Path, env: dict[str, str], progress: Progress
) -> None:
    """Compile ``names`` (cmd/<name> of k8s.io/kubernetes, or etcd) from the wrapper module."""
    src = versions.cache_dir() / "src" / "kubernetes"
    src.mkdir(parents=True, exist_ok=True)
    resolved = src / ".resolved"
    if (resolved.read_text() if resolved.exists() else "") != _resolve_key():
        progress(f"resolving k8s.io/kubernetes {versions.KUBERNETES} from the module proxy")
        for stale in ("go.mod", "go.sum", "tools.go"):
            (src / stale).unlink(missing_ok=True)
        info = json.loads(
            _run(
                ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{versions.KUBERNETES}"],
                env=env,
                what="go mod download k8s.io/kubernetes",
                cwd=src,
            )
        )
        go_mod_text = Path(info["GoMod"]).read_text()
        (src / "go.mod").write_text(wrapper_go_mod(go_mod_text))
        (src / "tools.go").write_text(TOOLS_GO)
        stream(["go", "mod", "tidy"], env=env, what="go mod tidy", progress=progress, cwd=src)
        resolved.write_text(_resolve_key())
    etcd = _run(
        ["go", "list", "-m", "-f", "{{.Version}}", "go.etcd.io/etcd/server/v3"],
        env=env,
        what="go list etcd",
        cwd=src,
    ).strip()
    if etcd != versions.ETCD:
        raise SandboxError(
            f"k8s.io/kubernetes {versions.KUBERNETES} needs etcd server {etcd}, but "
            f"kubellm/sandbox/versions.py pins ETCD = {versions.ETCD!r}: set ETCD = {etcd!r}"
        )
    packages = [f"k8s.io/kubernetes/cmd/{n}" for n in names if n != "etcd"]
    if "etcd" in names:
        packages.append("go.etcd.io/etcd/server/v3")
    tmp = bin_dir.parent / "bin.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress(f"compiling {', '.join(names)} (Kubernetes {versions.KUBERNETES}, etcd {etcd})")
    stream(
        ["go", "build", "-v", "-ldflags", kubernetes_ldflags(), "-o", f"{tmp}/", *packages],
        env=env,
        what="go build kubernetes",
        progress=progress,
        cwd=src,
    )
    # A module path ending in /v3 names the etcd binary after the element before it.
    if "etcd" in names:
        built = next((tmp / n for n in ("server", "v3", "etcd") if (tmp / n).exists()), None)
        if built is None:
            raise SandboxError(f"go build wrote no etcd binary into {tmp}: {os.listdir(tmp)}")
        built.rename(tmp / "etcd")
    for name in names:
        os.replace(tmp / name, bin_dir / name)
    shutil.rmtree(tmp, ignore_errors=True)


def _go_install(name: str, bin_dir: Path, env: dict[str, str], progress: Progress) -> None:
    target, ldflags = _GO_INSTALL[name]
    tmp = bin_dir.parent / f"gobin.{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    progress(f"compiling {target}")
    stream(
        ["go", "install", "-v", "-ldflags", f"-s -w {ldflags}", target],
        env={**env, "GOBIN": str(tmp)},
        what=f"go install {name}",
        progress=progress,
        cwd=tmp,
    )
    os.replace(tmp / name, bin_dir / name)
    shutil.rmtree(tmp, ignore_errors=True)


def elapsed(started: float) -> str:
    seconds = int(time.monotonic() - started)
    return f"{seconds // 60}m{seconds % 60:02d}s"
