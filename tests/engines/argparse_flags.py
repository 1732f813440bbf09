"""The long options of an argparse parser as kubellm's flag facts (standard library only).

Shared by the engine scripts that write ``data/vllm-serve.yaml`` and ``data/sglang-server.yaml``
from the engines' own parsers: each long option, whether it takes a value (``switch``: none;
``value``: one; ``list``: one or more, ``nargs`` ``+``/``*``), its other spellings (``aliases``:
short forms such as ``-tp`` and, with ``long_aliases``, further long names such as SGLang's
``--model`` for ``--model-path``) and its ``--no-`` negation (a BooleanOptionalAction).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def options(parser: argparse.ArgumentParser, *, long_aliases: bool = False
            ) -> dict[str, dict[str, Any]]:  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or isinstance(action, argparse._HelpAction):
            continue
        name, *rest = longs
        negation = [o for o in rest if o.startswith("--no-")]
        if action.nargs == 0:
            value = "switch"
        elif action.nargs in ("+", "*"):
            value = "list"
        else:
            value = "value"
        entry: dict[str, Any] = {"value": value}
        aliases = sorted(o for o in action.option_strings if not o.startswith("--"))
        if long_aliases:
            aliases += [o for o in rest if o not in negation]
        if aliases:
            entry["aliases"] = aliases
        if negation:
            entry["negation"] = negation[0]
        out[name] = entry
    return dict(sorted(out.items()))


def render(header: str, version: str, flags: dict[str, dict[str, Any]]) -> str:
    """The data file: ``header`` (comments), ``version:``, then one flow mapping per flag."""
    lines = [header.rstrip("\n"), f"version: {version}", "flags:"]
    for name, entry in flags.items():
        lines.append(f"  {name}: {json.dumps(entry, separators=(', ', ': '))}")
    return "\n".join(lines) + "\n"


def emit(text: str, path: Path | None) -> int:
    """Write the data file to ``path``, or print it; the script's exit code."""
    if path is not None:
        path.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
