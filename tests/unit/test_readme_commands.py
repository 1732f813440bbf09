"""The commands a newcomer copies work as written: the `kubellm plan` lines of the README's
"Using it" block run offline after that block's own seeding line, and every file the
`kubellm plan --help` examples name exists.

Lines that need the reader's own input (`my.yaml`, `--kubeconfig`) are skipped; everything else
runs in a fresh process in a temporary HF cache, exactly as written (shell expansion included).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from kubellm.commands.plan import EPILOG

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _using_it_block() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Using it", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines()]


def _plan_lines() -> list[str]:
    return [
        line.split("  #", 1)[0].strip()
        for line in _using_it_block()
        if line.startswith("kubellm plan") and "my.yaml" not in line
    ]


def _seed_line() -> str:
    seeds = [line for line in _using_it_block() if "seed_hf_cache.py" in line]
    assert len(seeds) == 1, "the README's 'Using it' block must say how to seed an offline cache"
    return seeds[0]


def test_readme_plan_lines_found() -> None:
    assert len(_plan_lines()) >= 2


@pytest.mark.parametrize("line", _plan_lines())
def test_readme_plan_line_runs_offline_after_seeding(line: str, tmp_path: Path) -> None:
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    seed = _seed_line().replace("/tmp/kubellm-hf", shlex.quote(str(tmp_path / "hf")))
    script = f"set -e\n{seed}\n{line}\n"
    proc = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    # 0: allowed and fits, 1: a refusal (the examples include refused ones); never 2 (bad input,
    # e.g. HubUnavailable because nothing was seeded)
    assert proc.returncode in (0, 1), f"{line!r} exited {proc.returncode}:\n{proc.stderr}"
    assert "HubUnavailable" not in proc.stdout + proc.stderr


def test_plan_help_examples_name_existing_files() -> None:
    paths = re.findall(r"(?<![\w/])((?:examples|scripts)/[\w./-]*)", EPILOG)
    assert paths, "the examples in `kubellm plan --help` name no files"
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"`kubellm plan --help` names files that do not exist: {missing}"
