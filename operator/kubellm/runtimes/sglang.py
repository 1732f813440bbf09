"""SGLang: ``python3 -m sglang.launch_server`` arguments (pure).

Facts are SGLang 0.5.23's, with their sources in ``data/runtimes.yaml``; every option of its
parser is in ``data/sglang-server.yaml`` (tests/engines/sglang_flags.py writes it from
``ServerArgs.add_cli_args``), and tests/engines parses each rendering with that parser.

- ``--model-path`` is the repo id at a pinned commit (``--revision``, which the tokenizer loads at
  too: managers/tokenizer_manager.py, so no ``--tokenizer-*`` flag): SGLang resolves it through
  huggingface_hub in ``HF_HUB_CACHE`` (the read-only cache mount, ``HF_HUB_OFFLINE=1``); for a
  source served by path (``CacheRef.served_model``) the snapshot directory.
- ``--host 0.0.0.0`` (SGLang binds 127.0.0.1 by default, which the kubelet's probes and the
  Service cannot reach) and ``--port`` from the catalogue; ``--enable-metrics`` so the
  ``/metrics`` the pod annotations advertise exists.
- ``--mem-fraction-static`` is the share of the GPU for weights + KV cache only (activations and
  CUDA graphs come out of the rest), so kubellm passes the sized utilization minus the sizer's
  per-GPU overhead: ``(usable - overhead) / memory``. The KV pool SGLang then allocates is the
  room the sizer left for it, and the whole process stays inside spec.gpu.memoryUtilization.
  Without the sizer's breakdown the utilization itself is passed.
- ``--context-length`` = the sized context; ``--tp-size``, ``--pp-size`` (when > 1);
  ``--quantization`` only to quantize on the fly (fp8); ``--kv-cache-dtype fp8_e4m3`` when the
  sizing counted on an FP8 KV cache.
- One replica across nodes: every pod of the LeaderWorkerSet runs the server, joined by SGLang's
  own rendezvous (``--dist-init-addr $LWS_LEADER_ADDRESS:PORT --nnodes N --node-rank I``, no
  Ray); only rank 0 (the leader) serves HTTP, so the workers have no probes.
"""

from __future__ import annotations

import shlex

from kubellm.datafiles import load_mapping
from kubellm.runtimes.base import RenderContext, Runtime, flag_args


class SglangRuntime(Runtime):
    name = "sglang"

    def mem_fraction_static(self, ctx: RenderContext) -> float:
        """The GPU share for weights + KV cache: the sized budget less the sizer's overhead."""
        usable, overhead = ctx.sizing.gpu_memory_gib, ctx.sizing.overhead_gib
        utilization = ctx.sizing.memory_utilization
        if not usable or overhead is None or overhead >= usable:
            return utilization
        return round(utilization * (usable - overhead) / usable, 3)

    def args(self, ctx: RenderContext) -> list[str]:
        info = self.info
        quant = ctx.quant
        mml = ctx.sizing.max_model_len
        flags: dict[str, str | None] = {
            "--context-length": str(mml) if mml else None,
            "--host": "0.0.0.0",
            "--kv-cache-dtype": info.kv_cache_dtype_flag.get(ctx.sizing.kv_cache_dtype),
            "--mem-fraction-static": str(self.mem_fraction_static(ctx)),
            "--model-path": (
                ctx.cache.served_model if ctx.cache and ctx.cache.served_model else ctx.facts.repo
            ),
            "--port": str(info.port),
            "--pp-size": str(ctx.pp) if ctx.pp > 1 else None,
            "--quantization": (
                None if quant.from_checkpoint else info.quantize_flag.get(quant.method)
            ),
            "--revision": ctx.revision,
            "--served-model-name": ctx.served_model_name,
            "--tp-size": str(ctx.tp),
        }
        return ["--enable-metrics", *flag_args(flags, ctx.spec.args)]

    def _rank(self, ctx: RenderContext, server: list[str], rank: str) -> dict[str, list[str]]:
        port = load_mapping("runtimes.yaml")["runtimes"][self.name]["dist_init_port"]
        script = (
            f'exec {shlex.join(server)} --dist-init-addr "$LWS_LEADER_ADDRESS:{port}" '
            f"--nnodes {ctx.nodes} --node-rank {rank}"
        )
        return {"command": ["/bin/sh", "-c"], "args": [script]}

    def leader_command(self, ctx: RenderContext, server: list[str]) -> dict[str, list[str]]:
        """Node rank 0: the rendezvous host and the only HTTP server of the group."""
        return self._rank(ctx, server, "0")

    def worker_command(self, ctx: RenderContext, server: list[str]) -> dict[str, list[str]]:
        """Node rank ``$LWS_WORKER_INDEX`` (1..N-1, set by the LWS controller)."""
        return self._rank(ctx, server, '"$LWS_WORKER_INDEX"')
