"""The ``kubellm`` command line: one sub-command per module in ``kubellm.commands``.

Each command module exposes ``register(subparsers)`` and keeps heavy imports inside its handler,
so ``kubellm --help`` and ``kubellm plan`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kubellm import __version__
from kubellm.errors import KubellmError, PermanentError

COMMANDS = ("run", "plan", "eval", "license", "download", "sandbox", "crds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubellm",
        description=(
            "Self-host open LLMs on Kubernetes: licence policy, GPU sizing, a shared model "
            "cache and vLLM/TGI rollout from one LLMDeployment."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kubellm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"kubellm.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet must not break the others
            if exc.name != f"kubellm.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KubellmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
