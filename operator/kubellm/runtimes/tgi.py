"""TGI (text-generation-inference): ``text-generation-launcher`` arguments (pure).

TGI is in maintenance mode upstream (huggingface/text-generation-inference#3345, Dec 2025), so
``runtime: auto`` never picks it; it is rendered only when ``spec.runtime: tgi`` asks for it.

- With the cache, ``--model-id`` is the local snapshot directory: the Rust launcher reads
  ``config.json`` through the hf-hub crate before starting the shards, and a local path keeps
  that lookup off the network. Without the cache: the repo id and ``--revision``.
- ``--num-shard`` = tensor parallel degree (TGI has no pipeline parallelism: refused).
- ``--max-total-tokens`` = the sized context, ``--max-input-tokens`` one less (TGI requires
  input < total); ``--cuda-memory-fraction`` = the sized memory utilization.
- ``--quantize`` only to quantize on the fly (fp8, bitsandbytes-nf4): pre-quantized checkpoints
  are read from their config (launcher docs).
- TGI has no served-model-name option; its OpenAI routes accept any ``model`` value.
"""

from __future__ import annotations

from typing import Any

from kubellm.runtimes.base import MODEL_MOUNT, RenderContext, Runtime, flag_args


class TgiRuntime(Runtime):
    name = "tgi"

    def extra_env(self, ctx: RenderContext) -> dict[str, Any]:
        # The launcher's --huggingface-hub-cache reads this name and passes it to the shards.
        return {"HUGGINGFACE_HUB_CACHE": MODEL_MOUNT}

    def args(self, ctx: RenderContext) -> list[str]:
        info = self.info
        quant = ctx.quant
        mml = ctx.sizing.max_model_len
        flags: dict[str, str | None] = {
            "--cuda-memory-fraction": str(ctx.sizing.memory_utilization),
            "--kv-cache-dtype": info.kv_cache_dtype_flag.get(ctx.sizing.kv_cache_dtype),
            "--max-input-tokens": str(mml - 1) if mml else None,
            "--max-total-tokens": str(mml) if mml else None,
            "--model-id": ctx.cache.model_path if ctx.cache is not None else ctx.facts.repo,
            "--num-shard": str(ctx.tp),
            "--port": str(info.port),
            "--quantize": None if quant.from_checkpoint else info.quantize_flag.get(quant.method),
            "--revision": None if ctx.cache is not None else ctx.revision,
        }
        return flag_args(flags, ctx.spec.args)
