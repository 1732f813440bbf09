"""Every option of the pinned ``python3 -m sglang.launch_server``, from SGLang's own parser (run
inside the engine venv of ``kubellm sandbox install --engines``).

    ~/.cache/kubellm/engines/sglang-X/bin/python tests/engines/sglang_flags.py \\
        [--write operator/kubellm/data/sglang-server.yaml | --parse JSON]

Prints (or writes) the facts ``kubellm.runtimes.guard`` checks spec.args against: each long
option of ``ServerArgs.add_cli_args`` (the parser ``prepare_server_args`` builds), whether it
takes a value, its other spellings (``--model`` for ``--model-path``) and negation.
``--parse`` reads a JSON list of argument lists and prints, per list, what SGLang's parser makes
of it (the fields a bypass would change) or its error. ``tests/engines/test_sglang_accepts.py``
fails when the data file and the pinned SGLang disagree. Standard library and SGLang only.
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
# sglang.launch_server {version}: every option of SGLang's parser (sglang.srt.server_args
# ServerArgs.add_cli_args, as prepare_server_args builds it), written by
# tests/engines/sglang_flags.py --write and checked against the pinned SGLang by
# tests/engines/test_sglang_accepts.py. Do not edit by hand: regenerate and review the diff; a
# new flag that selects a model, weights, code or the listening address must be added to
# overrides.yaml sglang.refused (or .owned) in the same change.
# value: switch (no value), value (one), list (one or more); aliases: the option's other
# spellings (--model for --model-path: the guard treats them as the flag); negation: the --no-
# form. Plain argparse: no '_' for '-'; allow_abbrev accepts unambiguous prefixes (--tp for
# --tp-size) and --config FILE reads further options: kubellm accepts only exact long names.
"""

#: ServerArgs fields kubellm renders or a bypass would change, reported by --parse.
FIELDS = ("model_path", "tokenizer_path", "revision", "trust_remote_code", "load_format",
          "host", "port", "tp_size", "pp_size", "mem_fraction_static", "context_length",
          "quantization", "kv_cache_dtype", "served_model_name", "dist_init_addr", "nnodes",
          "node_rank", "enable_metrics")


def parser() -> argparse.ArgumentParser:
    from sglang.srt.server_args import ServerArgs

    p = argparse.ArgumentParser()
    ServerArgs.add_cli_args(p)
    return p


def parsed(args: list[str]) -> dict[str, Any]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = parser().parse_args(args)
    except SystemExit:
        return {"error": err.getvalue().strip().splitlines()[-1]}
    return {k: getattr(ns, k, None) for k in FIELDS}


def main(argv: list[str]) -> int:
    import sglang

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="write the data file instead of printing it")
    ap.add_argument("--parse", metavar="JSON", help="print what each argument list parses to")
    args = ap.parse_args(argv)
    if args.parse:
        print(json.dumps([parsed(a) for a in json.loads(args.parse)], default=str))
        return 0
    version = str(sglang.__version__)
    text = argparse_flags.render(HEADER.format(version=version), version,
                                 argparse_flags.options(parser(), long_aliases=True))
    return argparse_flags.emit(text, args.write)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
