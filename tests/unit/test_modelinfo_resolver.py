"""FactsResolver memo cache and declared facts, in-process with the Hub source replaced.

The Hub readers (``sources.from_hub``/``hub_card``) are swapped for fakes so no huggingface_hub
constant is involved; the end-to-end paths are covered by test_modelinfo.py in subprocesses.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hubfixtures import build_offline_cache, get_repo
from kubellm.api.v1alpha1 import ModelSpec
from kubellm.errors import GatedModelError, HubUnavailableError
from kubellm.facts import BaseModelRef, ModelFacts
from kubellm.modelinfo import FactsResolver, _hub, apply_declared, sources

SHA = "a" * 40


class FakeHub:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.fail: Exception | None = None

    def from_hub(self, repo: str, revision: str, *, token: str | None, gguf_file: str | None,
                 timeout: float) -> ModelFacts:
        self.calls.append((repo, revision, token))
        if self.fail is not None:
            raise self.fail
        return ModelFacts(repo=repo, revision=revision, sha=SHA, license="apache-2.0",
                          base_models=(BaseModelRef("org/base", "finetune"),), source="hub")

    def hub_card(self, repo: str, revision: str, token: str | None,
                 timeout: float) -> tuple[dict[str, Any], list[str], None, str]:
        chain: dict[str, tuple[dict[str, Any], list[str]]] = {
            "org/base": ({"license": "llama3.1", "base_model": "org/root"}, []),
            "org/root": ({"license": "llama3"}, []),
        }
        if repo not in chain:
            raise ConnectionError("down")
        return chain[repo][0], chain[repo][1], None, SHA


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake = FakeHub()
    monkeypatch.setattr(sources, "from_hub", fake.from_hub)
    monkeypatch.setattr(sources, "hub_card", fake.hub_card)
    monkeypatch.setattr(_hub, "is_offline", lambda: False)
    return fake


@pytest.mark.parametrize(
    ("revision", "advance", "expected_calls"),
    [
        ("main", 10.0, 1),  # within the TTL
        ("main", 301.0, 2),  # expired
        (SHA, 10**9, 1),  # a sha is cached forever
    ],
)
def test_memo(hub: FakeHub, revision: str, advance: float, expected_calls: int) -> None:
    clock = Clock()
    r = FactsResolver(ttl=300, clock=clock)
    r.resolve("org/model", revision)
    clock.now += advance
    r.resolve("org/model", revision)
    assert len(hub.calls) == expected_calls


def test_memo_is_per_token_and_errors_are_not_cached(hub: FakeHub) -> None:
    r = FactsResolver()
    r.resolve("org/model", token="t1")
    r.resolve("org/model", token="t2")
    assert len(hub.calls) == 2
    hub.fail = GatedModelError("gated")
    with pytest.raises(GatedModelError):
        r.resolve("org/other")
    hub.fail = None
    assert r.resolve("org/other").license == "apache-2.0"


def test_chain_follows_bases_to_depth(hub: FakeHub) -> None:
    facts = FactsResolver().resolve("org/model")
    assert [(b.repo, b.license, b.resolved) for b in facts.base_models] == [
        ("org/base", "llama3.1", True), ("org/root", "llama3", True)]
    shallow = FactsResolver(max_depth=1).resolve("org/model")
    assert [b.repo for b in shallow.base_models] == ["org/base"]


@pytest.mark.parametrize(
    ("facts", "spec", "expected", "declared"),
    [
        (ModelFacts(repo="o/m", license="mit"), {"license": "apache-2.0"},
         {"license": "mit"}, ()),
        (ModelFacts(repo="o/m"), {"license": "Apache-2.0", "parameters": "70.6B"},
         {"license": "apache-2.0", "parameters": 70_600_000_000}, ("license", "parameters")),
        (ModelFacts(repo="o/m", license="other"), {"license_name": "qwen"},
         {"license_name": "qwen"}, ("license_name",)),
        (ModelFacts(repo="o/m", parameters=8), {"parameters": 9}, {"parameters": 8}, ()),
        (ModelFacts(repo="o/m"), {"base_model": "a/b"},
         {"base_models": (BaseModelRef("a/b", "unknown"),)}, ("base_models",)),
    ],
)
def test_apply_declared(facts: ModelFacts, spec: dict[str, Any], expected: dict[str, Any],
                        declared: tuple[str, ...]) -> None:
    out = apply_declared(facts, ModelSpec(repo="o/m", **spec))
    for key, value in expected.items():
        assert getattr(out, key) == value
    assert out.declared == declared


def test_unavailable_without_cache_raises(hub: FakeHub, tmp_path: Path) -> None:
    hub.fail = ConnectionError("connection refused")
    with pytest.raises(HubUnavailableError, match="unavailable"):
        FactsResolver(cache_dir=tmp_path).resolve("org/model")


def test_unavailable_falls_back_to_cache_and_unknown_base_is_kept(hub: FakeHub,
                                                                  tmp_path: Path) -> None:
    cache = build_offline_cache(tmp_path, ["meta-llama/Llama-3.3-70B-Instruct"])
    hub.fail = ConnectionError("connection refused")
    facts = FactsResolver(cache_dir=cache).resolve("meta-llama/Llama-3.3-70B-Instruct")
    assert (facts.source, facts.license, facts.sha) == (
        "cache", "llama3.3", get_repo("meta-llama/Llama-3.3-70B-Instruct").sha)
    assert [(b.repo, b.resolved) for b in facts.base_models] == [
        ("meta-llama/Llama-3.1-70B", False)]


def test_only_modelinfo_imports_huggingface_hub() -> None:
    root = Path(__file__).resolve().parents[2] / "operator" / "kubellm"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if "modelinfo" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "huggingface_hub" for n in names):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_import_is_lazy() -> None:
    """Importing kubellm.modelinfo must not import huggingface_hub (it reads env at import)."""
    code = ("import sys, kubellm.modelinfo, kubellm.modelinfo.download, kubellm.commands.download;"
            "print('huggingface_hub' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "operator")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip() == "False"
