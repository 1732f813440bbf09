"""vLLM: ``vllm serve`` arguments and environment (pure).

- The model is the repo id at a pinned commit (``--revision`` and ``--tokenizer-revision``, so
  the offline cache lookup never needs a branch ref); GGUF is the local .gguf file in the cache.
- ``--quantization`` only to quantize on the fly (fp8, bitsandbytes): pre-quantized checkpoints
  (AWQ, GPTQ, FP8, compressed-tensors, MXFP4, GGUF) are detected by vLLM, which then picks its
  fastest kernel (e.g. Marlin on Ampere+); forcing ``awq`` would disable that.
- ``--kv-cache-dtype fp8`` only when the sizing counted on it; ``--pipeline-parallel-size`` only
  when > 1.
- One replica across several nodes (``nodes_per_replica`` > 1): a LeaderWorkerSet whose leader
  runs the Ray head and ``vllm serve --distributed-executor-backend ray`` (tensor parallel inside
  a node, pipeline stages across nodes) and whose workers join its Ray cluster
  (``kubellm.runtimes.lws``).
"""

from __future__ import annotations

import re
from typing import Any

from kubellm.errors import UnsupportedError
from kubellm.runtimes import lws
from kubellm.runtimes.base import RenderContext, Runtime, flag_args

_SPLIT_GGUF = re.compile(r"-\d{5}-of-\d{5}\.gguf$")


class VllmRuntime(Runtime):
    name = "vllm"
    multi_node = True

    def render(self, ctx: RenderContext) -> list[dict[str, Any]]:
        """[Deployment, Service], or [LeaderWorkerSet, Service] when a replica spans nodes."""
        if ctx.nodes > 1:
            return lws.render(self, ctx)
        return super().render(ctx)

    def check(self, ctx: RenderContext) -> None:
        super().check(ctx)
        cache = ctx.cache
        if (
            ctx.quant.method == "gguf"
            and cache is not None
            and (len(cache.files) > 1 or _SPLIT_GGUF.search(cache.files[0] if cache.files else ""))
        ):
            raise UnsupportedError(
                f"spec.model.file: vLLM loads single-file GGUF only, and {ctx.facts.repo} splits "
                f"it into {len(cache.files)} parts. Fix: choose a single-file quantization in "
                f"spec.model.file, or merge the parts (llama.cpp gguf-split --merge) into a repo."
            )

    def args(self, ctx: RenderContext) -> list[str]:
        info = self.info
        quant = ctx.quant
        local_gguf = quant.method == "gguf" and ctx.cache is not None
        model = ctx.cache.gguf_file if local_gguf and ctx.cache else None
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
            "--revision": None if local_gguf else ctx.revision,
            "--served-model-name": ctx.served_model_name,
            "--tensor-parallel-size": str(ctx.tp),
            "--tokenizer-revision": None if local_gguf else ctx.revision,
        }
        return [model or ctx.facts.repo, *flag_args(flags, ctx.spec.args)]
