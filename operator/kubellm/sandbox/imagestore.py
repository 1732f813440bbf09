"""The real node's image store, kept across sandboxes: images are imported once per content.

containerd's root (content store, overlayfs snapshots, metadata) for the real node lives at
:func:`store_dir` (``${XDG_CACHE_HOME:-~/.cache}/kubellm/images/containerd-<version>/root``)
instead of inside each sandbox, so a 6 GiB image imported (unpacked) once is there for every
later ``kubellm sandbox up --real-node`` (importing it took ~90 s per sandbox before). An index
(``index.json``: image name -> recipe key) says which build each name holds; an image whose key
changed is imported again, one no longer wanted (a superseded build) is removed.

:func:`prepare` runs a short-lived containerd on the store (its own socket and state
directory, before the node's containerd starts, or from ``kubellm sandbox install
--real-node``): it removes what an earlier sandbox left (containers, pod sandboxes and their
snapshots: a sandbox killed hard cannot clean up), imports what is missing
(``ctr images import --discard-unpacked-layers``: the unpacked snapshot is kept, the layer blob
dropped, so a big image costs its size once, not twice), pins the pause image, and stops. One
real node runs at a time (its bridge and chains are fixed names); :func:`in_use` refuses a
second containerd on the store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubellm.sandbox import images, install, nodeconfig, versions
from kubellm.sandbox.errors import SandboxError
from kubellm.sandbox.install import Binaries, Progress

NAMESPACE = "k8s.io"
PINNED = "io.cri-containerd.pinned=pinned"


@dataclass(frozen=True)
class NodeImage:
    """An image the node needs: its name, its recipe key, and how to get its archive.

    ``archive`` exists already, or ``make`` writes it to the given path (a big image is then
    written only when it must be imported, and deleted after).
    """

    ref: str
    key: str
    archive: Path | None = None
    make: Callable[[Path], Path] | None = None
    pinned: bool = False


def store_dir() -> Path:
    return versions.images_dir() / f"containerd-{versions.CONTAINERD}"


def store_root() -> Path:
    """containerd's ``root`` for the real node (shared by every sandbox)."""
    return store_dir() / "root"


def _index_path() -> Path:
    return store_dir() / "index.json"


def read_index() -> dict[str, str]:
    try:
        data = json.loads(_index_path().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_index(index: dict[str, str]) -> None:
    path = _index_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def in_use(root: Path | None = None) -> int | None:
    """The pid of a running containerd whose config names ``root`` as its root, if any."""
    needle = f'root = "{root or store_root()}"'
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith("containerd"):
            continue
        for arg in argv[1:]:
            if arg.startswith("--config="):
                try:
                    if needle in Path(arg.removeprefix("--config=")).read_text():
                        return int(entry.name)
                except OSError:
                    continue
    return None


class Ctr:
    """``ctr --address <socket> -n k8s.io ...`` for one containerd."""

    def __init__(self, ctr: Path, socket: Path, env: dict[str, str]) -> None:
        self.ctr, self.socket, self.env = ctr, socket, env

    def __call__(self, *args: str, timeout: float = 600, check: bool = True,
                 stdin: Path | None = None) -> str:
        cmd = [str(self.ctr), "--address", str(self.socket), "-n", NAMESPACE, *args]
        with (stdin.open("rb") if stdin else open(os.devnull, "rb")) as inp:
            proc = subprocess.run(cmd, stdin=inp, capture_output=True, text=True, check=False,
                                  timeout=timeout, env=self.env)
        if check and proc.returncode != 0:
            raise SandboxError(f"ctr {' '.join(args[:3])} failed: {proc.stderr.strip()}")
        return proc.stdout if proc.returncode == 0 else ""

    def refs(self) -> set[str]:
        return set(self("images", "ls", "-q").split())


def clean(ctr: Ctr) -> int:
    """Remove every container and pod sandbox (and their snapshots) an earlier node left."""
    removed = 0
    for cid in ctr("containers", "ls", "-q", check=False).split():
        ctr("tasks", "rm", "-f", cid, check=False, timeout=60)
        ctr("containers", "rm", cid, check=False, timeout=60)
        removed += 1
    for sid in ctr("sandboxes", "ls", "-q", check=False).split():
        ctr("sandboxes", "rm", "-f", sid, check=False, timeout=60)
    return removed


def import_missing(ctr: Ctr, wanted: list[NodeImage], progress: Progress) -> list[str]:
    """Import each image whose name is absent or whose index key differs; returns their names."""
    index = read_index()
    present = ctr.refs()
    done: list[str] = []
    for image in wanted:
        if image.ref in present and index.get(image.ref) == image.key:
            continue
        started = time.monotonic()
        archive, temporary = image.archive, False
        if archive is None or not archive.exists():
            if image.make is None:
                raise SandboxError(f"no archive for {image.ref} and no way to build one")
            archive = image.make(store_dir() / f"import-{image.key}.tar")
            temporary = True
        try:
            size = archive.stat().st_size
            progress(f"importing {image.ref} ({size / 2**20:.0f} MiB) into the node's store")
            ctr("images", "import", "--local", "--discard-unpacked-layers", "-", stdin=archive,
                timeout=3600)
        finally:
            if temporary:
                archive.unlink(missing_ok=True)
        index[image.ref] = image.key
        _write_index(index)
        progress(f"imported {image.ref} in {time.monotonic() - started:.0f}s")
        done.append(image.ref)
    for image in wanted:
        if image.pinned:
            ctr("images", "label", image.ref, PINNED)
    names = {i.ref for i in wanted}
    for ref in sorted(set(index) - names):  # superseded builds (a new key, a new name)
        ctr("images", "rm", "--sync", ref, check=False, timeout=600)
        del index[ref]
        progress(f"removed {ref} from the node's store (superseded)")
    _write_index(index)
    # The CRI plugin names each image it used by its id too (sha256:<config>); such a name
    # would keep a superseded image's snapshots forever. It adds them again when needed.
    for ref in sorted(r for r in present if r.startswith("sha256:")):
        ctr("images", "rm", "--sync", ref, check=False, timeout=600)
    return done


def _config(root: Path, state: Path, socket: Path) -> str:
    """A containerd config for the short-lived store maintenance process (no CRI needed)."""
    return nodeconfig.to_toml(
        {"grpc": {"address": str(socket)},
         "ttrpc": {"address": str(socket) + ".ttrpc"}},
        {"version": 3, "root": str(root), "state": str(state),
         "disabled_plugins": ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime",
                              "io.containerd.cri.v1.images",
                              "io.containerd.tracing.processor.v1.otlp",
                              "io.containerd.internal.v1.tracing"]},
    )


@contextmanager
def maintenance(bins: Binaries, env: dict[str, str]) -> Iterator[Ctr]:
    """A containerd on the store for the block (refused while a node's containerd uses it)."""
    pid = in_use()
    if pid is not None:
        raise SandboxError(
            f"containerd (pid {pid}) is using the real node's image store {store_root()}: "
            "stop that sandbox first (kubellm sandbox down)"
        )
    store_root().mkdir(parents=True, exist_ok=True)
    with install.lock(store_dir() / ".lock"), \
            tempfile.TemporaryDirectory(prefix="kubellm-ctrd-") as tmp:
        state, socket = Path(tmp) / "state", Path(tmp) / "containerd.sock"
        config = Path(tmp) / "config.toml"
        config.write_text(_config(store_root(), state, socket))
        log = (store_dir() / "maintenance.log").open("ab")
        proc = subprocess.Popen([str(bins["containerd"]), f"--config={config}"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        ctr = Ctr(bins["ctr"], socket, env)
        try:
            deadline = time.monotonic() + 60
            while not (socket.exists() and ctr("version", check=False, timeout=10)):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SandboxError(f"containerd on the image store did not start: see "
                                       f"{store_dir() / 'maintenance.log'}")
                time.sleep(0.2)
            yield ctr
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def prepare(bins: Binaries, env: dict[str, str], wanted: list[NodeImage],
            progress: Progress) -> None:
    """Clean what an earlier node left, import what is missing, pin the pause image."""
    started = time.monotonic()
    with maintenance(bins, env) as ctr:
        removed = clean(ctr)
        imported = import_missing(ctr, wanted, progress)
    cri = store_root() / "io.containerd.grpc.v1.cri"
    for sub in ("containers", "sandboxes"):
        shutil.rmtree(cri / sub, ignore_errors=True)
    if removed or imported:
        progress(f"node image store ready in {time.monotonic() - started:.0f}s "
                 f"({removed} stale containers removed, {len(imported)} images imported)")


def node_images(base: list[images.Image], progress: Progress) -> list[NodeImage]:
    """What the node holds: ``base`` (pause first, pinned; the Debian image), the kubellm image
    (built from operator/Dockerfile when buildah is here) and the CPU vLLM image (when the
    engine environment is installed; its archive is written only to be imported)."""
    from kubellm.sandbox import buildimages, engines, vllmimage

    wanted = [NodeImage(i.ref, i.archive.name, i.archive, pinned=n == 0)
              for n, i in enumerate(base)]
    if shutil.which("buildah"):
        op = buildimages.operator_image(progress)
        wanted.append(NodeImage(op.ref, op.archive.name, op.archive))
    else:
        progress("buildah is missing: no kubellm image on the real node (scripts/setup.sh)")
    if engines.VLLM.installed():
        vbase = images.vllm_base(progress)
        ref, key = vllmimage.vllm_image(progress)

        def make(dest: Path) -> Path:
            return vllmimage.write_archive(engines.VLLM, vbase, ref, dest, progress)

        wanted.append(NodeImage(ref, key, make=make))
    else:
        progress("no vLLM engine environment: no vLLM image on the real node "
                 "(kubellm sandbox install --engines)")
    return wanted


def vllm_ref() -> str | None:
    """The CPU vLLM image name the store holds for the installed engine, if imported."""
    from kubellm.sandbox import engines, vllmimage

    if not engines.VLLM.installed():
        return None
    ref, key = vllmimage.vllm_image(lambda _: None)
    return ref if read_index().get(ref) == key else None


def install_images(bins: Binaries, progress: Progress) -> list[NodeImage]:
    """``kubellm sandbox install --real-node``: build every node image and import it now, so
    ``up`` finds the store ready (skipped while a real node uses the store: ``up`` imports)."""
    wanted = node_images(images.build_all(progress), progress)
    if in_use() is not None:
        progress("the real node's image store is in use: images are imported at the next up")
        return wanted
    env = dict(os.environ)
    extra = [str(bins.bin_dir), "/usr/local/sbin", "/usr/sbin", "/sbin"]
    env["PATH"] = os.pathsep.join([*extra, env.get("PATH", "/usr/bin:/bin")])
    prepare(bins, env, wanted, progress)
    return wanted
