"""The kubellm (operator) image, built here from ``operator/Dockerfile`` itself, without a registry.

Debian's buildah builds the project's own Dockerfile (``buildah bud --isolation chroot``, no
daemon) with ``--build-arg BASE_IMAGE=docker-archive:<python base>``: the Debian bookworm
python3 + pip base made by :func:`kubellm.sandbox.images.python_base` stands in for the pinned
``python:3.11.N-slim`` (same Python minor version; it cannot be pulled here). Nothing else
differs from a ``docker build``: the same stages, the hash-locked dependencies, the wheel, user
10001, entrypoint ``kubellm``.

pip inside the build reaches the package index through this machine's TLS set-up: the host's CA
bundle and a ``pip.conf`` (certificate, the host's index/timeout settings, and
``break-system-packages``, which the stand-in's Debian Python needs and python:slim does not)
are mounted into each ``RUN`` (``--volume``), never copied into the image.

The image is named :func:`operator_ref` (``downloader.image`` of ``runtimes.yaml``, the name
the rendered download Job uses), written as a docker-archive under
``${XDG_CACHE_HOME:-~/.cache}/kubellm/images/`` keyed by a hash of the build context (the files
``.dockerignore`` admits) and the base, so an unchanged tree is never rebuilt; buildah's own
storage (and its layer cache: a code change rebuilds only the layers after the lock) lives under
``images/buildah/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from kubellm.sandbox import images, versions
from kubellm.sandbox.errors import SandboxError
from kubellm.sandbox.install import Progress

#: The repository root (build context of operator/Dockerfile).
ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "operator" / "Dockerfile"
#: What .dockerignore admits (an allowlist): the context hash covers exactly these.
CONTEXT = ("pyproject.toml", "README.md", "operator")
_SKIP = ("__pycache__", ".egg-info", ".pyc")
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA = "/etc/kubellm-build-ca.crt"
#: Bump when the build recipe changes in a way the hashed inputs do not show.
_RECIPE = "1"


def operator_ref() -> str:
    """``ghcr.io/kubellm/kubellm:<version>``: the name the download Job is rendered with."""
    from kubellm.runtimes.catalog import downloader_image

    return downloader_image()


def context_files(root: Path = ROOT) -> list[Path]:
    """The build context's files, sorted (what ``.dockerignore``'s allowlist lets through)."""
    found: list[Path] = []
    for name in CONTEXT:
        path = root / name
        if path.is_file():
            found.append(path)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.endswith(_SKIP))
            found += [Path(dirpath) / f for f in sorted(filenames) if not f.endswith(_SKIP)]
    return found


def context_key(base: images.Image, root: Path = ROOT) -> str:
    """Hash of the build context (paths and contents), the base archive and the recipe."""
    digest = hashlib.sha256(f"{_RECIPE}\0{base.ref}\0{base.archive.name}\0".encode())
    for path in context_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def pip_conf(env: dict[str, str] | None = None) -> str:
    """The pip.conf mounted into the build: the CA, this host's index settings, Debian's pip."""
    env = dict(os.environ if env is None else env)
    lines = ["[global]", f"cert = {BUILD_CA}", "break-system-packages = true",
             f"timeout = {env.get('PIP_DEFAULT_TIMEOUT', '180')}"]
    for var, key in (("PIP_INDEX_URL", "index-url"), ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
                     ("PIP_TRUSTED_HOST", "trusted-host")):
        if env.get(var):
            lines.append(f"{key} = {env[var]}")
    return "\n".join(lines) + "\n"


def buildah(*args: str) -> list[str]:
    """A buildah command line on kubellm's own storage (not /var/lib/containers)."""
    store = versions.images_dir() / "buildah"
    return ["buildah", f"--root={store / 'root'}", f"--runroot={store / 'run'}",
            "--storage-driver=overlay", *args]


def _run(cmd: list[str], what: str, progress: Progress, timeout: float = 3600) -> None:
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        while True:
            try:
                proc.wait(20)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() - started > timeout:
                    proc.kill()
                    proc.wait()
                    raise SandboxError(f"{what}: no result after {timeout:.0f}s") from None
                progress(f"    ... {what}: still running, {time.monotonic() - started:.0f} s")
        if proc.returncode != 0:
            out.seek(0)
            tail = "\n".join(out.read().strip().splitlines()[-25:])
            raise SandboxError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def operator_image(progress: Progress = print, *, force: bool = False) -> images.Image:
    """Build (once per context hash) the kubellm image from operator/Dockerfile with buildah."""
    if shutil.which("buildah") is None:
        raise SandboxError("buildah is missing: run scripts/setup.sh (apt-get install buildah)")
    base = images.python_base(progress)
    key = context_key(base)
    ref = operator_ref()
    archive = versions.images_dir() / f"kubellm-{key}.tar"
    image = images.Image(ref, archive)
    if archive.exists() and not force:
        return image
    started = time.monotonic()
    progress(f"building {ref} from operator/Dockerfile with buildah (base {base.ref})")
    with tempfile.TemporaryDirectory(prefix="kubellm-build-") as tmp:
        conf = Path(tmp) / "pip.conf"
        conf.write_text(pip_conf())
        volumes = [f"--volume={conf}:/etc/pip.conf:ro"]
        if HOST_CA.exists():
            volumes.append(f"--volume={HOST_CA}:{BUILD_CA}:ro")
        _run(
            buildah(
                "bud", "--isolation=chroot", "--layers", "--pull=false",
                f"--file={DOCKERFILE}", f"--tag={ref}",
                f"--build-arg=BASE_IMAGE=docker-archive:{base.archive}",
                *volumes, str(ROOT),
            ),
            "buildah bud operator/Dockerfile",
            progress,
        )
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    _run(buildah("push", ref, f"docker-archive:{partial}:{ref}"), f"buildah push {ref}", progress)
    os.replace(partial, archive)
    for old in versions.images_dir().glob("kubellm-*.tar"):
        if old != archive:
            old.unlink(missing_ok=True)
    progress(f"built {ref} in {time.monotonic() - started:.0f}s "
             f"({image.size_bytes / 2**20:.0f} MiB archive)")
    return image
