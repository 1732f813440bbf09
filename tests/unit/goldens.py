"""Golden-file comparison shared by the golden tests: compare a rendering with its file under
tests/golden/, or rewrite the file when UPDATE_GOLDEN=1 (then review the diff)."""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def assert_golden(path: Path, text: str, test_file: str) -> None:
    """``text`` must equal ``path``; with UPDATE_GOLDEN=1 it is written there first."""
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run UPDATE_GOLDEN=1 pytest {test_file}"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} differs from the rendering; review, then UPDATE_GOLDEN=1 to accept"
    )
