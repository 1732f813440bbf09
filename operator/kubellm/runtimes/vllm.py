"""vLLM: ``vllm serve`` arguments and environment (pure).

- The model is the repo id at a pinned commit (``--revision`` and ``--tokenizer-revision``, so
  the offline cache lookup never needs a branch ref); for a source whose cache layout vLLM cannot
  read (ModelScope: ``CacheRef.served_model``) the snapshot directory in the cache mount.
- ``--quantization`` only to quantize on the fly (fp8): pre-quantized checkpoints (AWQ, GPTQ,
  FP8, compressed-tensors, MXFP4) are detected by vLLM, which then picks its fastest kernel
  (e.g. Marlin on Ampere+); forcing ``awq`` would disable that. GGUF and bitsandbytes are not in
  the pinned vLLM (out-of-tree plugins since 0.29): refused from runtimes.yaml ``unsupported``.
- GPTQ checkpoints with group activation ordering (``desc_act: true`` and a group size other than
  -1) are refused: vLLM 0.32 raises "GPTQ group activation ordering (desc_act=True) is no longer
  supported" (model_executor/layers/quantization/utils/gptq_utils.py,
  normalize_and_validate_gptq_desc_act, also for per-module ``dynamic`` overrides).
- ``--kv-cache-dtype fp8`` only when the sizing counted on it; ``--pipeline-parallel-size`` only
  when > 1.
- One replica across several nodes (``nodes_per_replica`` > 1): a LeaderWorkerSet whose leader
  runs the Ray head and ``vllm serve --distributed-executor-backend ray`` (tensor parallel inside
  a node, pipeline stages across nodes) and whose workers join its Ray cluster
  (``kubellm.runtimes.lws``).
"""

from __future__ import annotations

import shlex
from typing import Any

from kubellm.errors import UnsupportedError
from kubellm.runtimes.base import RenderContext, Runtime, flag_args

RAY_PORT = 6379  # `ray start --head` default GCS port
RAY_WAIT_SECONDS = 5


class VllmRuntime(Runtime):
    name = "vllm"
    worker_container = "ray-worker"

    def leader_command(self, ctx: RenderContext, server: list[str]) -> dict[str, list[str]]:
        """Ray head, wait for the whole group (``$LWS_GROUP_SIZE`` Ray nodes), exec the server."""
        script = (
            f"ray start --head --port={RAY_PORT} && "
            f'until [ "$(ray status 2>/dev/null | grep -c node_)" -ge "$LWS_GROUP_SIZE" ]; '
            f"do echo waiting for $LWS_GROUP_SIZE Ray nodes; sleep {RAY_WAIT_SECONDS}; done && "
            f"exec {shlex.join(server)}"
        )
        return {"command": ["/bin/sh", "-c"], "args": [script]}

    def worker_command(self, ctx: RenderContext, server: list[str]) -> dict[str, list[str]]:
        """Join the leader's Ray cluster and block."""
        script = f"exec ray start --address=$LWS_LEADER_ADDRESS:{RAY_PORT} --block"
        return {"command": ["/bin/sh", "-c"], "args": [script]}

    def check(self, ctx: RenderContext) -> None:
        super().check(ctx)
        qc = ctx.facts.architecture.quantization if ctx.facts.architecture else None
        if qc is None or qc.method != "gptq" or not _gptq_act_order(qc.raw):
            return
        raise UnsupportedError(
            f"spec.model.repo: {ctx.facts.repo} is a GPTQ checkpoint with group activation "
            "ordering (desc_act: true with group_size "
            f"{qc.raw.get('group_size')}), which vLLM 0.32 no longer loads. Fix: choose a GPTQ "
            "checkpoint with desc_act: false (static activation ordering) or an AWQ one, or set "
            "spec.runtime to tgi."
        )

    def args(self, ctx: RenderContext) -> list[str]:
        info = self.info
        quant = ctx.quant
        flags: dict[str, str | None] = {
            "--distributed-executor-backend": "ray" if ctx.nodes > 1 else None,
            "--gpu-memory-utilization": str(ctx.sizing.memory_utilization),
            "--kv-cache-dtype": info.kv_cache_dtype_flag.get(ctx.sizing.kv_cache_dtype),
            "--max-model-len": (
                str(ctx.sizing.max_model_len) if ctx.sizing.max_model_len else None
            ),
            "--pipeline-parallel-size": str(ctx.pp) if ctx.pp > 1 else None,
            "--port": str(info.port),
            "--quantization": (
                None if quant.from_checkpoint else info.quantize_flag.get(quant.method)
            ),
            "--revision": ctx.revision,
            "--served-model-name": ctx.served_model_name,
            "--tensor-parallel-size": str(ctx.tp),
            "--tokenizer-revision": ctx.revision,
        }
        if info.drain.flag:
            flags[info.drain.flag] = str(info.drain.seconds)
        model = ctx.cache.served_model if ctx.cache and ctx.cache.served_model else ctx.facts.repo
        return [model, *flag_args(flags, ctx.spec.args)]


def _gptq_act_order(raw: dict[str, Any]) -> bool:
    """vLLM's rule: desc_act with a group size other than -1, globally or in a ``dynamic``
    per-module override (patterns starting with ``-:`` exclude modules and do not count)."""
    group = raw.get("group_size")
    if raw.get("desc_act") is True and group != -1:
        return True
    dynamic = raw.get("dynamic")
    if not isinstance(dynamic, dict):
        return False
    for pattern, over in dynamic.items():
        if str(pattern).startswith("-:") or not isinstance(over, dict):
            continue
        acts = over.get("desc_act", raw.get("desc_act")) is True
        if acts and over.get("group_size", group) != -1:
            return True
    return False
