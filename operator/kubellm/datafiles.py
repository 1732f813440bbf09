"""Read the facts kubellm ships as YAML under ``kubellm/data/`` (pure).

One loader for the licence, GPU and runtime catalogues: the file is read from the installed
package (works from a wheel), parsed once, and must be a mapping at the top level.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def load_mapping(name: str) -> dict[str, Any]:
    """``data/<name>`` parsed; a ValueError naming the file when it is not a mapping."""
    text = resources.files("kubellm").joinpath("data", name).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"kubellm/data/{name}: expected a mapping at the top level")
    return data
