"""docs/reference/: fresh (generated from the CRDs), complete, deterministic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubellm import apiref, crdgen

ROOT = Path(__file__).resolve().parents[2]
REF_DIR = ROOT / "docs" / "reference"
REGENERATE = "regenerate with: .venv/bin/python -m kubellm crds --docs docs/reference"
PAGES = apiref.render_all(crdgen.all_crds())


@pytest.mark.parametrize("name", sorted(PAGES))
def test_committed_reference_is_fresh(name: str) -> None:
    path = REF_DIR / name
    assert path.exists(), f"{path} is missing; {REGENERATE}"
    assert path.read_text(encoding="utf-8") == PAGES[name], (
        f"{path} is stale (the CRDs changed); {REGENERATE}"
    )


def test_output_is_deterministic() -> None:
    assert apiref.render_all(crdgen.all_crds()) == PAGES


@pytest.mark.parametrize("crd", list(crdgen.all_crds().values()),
                         ids=lambda c: str(c["metadata"]["name"]))
def test_every_field_and_rule_is_documented(crd: dict[str, Any]) -> None:
    page = PAGES[apiref.DOC_FILES[crd["spec"]["names"]["kind"]]]
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        if part in root["properties"]:
            for field in apiref.fields(root["properties"][part], part):
                assert f"| `{field.path}` |" in page, field.path
                for rule in field.node.get("x-kubernetes-validations", []):
                    assert rule["message"] in page
    for column in version["additionalPrinterColumns"]:
        assert f"| {column['name']} | {column['type']} |" in page


def test_row_carries_type_default_enum_and_required() -> None:
    page = PAGES["llmdeployment.md"]
    row = next(line for line in page.splitlines() if line.startswith("| `spec.runtime` |"))
    assert "| string |" in row and "`auto`" in row and "one of `auto`, `vllm`, `tgi`" in row
    repo = next(line for line in page.splitlines() if line.startswith("| `spec.model.repo` |"))
    assert "| yes |" in repo
    util = next(line for line in page.splitlines()
                if line.startswith("| `spec.gpu.memoryUtilization` |"))
    assert "0.1 < value ≤ 0.99" in util
    # a pipe inside a pattern must not split the table row
    size = next(line for line in page.splitlines() if line.startswith("| `spec.cache.size` |"))
    assert size.count(" | ") == 5


def test_types_read_like_kubernetes() -> None:
    assert apiref.type_of({"type": "array", "items": {"type": "string"}}) == "[]string"
    assert apiref.type_of({"type": "object", "additionalProperties": {"type": "string"}}) == (
        "map[string]string")
    assert apiref.type_of({"x-kubernetes-int-or-string": True}) == "int-or-string"
    assert apiref.type_of({"type": "object", "x-kubernetes-preserve-unknown-fields": True}) == (
        "object (free-form)")


def test_cli_writes_docs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kubellm.cli import main

    assert main(["crds", "--docs", str(tmp_path / "ref")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == sorted(PAGES)
    assert (tmp_path / "ref" / "licensepolicy.md").read_text() == PAGES["licensepolicy.md"]
