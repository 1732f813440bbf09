"""TGI (text-generation-inference): ``text-generation-launcher`` arguments (pure).

TGI is in maintenance mode upstream (huggingface/text-generation-inference#3345, Dec 2025), so
``runtime: auto`` never picks it; it is rendered only when ``spec.runtime: tgi`` asks for it.
Facts below are TGI v3.3.7's, with their sources in ``data/runtimes.yaml`` and the launcher's
flags in ``data/tgi-launcher.yaml``.

- Args only, no command: the image's entrypoint (``/tgi-entrypoint.sh``: ldconfig, the venv)
  execs the launcher with them. It passes them unquoted (``$@``): spec.args that bash would
  split or glob are refused before rendering (``kubellm.runtimes.guard``, ``word_split``).
- With the cache, ``--model-id`` is the local snapshot directory: the Rust launcher reads
  ``config.json`` through the hf-hub crate before starting the shards, and a local path keeps
  that lookup off the network. Without the cache: the repo id and ``--revision``.
- ``--num-shard`` = tensor parallel degree (TGI has no pipeline parallelism: refused).
- ``--max-total-tokens`` = the sized context, ``--max-input-tokens`` one less (TGI requires
  input < total); ``--cuda-memory-fraction`` = the sized memory utilization (the sizer counts
  the 10 % of it TGI keeps back, TGI_WIGGLE_ROOM).
- ``--max-batch-prefill-tokens`` = ``--max-input-tokens`` when the shard will not chunk prefill
  (gemma3, Qwen2-VL, Qwen2.5-VL, mllama, non-flash models; paged attention below compute
  capability 8.0 for some heads; speculation): the router refuses to start otherwise, and the
  launcher's own default depends on the GPU.
- ``--quantize`` only to quantize on the fly (fp8, bitsandbytes-nf4): pre-quantized checkpoints
  are read from their config (launcher docs).
- A flag spec.args gives replaces kubellm's: the launcher (clap) refuses a flag given twice.
- TGI has no served-model-name option; its OpenAI routes accept any ``model`` value.
"""

from __future__ import annotations

from typing import Any

from kubellm.runtimes.base import MODEL_MOUNT, RenderContext, Runtime, flag_args

_OFF = {"0", "false"}


def _given_flags(args: list[str]) -> set[str]:
    """The ``--flags`` of ``args`` (``--flag=value`` counts as ``--flag``)."""
    return {a.split("=", 1)[0] for a in args if a.startswith("--")}


def _env_value(ctx: RenderContext, name: str) -> str | None:
    for item in ctx.spec.env:
        if isinstance(item, dict) and item.get("name") == name and "value" in item:
            return str(item["value"])
    return None


class TgiRuntime(Runtime):
    name = "tgi"

    def extra_env(self, ctx: RenderContext) -> dict[str, Any]:
        # The launcher's --huggingface-hub-cache reads this name and passes it to the shards.
        return {"HUGGINGFACE_HUB_CACHE": MODEL_MOUNT}

    def chunks_prefill(self, ctx: RenderContext) -> bool:
        """Whether TGI's shard will chunk prefill for this model, GPU, args and env. Facts
        kubellm lacks (no config.json, no head size) count as TGI's usual case, a flash model
        that chunks: the launcher's default stays, where forcing the budget up to the whole
        input would only make the warm-up prefill larger."""
        rule = self.info.prefill_chunking
        arch = ctx.facts.architecture
        if rule is None or arch is None:
            return True
        if arch.model_type in rule.without_chunking:
            return False
        if "--speculate" in _given_flags(ctx.spec.args):
            return False
        if (_env_value(ctx, "PREFILL_CHUNKING") or "1").lower() in _OFF:
            return False
        if (_env_value(ctx, "ATTENTION") or "").lower() == "paged":
            return False
        old_gpu = (
            rule.paged_attention_below_cc is not None
            and ctx.gpu is not None
            and tuple(ctx.gpu.compute_capability) < rule.paged_attention_below_cc
        )
        head_dim = arch.effective_head_dim
        fallback_attention = arch.model_type in rule.fallback_attention_model_types or (
            head_dim is not None and head_dim not in rule.flash_head_dims
        )
        return not (old_gpu and fallback_attention)

    def args(self, ctx: RenderContext) -> list[str]:
        info = self.info
        quant = ctx.quant
        mml = ctx.sizing.max_model_len
        max_input = str(mml - 1) if mml else None
        rule = info.prefill_chunking
        flags: dict[str, str | None] = {
            "--cuda-memory-fraction": str(ctx.sizing.memory_utilization),
            "--kv-cache-dtype": info.kv_cache_dtype_flag.get(ctx.sizing.kv_cache_dtype),
            "--max-input-tokens": max_input,
            "--max-total-tokens": str(mml) if mml else None,
            "--model-id": ctx.cache.model_path if ctx.cache is not None else ctx.facts.repo,
            "--num-shard": str(ctx.tp),
            "--port": str(info.port),
            "--quantize": None if quant.from_checkpoint else info.quantize_flag.get(quant.method),
            "--revision": None if ctx.cache is not None else ctx.revision,
        }
        if rule is not None and max_input is not None and not self.chunks_prefill(ctx):
            flags[rule.flag] = max_input
        for flag in _given_flags(ctx.spec.args) & set(flags):
            flags[flag] = None  # the user's occurrence is the one the launcher accepts
        return flag_args(flags, ctx.spec.args)
