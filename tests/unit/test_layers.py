"""The pure core imports neither kopf, kubernetes nor huggingface_hub (DESIGN.md layers).

import-linter checks the static imports (`lint-imports`); this test checks the dynamic truth: a
fresh interpreter importing every pure module must not have loaded the adapters' libraries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "kubellm.api",
    "kubellm.errors",
    "kubellm.facts",
    "kubellm.license",
    "kubellm.sizing",
    "kubellm.runtimes",
    "kubellm.naming",
    "kubellm.cache",
    "kubellm.conditions",
    "kubellm.planner",
    "kubellm.manifests",
    "kubellm.datafiles",
    "kubellm.crdgen",
]
FORBIDDEN = ("kopf", "kubernetes", "huggingface_hub")


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
