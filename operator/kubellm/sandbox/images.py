"""Container images of the real node, made here without any registry.

- :data:`PAUSE`: the pod sandbox ("pause") image, from Kubernetes' own ``build/pause/linux/pause.c``
  in the ``k8s.io/kubernetes`` module (already in GOMODCACHE after ``kubellm sandbox install``),
  compiled static with gcc as upstream's Makefile does.
- :func:`debian_base`: a Debian bookworm rootfs from ``debootstrap --variant=minbase`` plus
  python3, for test pods (and as the base of later images).

Each is an OCI layout made with umoci (``init``, ``new``, ``insert``, ``config``) and written by
skopeo as a docker-archive tar carrying the image name, which ``ctr -n k8s.io images import``
names correctly. Archives are cached under ``${XDG_CACHE_HOME:-~/.cache}/kubellm/images``, keyed
by a hash of their recipe (source file, suite, packages), so a second build is a no-op. Names
live under ``kubellm.local/``, a registry that does not exist: nothing is ever pulled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kubellm.sandbox import install, versions
from kubellm.sandbox.errors import SandboxError
from kubellm.sandbox.install import Progress

REGISTRY = "kubellm.local/sandbox"
PAUSE_TAG = "3.10.2"
PAUSE = f"{REGISTRY}/pause:{PAUSE_TAG}"
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3",)
PYTHON_BASE_PACKAGES = ("python3", "python3-pip")
VLLM_BASE_PACKAGES = ("python3", "python3-dev", "g++", "libnuma1", "openssl")
#: Bump when the recipe below changes in a way the hashed inputs do not show.
_RECIPE = "1"
_DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Image:
    """A built image: its name and the docker-archive tar to import."""

    ref: str
    archive: Path

    @property
    def size_bytes(self) -> int:
        return self.archive.stat().st_size if self.archive.exists() else 0


def _run(cmd: list[str], what: str, *, cwd: Path | None = None, timeout: float = 1800) -> str:
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-20:])
        raise SandboxError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join((_RECIPE, *parts)).encode()).hexdigest()[:12]


def pause_source() -> Path:
    """``build/pause/linux/pause.c`` of the pinned Kubernetes module (downloaded if needed)."""
    env = install.go_env(lambda _: None)
    module = f"k8s.io/kubernetes@{versions.KUBERNETES}"
    scratch = versions.cache_root() / "go" / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    info = json.loads(
        install._run(
            ["go", "mod", "download", "-json", module],
            env=env,
            what=f"go mod download {module}",
            cwd=scratch,
        )
    )
    source = Path(info["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    if not source.is_file():
        raise SandboxError(f"{module} has no {source.relative_to(info['Dir'])}")
    return source


def _oci_to_archive(layout: Path, tag: str, ref: str, archive: Path) -> None:
    """skopeo: OCI layout ``layout:tag`` -> docker-archive ``archive`` named ``ref``."""
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    _run(
        ["skopeo", "copy", "--quiet", f"oci:{layout}:{tag}", f"docker-archive:{partial}:{ref}"],
        f"skopeo copy {ref}",
    )
    os.replace(partial, archive)


def _umoci_image(
    work: Path, tag: str, rootfs: Path, config: list[str], ref: str, archive: Path
) -> None:
    """umoci: a one-layer image of ``rootfs`` (inserted at /) with ``config`` options."""
    layout = work / "oci"
    shutil.rmtree(layout, ignore_errors=True)
    _run(["umoci", "init", "--layout", str(layout)], "umoci init")
    _run(["umoci", "new", "--image", f"{layout}:{tag}"], "umoci new")
    _run(["umoci", "insert", "--image", f"{layout}:{tag}", f"{rootfs}/", "/"], "umoci insert")
    _run(
        ["umoci", "config", "--image", f"{layout}:{tag}", "--os", "linux",
         "--architecture", "amd64", *config],
        "umoci config",
    )
    _run(["umoci", "gc", "--layout", str(layout)], "umoci gc")
    _oci_to_archive(layout, tag, ref, archive)


def pause(progress: Progress = print) -> Image:
    """The pause image, built once per pause.c content."""
    source = pause_source()
    key = _key(source.read_text(), PAUSE_TAG)
    archive = versions.images_dir() / f"pause-{PAUSE_TAG}-{key}.tar"
    image = Image(PAUSE, archive)
    if archive.exists():
        return image
    started = time.monotonic()
    work = versions.images_dir() / f"work-pause-{key}"
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    rootfs.mkdir(parents=True)
    _run(
        ["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_TAG}-kubellm",
         "-o", str(rootfs / "pause"), str(source)],
        "gcc pause.c (needs gcc and libc6-dev)",
    )
    _run(["strip", str(rootfs / "pause")], "strip pause")
    _umoci_image(
        work, PAUSE_TAG, rootfs,
        ["--config.entrypoint", "/pause", "--config.user", "65535:65535"],
        PAUSE, archive,
    )
    shutil.rmtree(work, ignore_errors=True)
    progress(f"built {PAUSE} in {time.monotonic() - started:.0f}s ({image.size_bytes} bytes)")
    return image


def apt_mirror(sources: tuple[Path, ...] = (
    Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"),
)) -> str:
    """The Debian mirror apt already uses here (deb822 ``URIs:`` or a ``deb`` line)."""
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            uri = match.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return _DEFAULT_MIRROR


def debian_base(
    progress: Progress = print,
    packages: tuple[str, ...] = DEBIAN_PACKAGES,
    name: str = "debian",
) -> Image:
    """Debian ``bookworm`` minbase + ``packages`` as an image named ``name``, built once per
    recipe (suite, variant, packages)."""
    key = _key(DEBIAN_SUITE, "minbase", ",".join(packages))
    tag = f"{DEBIAN_SUITE}-{key}"
    ref = f"{REGISTRY}/{name}:{tag}"
    archive = versions.images_dir() / f"{name}-{tag}.tar"
    image = Image(ref, archive)
    if archive.exists():
        return image
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        raise SandboxError("debootstrap is missing: run scripts/setup.sh (apt-get install it)")
    started = time.monotonic()
    work = versions.images_dir() / f"work-{name}-{key}"
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    work.mkdir(parents=True)
    mirror = apt_mirror()
    progress(f"debootstrap --variant=minbase {DEBIAN_SUITE} (+{', '.join(packages)}) "
             f"from {mirror}")
    _run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
         DEBIAN_SUITE, str(rootfs), mirror],
        "debootstrap",
    )
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / leftover).glob("*"):
            if entry.is_file():
                entry.unlink()
    _umoci_image(
        work, tag, rootfs,
        ["--config.cmd", "/bin/bash",
         "--config.env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "--config.env", "LANG=C.UTF-8"],
        ref, archive,
    )
    shutil.rmtree(work, ignore_errors=True)
    for old in versions.images_dir().glob(f"{name}-{DEBIAN_SUITE}-*.tar"):
        if old != archive:  # an earlier recipe of this base
            old.unlink(missing_ok=True)
    progress(f"built {ref} in {time.monotonic() - started:.0f}s "
             f"({image.size_bytes / 2**20:.0f} MiB archive)")
    return image


def python_base(progress: Progress = print) -> Image:
    """The stand-in for ``python:3.11-slim`` (operator/Dockerfile's BASE_IMAGE): python3 + pip."""
    return debian_base(progress, PYTHON_BASE_PACKAGES, "python")


def vllm_base(progress: Progress = print) -> Image:
    """The CPU vLLM image's base: python3 with its headers, g++ (torch inductor compiles the
    CPU kernels at start-up; it hashes preprocessed headers with the ``openssl`` command) and
    libnuma (vLLM's CPU extension links it)."""
    return debian_base(progress, VLLM_BASE_PACKAGES, "vllm-base")


def build_all(progress: Progress = print) -> list[Image]:
    """Every image the real node needs (pause first: it is the CRI sandbox image)."""
    versions.images_dir().mkdir(parents=True, exist_ok=True)
    with install.lock(versions.images_dir() / ".build.lock"):
        return [pause(progress), debian_base(progress)]
