"""Run ``kubellm.modelinfo.resolve`` for a list of calls in a fresh process; print JSON results.

huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE / HF_HUB_CACHE once at import, so each mode
(online against a server, offline from a cache, Hub down, ...) needs its own process:
``run_resolve(calls, env)`` starts ``python -m hubfixtures.driver`` with that environment, feeds
the calls on stdin and returns one result per call: ``{"facts": {...}}`` (dataclasses.asdict) or
``{"error": "<KubellmError subclass>", "message": ..., "reason": ...}``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_resolve(calls: list[dict[str, Any]], env: dict[str, str],
                timeout: float = 120) -> list[dict[str, Any]]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    full.update({"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
                 "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), str(ROOT / "tests")])})
    full.update(env)
    proc = subprocess.run([sys.executable, "-m", "hubfixtures.driver"], input=json.dumps(calls),
                          capture_output=True, text=True, env=full, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"driver failed ({proc.returncode}):\n{proc.stderr}")
    return list(json.loads(proc.stdout))


def main() -> int:
    from kubellm.api.v1alpha1 import ModelSpec
    from kubellm.errors import KubellmError
    from kubellm.modelinfo import FactsResolver

    resolver = FactsResolver(timeout=float(os.environ.get("KUBELLM_TEST_TIMEOUT", "10")))
    out: list[dict[str, Any]] = []
    for call in json.load(sys.stdin):
        declared = ModelSpec(**call["declared"]) if call.get("declared") else None
        try:
            facts = resolver.resolve(call["repo"], call.get("revision", "main"),
                                     declared=declared, token=call.get("token"),
                                     gguf_file=call.get("gguf_file"),
                                     follow_base=call.get("follow_base", True))
            out.append({"facts": dataclasses.asdict(facts)})
        except KubellmError as exc:
            out.append({"error": type(exc).__name__, "message": str(exc), "reason": exc.reason})
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
