"""The pure core imports neither kopf, kubernetes nor huggingface_hub (DESIGN.md layers).

import-linter checks the static imports (`lint-imports`: the forbidden-modules contract and the
layers contract in pyproject.toml); this test checks the dynamic truth for the same module list
(read from that contract, so the two cannot drift): a fresh interpreter importing every pure
module must not have loaded the adapters' libraries.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _pure_contract() -> dict[str, Any]:
    """The one list of pure modules: the import-linter contract in pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c.get("type") == "forbidden")


PURE = list(_pure_contract()["source_modules"])
FORBIDDEN = tuple(_pure_contract()["forbidden_modules"])


def test_pure_modules_do_not_load_adapters() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {PURE!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "operator"), "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(out.stdout) == [], out.stdout
