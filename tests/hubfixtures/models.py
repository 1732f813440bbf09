"""A catalogue of realistic fake Hub repos for tests (no gigabytes written or sent).

Each ``FakeRepo`` carries what the Hub would answer: card front matter (README.md), config.json
(shapes copied from the real configs), tags as the Hub derives them, gating, and files.
Weight files are *virtual*: a safetensors shard is its real JSON header (declaring the real tensor
names, dtypes and shapes, generated from the config) followed by zeros up to the real size; a GGUF
file is the ``GGUF`` magic followed by zeros. ``FakeFile.read(start, end)`` materialises any byte
range, so the server can answer Range requests and ``cache.py`` can write sparse files.
Sizes therefore match the real checkpoints to within a few per cent (Llama-3.3-70B bf16:
131.4 GiB, Llama-3.1-8B: 14.96 GiB, Qwen2.5-7B: 14.19 GiB, as in sizing_cases.json).

Only the tiny ``kubellm-test/*`` repos have small, fully real contents (for download tests).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "BOOL": 1}
TORCH_TO_ST = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}
SHARD_BYTES = 5_000_000_000  # the Hub's usual max shard size (transformers' 5GB default)

Tensor = tuple[str, str, tuple[int, ...]]  # name, safetensors dtype, shape


def _sha(text: str, n: int = 40) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


@dataclass(frozen=True)
class FakeFile:
    """One repo file. ``head`` is its real leading bytes; the rest (up to ``size``) is zeros."""

    path: str
    size: int
    head: bytes = b""

    @staticmethod
    def small(path: str, content: bytes | str) -> FakeFile:
        data = content.encode() if isinstance(content, str) else content
        return FakeFile(path, len(data), data)

    @property
    def is_lfs(self) -> bool:
        return self.path.endswith((".safetensors", ".gguf", ".bin")) or self.size > 10_000_000

    @property
    def git_oid(self) -> str:
        return _sha(f"blob {self.path} {self.size} {hashlib.sha256(self.head).hexdigest()}")

    @property
    def sha256(self) -> str:
        """The ETag: the real sha256 for small files, a stable stand-in for virtual ones."""
        if self.size == len(self.head):
            return hashlib.sha256(self.head).hexdigest()
        return _sha(f"lfs {self.path} {self.size} {hashlib.sha256(self.head).hexdigest()}", 64)

    def read(self, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of the virtual content."""
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return b""
        part = self.head[start:end]
        return part + b"\0" * (end - start - len(part))


@dataclass(frozen=True)
class FakeRepo:
    repo_id: str
    card: dict[str, Any]  # README.md front matter
    files: tuple[FakeFile, ...]
    config: dict[str, Any] | None = None
    gated: bool | str = False
    library_name: str | None = "transformers"
    pipeline_tag: str | None = "text-generation"
    extra_tags: tuple[str, ...] = ()
    readme_body: str = "\n# Model card\n"
    note: str = ""  # why this repo is in the catalogue
    parameters_hint: int | None = None  # the real parameter count (documentation for tests)
    commit: str = ""  # tells commits of one repo apart (HubServer.push): part of the sha

    @property
    def sha(self) -> str:
        return _sha("commit " + self.repo_id + (f" {self.commit}" if self.commit else ""))

    @property
    def author(self) -> str:
        return self.repo_id.split("/")[0]

    def file(self, path: str) -> FakeFile | None:
        return next((f for f in self.files if f.path == path), None)

    @property
    def tags(self) -> list[str]:
        """Tags as the Hub derives them from the card, the library and the files."""
        tags: list[str] = []
        if self.library_name:
            tags.append(self.library_name)
        if any(f.path.endswith(".safetensors") for f in self.files):
            tags.append("safetensors")
        if any(f.path.endswith(".gguf") for f in self.files):
            tags.append("gguf")
        if self.config and self.config.get("model_type"):
            tags.append(str(self.config["model_type"]))
        tags += [str(t) for t in self.card.get("tags", [])]
        tags += list(self.extra_tags)
        for lang in self.card.get("language", []) or []:
            tags.append(str(lang))
        bases = self.card.get("base_model")
        for base in [bases] if isinstance(bases, str) else (bases or []):
            tags.append(f"base_model:{base}")
        if self.card.get("license"):
            tags.append(f"license:{self.card['license']}")
        tags.append("region:us")
        seen: dict[str, None] = {}
        for t in tags:
            seen.setdefault(t, None)
        return list(seen)

    @property
    def readme(self) -> bytes:
        front = yaml.safe_dump(self.card, sort_keys=False, allow_unicode=True)
        return f"---\n{front}---\n{self.readme_body}".encode()

    def all_files(self) -> tuple[FakeFile, ...]:
        """The files including the generated README.md and config.json, sorted by path."""
        out = {f.path: f for f in self.files}
        out["README.md"] = FakeFile.small("README.md", self.readme)
        out[".gitattributes"] = FakeFile.small(".gitattributes", "*.safetensors filter=lfs\n")
        if self.config is not None:
            out["config.json"] = FakeFile.small("config.json", json.dumps(self.config, indent=2))
        return tuple(out[k] for k in sorted(out))

    def safetensors_parameters(self) -> dict[str, int]:
        """Parameters per dtype, as the Hub's ``safetensors`` field reports them."""
        counts: dict[str, int] = {}
        for f in self.files:
            if f.path.endswith(".safetensors"):
                header = _read_header(f)
                for name, t in header.items():
                    if name == "__metadata__":
                        continue
                    n = 1
                    for d in t["shape"]:
                        n *= d
                    counts[t["dtype"]] = counts.get(t["dtype"], 0) + n
        return counts


def _read_header(f: FakeFile) -> dict[str, Any]:
    (n,) = struct.unpack("<Q", f.head[:8])
    return dict(json.loads(f.head[8 : 8 + n]))


# ---------------------------------------------------------------- safetensors generation


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _linear(name: str, out_f: int, in_f: int, dtype: str, quant: dict[str, Any] | None,
            bias: bool = False) -> list[Tensor]:
    """The tensors of one nn.Linear as a checkpoint stores them (plain, AWQ, GPTQ or FP8)."""
    tensors: list[Tensor]
    method = (quant or {}).get("quant_method")
    if method == "awq":  # packed int4 along the output dim: 8 values per int32
        g = int(quant["group_size"])  # type: ignore[index]
        tensors = [(f"{name}.qweight", "I32", (in_f, out_f // 8)),
                   (f"{name}.qzeros", "I32", (in_f // g, out_f // 8)),
                   (f"{name}.scales", "F16", (in_f // g, out_f))]
    elif method == "gptq":  # packed int4 along the input dim
        g = int(quant["group_size"])  # type: ignore[index]
        tensors = [(f"{name}.qweight", "I32", (in_f // 8, out_f)),
                   (f"{name}.qzeros", "I32", (in_f // g, out_f // 8)),
                   (f"{name}.scales", "F16", (in_f // g, out_f)),
                   (f"{name}.g_idx", "I32", (in_f,))]
    elif method == "compressed-tensors":  # fp8 W8A8, per-tensor scales
        tensors = [(f"{name}.weight", "F8_E4M3", (out_f, in_f)),
                   (f"{name}.weight_scale", "BF16", (1,)),
                   (f"{name}.input_scale", "BF16", (1,))]
    else:
        tensors = [(f"{name}.weight", dtype, (out_f, in_f))]
    if bias:
        tensors.append((f"{name}.bias", "F16" if method in ("awq", "gptq") else dtype, (out_f,)))
    return tensors


def decoder_tensors(cfg: dict[str, Any], *, fused: bool = False, qk_norm: bool = False,
                    qkv_bias: bool = False) -> list[Tensor]:
    """Tensors of a Llama-style decoder from its config (what transformers would save)."""
    dtype = TORCH_TO_ST[cfg.get("torch_dtype", "bfloat16")]
    quant = cfg.get("quantization_config")
    h, inter, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    hd = cfg.get("head_dim") or h // heads
    out: list[Tensor] = [("model.embed_tokens.weight", dtype, (vocab, h))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        if fused:
            out += _linear(f"{p}.self_attn.qkv_proj", (heads + 2 * kv) * hd, h, dtype, quant)
        else:
            out += _linear(f"{p}.self_attn.q_proj", heads * hd, h, dtype, quant, qkv_bias)
            out += _linear(f"{p}.self_attn.k_proj", kv * hd, h, dtype, quant, qkv_bias)
            out += _linear(f"{p}.self_attn.v_proj", kv * hd, h, dtype, quant, qkv_bias)
        out += _linear(f"{p}.self_attn.o_proj", h, heads * hd, dtype, quant)
        if fused:
            out += _linear(f"{p}.mlp.gate_up_proj", 2 * inter, h, dtype, quant)
        else:
            out += _linear(f"{p}.mlp.gate_proj", inter, h, dtype, quant)
            out += _linear(f"{p}.mlp.up_proj", inter, h, dtype, quant)
        out += _linear(f"{p}.mlp.down_proj", h, inter, dtype, quant)
        norm_dtype = "F16" if quant and quant.get("quant_method") in ("awq", "gptq") else dtype
        if quant and quant.get("quant_method") == "compressed-tensors":
            norm_dtype = "BF16"
        out.append((f"{p}.input_layernorm.weight", norm_dtype, (h,)))
        out.append((f"{p}.post_attention_layernorm.weight", norm_dtype, (h,)))
        if qk_norm:
            out.append((f"{p}.self_attn.q_norm.weight", dtype, (heads * hd,)))
            out.append((f"{p}.self_attn.k_norm.weight", dtype, (kv * hd,)))
    out.append(("model.norm.weight", dtype, (h,)))
    if not cfg.get("tie_word_embeddings", False):
        lm_dtype = "F16" if quant and quant.get("quant_method") in ("awq", "gptq") else dtype
        if quant and quant.get("quant_method") == "compressed-tensors":
            lm_dtype = "BF16"
        out.append(("lm_head.weight", lm_dtype, (vocab, h)))
    if quant and quant.get("quant_method") in ("awq", "gptq"):  # embeddings stay fp16
        out[0] = ("model.embed_tokens.weight", "F16", (vocab, h))
    return out


def _header(tensors: Sequence[Tensor]) -> tuple[bytes, int]:
    """The safetensors header bytes (length prefix included) and the data size."""
    meta: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape in tensors:
        nbytes = _numel(shape) * DTYPE_BYTES[dtype]
        meta[name] = {"dtype": dtype, "shape": list(shape),
                      "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(meta, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(raw)) + raw, offset


def safetensors_files(tensors: Sequence[Tensor], *, shard_bytes: int = SHARD_BYTES,
                      prefix: str = "model") -> tuple[FakeFile, ...]:
    """Shard tensors like transformers (``model-0000i-of-0000n.safetensors`` + index)."""
    shards: list[list[Tensor]] = [[]]
    size = 0
    for t in tensors:
        nbytes = _numel(t[2]) * DTYPE_BYTES[t[1]]
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += nbytes
    if len(shards) == 1:
        head, data = _header(shards[0])
        return (FakeFile(f"{prefix}.safetensors", len(head) + data, head),)
    files: list[FakeFile] = []
    weight_map: dict[str, str] = {}
    total = 0
    n = len(shards)
    for i, shard in enumerate(shards, 1):
        name = f"{prefix}-{i:05d}-of-{n:05d}.safetensors"
        head, data = _header(shard)
        total += data
        files.append(FakeFile(name, len(head) + data, head))
        for t in shard:
            weight_map[t[0]] = name
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    files.append(FakeFile.small(f"{prefix}.safetensors.index.json", json.dumps(index, indent=2)))
    return tuple(files)


def gguf_file(path: str, size: int) -> FakeFile:
    """A GGUF file: magic, version 3, zero tensors and zero metadata, then zeros."""
    return FakeFile(path, size, b"GGUF" + struct.pack("<IQQ", 3, 0, 0))


def _small_files(*extra: FakeFile) -> tuple[FakeFile, ...]:
    common = (
        FakeFile.small("generation_config.json", '{"do_sample": true, "temperature": 0.6}\n'),
        FakeFile.small("tokenizer_config.json", '{"model_max_length": 131072}\n'),
        FakeFile.small("tokenizer.json", '{"version": "1.0", "model": {"type": "BPE"}}\n'),
    )
    return common + extra


# ---------------------------------------------------------------- configs (real shapes)

LLAMA31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": False,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256,
}
LLAMA31_70B: dict[str, Any] = {**LLAMA31_8B, "hidden_size": 8192, "intermediate_size": 28672,
                               "num_attention_heads": 64, "num_hidden_layers": 80}
LLAMA33_70B: dict[str, Any] = {**LLAMA31_70B, "transformers_version": "4.47.0.dev0"}
AWQ_CONFIG = {"bits": 4, "group_size": 128, "modules_to_not_convert": None, "quant_method": "awq",
              "version": "gemm", "zero_point": True}
GPTQ_CONFIG = {"bits": 4, "damp_percent": 0.01, "desc_act": True, "group_size": 128,
               "is_marlin_format": False, "quant_method": "gptq", "static_groups": False,
               "sym": True, "true_sequential": True}
FP8_CONFIG = {
    "config_groups": {"group_0": {
        "input_activations": {"dynamic": False, "num_bits": 8, "strategy": "tensor",
                              "symmetric": True, "type": "float"},
        "targets": ["Linear"],
        "weights": {"dynamic": False, "num_bits": 8, "strategy": "tensor", "symmetric": True,
                    "type": "float"}}},
    "format": "naive-quantized", "ignore": ["lm_head"], "quant_method": "compressed-tensors",
    "quantization_status": "frozen",
}
QWEN25_7B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584,
    "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
    "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28,
    "num_key_value_heads": 4, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "sliding_window": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.1", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 152064,
}
QWEN25_72B: dict[str, Any] = {**QWEN25_7B, "hidden_size": 8192, "intermediate_size": 29568,
                              "num_attention_heads": 64, "num_hidden_layers": 80,
                              "num_key_value_heads": 8, "max_window_layers": 80}
MISTRAL_LARGE: dict[str, Any] = {
    "architectures": ["MistralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
    "eos_token_id": 2, "head_dim": 128, "hidden_act": "silu", "hidden_size": 12288,
    "intermediate_size": 28672, "max_position_embeddings": 131072, "model_type": "mistral",
    "num_attention_heads": 96, "num_hidden_layers": 88, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": None,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 32768,
}
OLMO2_7B: dict[str, Any] = {
    "architectures": ["Olmo2ForCausalLM"], "attention_bias": False, "eos_token_id": 100257,
    "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 11008,
    "max_position_embeddings": 4096, "model_type": "olmo2", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 32, "pad_token_id": 100277,
    "rms_norm_eps": 1e-06, "rope_theta": 500000, "tie_word_embeddings": False,
    "torch_dtype": "float32", "vocab_size": 100352,
}
PHI3_MINI: dict[str, Any] = {
    "architectures": ["Phi3ForCausalLM"], "bos_token_id": 1, "eos_token_id": 32000,
    "hidden_act": "silu", "hidden_size": 3072, "intermediate_size": 8192,
    "max_position_embeddings": 4096, "model_type": "phi3", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05, "sliding_window": 2047, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "vocab_size": 32064,
}
MLLAMA_11B_TEXT: dict[str, Any] = {
    "model_type": "mllama_text_model", "hidden_size": 4096, "intermediate_size": 14336,
    "num_attention_heads": 32, "num_hidden_layers": 40, "num_key_value_heads": 8,
    "max_position_embeddings": 131072, "vocab_size": 128256, "rope_theta": 500000.0,
    "torch_dtype": "bfloat16", "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
}
MLLAMA_11B: dict[str, Any] = {
    "architectures": ["MllamaForConditionalGeneration"], "model_type": "mllama",
    "torch_dtype": "bfloat16", "image_token_index": 128256,
    "text_config": {**MLLAMA_11B_TEXT, "vocab_size": 128264},
    "vision_config": {"model_type": "mllama_vision_model", "hidden_size": 1280,
                      "image_size": 560, "num_hidden_layers": 32, "num_global_layers": 8,
                      "patch_size": 14, "vision_output_dim": 7680},
}
DEEPSEEK_V2_LITE: dict[str, Any] = {
    "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
    "hidden_size": 2048, "intermediate_size": 10944, "moe_intermediate_size": 1408,
    "num_attention_heads": 16, "num_key_value_heads": 16, "num_hidden_layers": 27,
    "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
    "first_k_dense_replace": 1, "kv_lora_rank": 512, "q_lora_rank": None,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "max_position_embeddings": 163840, "vocab_size": 102400, "torch_dtype": "bfloat16",
    "tie_word_embeddings": False,
}
TINY: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
    "max_position_embeddings": 2048, "model_type": "llama", "num_attention_heads": 4,
    "num_hidden_layers": 2, "num_key_value_heads": 2, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "vocab_size": 256,
}


def _with_quant(cfg: dict[str, Any], quant: dict[str, Any], dtype: str) -> dict[str, Any]:
    return {**cfg, "quantization_config": quant, "torch_dtype": dtype}


def _blob_tensors(total_params: int, dtype: str, prefix: str, parts: int) -> list[Tensor]:
    """Opaque tensors summing to ``total_params`` (for architectures not generated exactly)."""
    each = total_params // parts
    out: list[Tensor] = [(f"{prefix}.{i}.weight", dtype, (each,)) for i in range(parts - 1)]
    out.append((f"{prefix}.{parts - 1}.weight", dtype, (total_params - each * (parts - 1),)))
    return out


def _llama_card(lic: str, base: str | list[str] | None = None, **extra: Any) -> dict[str, Any]:
    card: dict[str, Any] = {
        "language": ["en", "de", "fr", "it", "pt", "hi", "es", "th"],
        "license": lic, "pipeline_tag": "text-generation",
        "tags": ["facebook", "meta", "pytorch", "llama", "llama-3"],
        "extra_gated_prompt": "### LLAMA 3.1 COMMUNITY LICENSE AGREEMENT ...",
        "extra_gated_fields": {"First Name": "text", "Last Name": "text", "Country": "country"},
    }
    if base is not None:
        card["base_model"] = base
    card.update(extra)
    return card


def _gguf_sizes(params: int) -> dict[str, int]:
    """File sizes from llama.cpp's bits per weight (tools/quantize/README.md, Llama-3.1-8B)."""
    bpw = {"Q4_K_M": 4.8944, "Q5_K_M": 5.7036, "Q6_K": 6.5633, "Q8_0": 8.5008}
    return {k: int(params * v / 8) for k, v in bpw.items()}


def _build() -> dict[str, FakeRepo]:
    repos: list[FakeRepo] = []
    add = repos.append
    llama_8b_files = safetensors_files(decoder_tensors(LLAMA31_8B))
    add(FakeRepo("meta-llama/Llama-3.1-8B", _llama_card("llama3.1"), _small_files(*llama_8b_files),
                 LLAMA31_8B, gated="auto", parameters_hint=8_030_261_248,
                 note="base of the 8B instruct and of the DeepSeek R1 distill"))
    add(FakeRepo("meta-llama/Llama-3.1-8B-Instruct",
                 _llama_card("llama3.1", "meta-llama/Llama-3.1-8B"),
                 _small_files(*llama_8b_files), LLAMA31_8B, gated="auto",
                 extra_tags=("base_model:finetune:meta-llama/Llama-3.1-8B", "conversational"),
                 parameters_hint=8_030_261_248, note="gated auto, llama3.1; 14.96 GiB"))
    add(FakeRepo("meta-llama/Llama-3.1-70B-Instruct", _llama_card("llama3.1"),
                 _small_files(*safetensors_files(decoder_tensors(LLAMA31_70B))), LLAMA31_70B,
                 gated="auto", parameters_hint=70_553_706_496,
                 note="base of the AWQ and FP8 quantizations"))
    add(FakeRepo("meta-llama/Llama-3.3-70B-Instruct",
                 _llama_card("llama3.3", "meta-llama/Llama-3.1-70B"),
                 _small_files(*safetensors_files(decoder_tensors(LLAMA33_70B))), LLAMA33_70B,
                 gated="auto", extra_tags=("base_model:finetune:meta-llama/Llama-3.1-70B",),
                 parameters_hint=70_553_706_496,
                 note="131.4 GiB bf16; its base meta-llama/Llama-3.1-70B is NOT in the catalogue "
                      "(an unresolvable base: resolved=False)"))
    add(FakeRepo("meta-llama/Llama-3.2-11B-Vision-Instruct",
                 _llama_card("llama3.2", "meta-llama/Llama-3.2-11B-Vision",
                             extra_gated_eu_disallowed=True),
                 _small_files(*safetensors_files(
                     decoder_tensors({**MLLAMA_11B_TEXT, "torch_dtype": "bfloat16"})
                     + _blob_tensors(895_000_000, "BF16", "vision_model.blocks", 4))),
                 MLLAMA_11B, gated="manual", pipeline_tag="image-text-to-text",
                 extra_tags=("base_model:finetune:meta-llama/Llama-3.2-11B-Vision",),
                 parameters_hint=10_670_220_835,
                 note="multimodal (text_config + vision_config), extra_gated_eu_disallowed, "
                      "gated manual; the vision tower is opaque tensors"))
    awq_cfg = _with_quant(LLAMA31_70B, AWQ_CONFIG, "float16")
    add(FakeRepo("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
                 {"base_model": "meta-llama/Llama-3.1-70B-Instruct", "language": ["en"],
                  "library_name": "transformers", "license": "llama3.1",
                  "pipeline_tag": "text-generation",
                  "tags": ["llama-3.1", "meta", "autoawq"]},
                 _small_files(*safetensors_files(decoder_tensors(awq_cfg))), awq_cfg,
                 extra_tags=("base_model:quantized:meta-llama/Llama-3.1-70B-Instruct",
                             "4-bit", "awq"),
                 parameters_hint=70_553_706_496,
                 note="AWQ int4 g128: I32-packed qweight, header parameter counts are wrong"))
    fp8_cfg = _with_quant(LLAMA31_70B, FP8_CONFIG, "bfloat16")
    add(FakeRepo("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8",
                 {"language": ["en"], "license": "llama3.1", "pipeline_tag": "text-generation",
                  "tags": ["fp8", "vllm"], "base_model": "meta-llama/Llama-3.1-70B-Instruct"},
                 _small_files(*safetensors_files(decoder_tensors(fp8_cfg))), fp8_cfg,
                 extra_tags=("base_model:quantized:meta-llama/Llama-3.1-70B-Instruct",),
                 parameters_hint=70_553_706_496,
                 note="compressed-tensors fp8 W8A8, about 67.7 GiB"))
    gptq_cfg = _with_quant(LLAMA31_8B, GPTQ_CONFIG, "float16")
    add(FakeRepo("hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4",
                 {"base_model": "meta-llama/Llama-3.1-8B-Instruct", "language": ["en"],
                  "library_name": "transformers", "license": "llama3.1",
                  "pipeline_tag": "text-generation", "tags": ["llama-3.1", "meta", "autogptq"]},
                 _small_files(*safetensors_files(decoder_tensors(gptq_cfg))), gptq_cfg,
                 extra_tags=("base_model:quantized:meta-llama/Llama-3.1-8B-Instruct",
                             "4-bit", "gptq"),
                 parameters_hint=8_030_261_248, note="GPTQ int4 g128"))
    gguf = _gguf_sizes(8_030_261_248)
    add(FakeRepo("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
                 {"base_model": "meta-llama/Llama-3.1-8B-Instruct", "language": ["en"],
                  "license": "llama3.1", "pipeline_tag": "text-generation",
                  "tags": ["facebook", "meta", "pytorch", "llama", "llama-3"],
                  "quantized_by": "bartowski"},
                 (*(gguf_file(f"Meta-Llama-3.1-8B-Instruct-{q}.gguf", s)
                    for q, s in sorted(gguf.items())),
                  FakeFile.small("Meta-Llama-3.1-8B-Instruct.imatrix", b"imatrix")),
                 None, library_name=None,
                 extra_tags=("base_model:quantized:meta-llama/Llama-3.1-8B-Instruct",
                             "imatrix", "conversational"),
                 note="GGUF repo: no config.json, several .gguf files (Q4_K_M 4.9 GB)"))
    qwen7_files = _small_files(*safetensors_files(decoder_tensors(QWEN25_7B, qkv_bias=True)),
                               FakeFile.small("LICENSE", "Apache License 2.0\n"))
    add(FakeRepo("Qwen/Qwen2.5-7B", {"license": "apache-2.0", "language": ["en"],
                                     "pipeline_tag": "text-generation",
                                     "license_link": "https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/LICENSE"},
                 qwen7_files, {**QWEN25_7B, "architectures": ["Qwen2ForCausalLM"]},
                 parameters_hint=7_615_616_512))
    add(FakeRepo("Qwen/Qwen2.5-7B-Instruct",
                 {"license": "apache-2.0",
                  "license_link": "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/LICENSE",
                  "language": ["en"], "pipeline_tag": "text-generation",
                  "base_model": "Qwen/Qwen2.5-7B", "tags": ["chat"],
                  "library_name": "transformers"},
                 qwen7_files, QWEN25_7B,
                 extra_tags=("base_model:finetune:Qwen/Qwen2.5-7B", "conversational"),
                 parameters_hint=7_615_616_512, note="apache-2.0, 14.19 GiB"))
    # Qwen's own GPTQ quantization: static activation ordering (desc_act false), which vLLM 0.32
    # still loads (config.json of Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4).
    qwen_gptq_cfg = _with_quant(QWEN25_7B, {**GPTQ_CONFIG, "desc_act": False,
                                            "model_file_base_name": "model"}, "float16")
    add(FakeRepo("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4",
                 {"license": "apache-2.0",
                  "license_link": "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4/blob/main/LICENSE",
                  "language": ["en"], "pipeline_tag": "text-generation",
                  "base_model": "Qwen/Qwen2.5-7B-Instruct", "tags": ["chat"],
                  "library_name": "transformers"},
                 _small_files(*safetensors_files(decoder_tensors(qwen_gptq_cfg, qkv_bias=True))),
                 qwen_gptq_cfg, extra_tags=("base_model:quantized:Qwen/Qwen2.5-7B-Instruct",
                                            "4-bit", "gptq"),
                 parameters_hint=7_615_616_512, note="GPTQ int4 g128, desc_act false"))
    add(FakeRepo("Qwen/Qwen2.5-72B-Instruct",
                 {"license": "other", "license_name": "qwen",
                  "license_link": "https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/LICENSE",
                  "language": ["en"], "pipeline_tag": "text-generation",
                  "base_model": "Qwen/Qwen2.5-72B", "tags": ["chat"],
                  "library_name": "transformers"},
                 _small_files(*safetensors_files(decoder_tensors(QWEN25_72B, qkv_bias=True))),
                 QWEN25_72B, extra_tags=("base_model:finetune:Qwen/Qwen2.5-72B",),
                 parameters_hint=72_706_203_648,
                 note="other/qwen; base Qwen/Qwen2.5-72B not in the catalogue"))
    add(FakeRepo("deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
                 {"license": "mit", "library_name": "transformers",
                  "base_model": "meta-llama/Llama-3.1-8B"},
                 _small_files(*safetensors_files(decoder_tensors(LLAMA31_8B))),
                 {**LLAMA31_8B, "eos_token_id": 128001},
                 extra_tags=("base_model:finetune:meta-llama/Llama-3.1-8B", "conversational"),
                 parameters_hint=8_030_261_248,
                 note="tagged mit but its base is llama3.1 (strictest licence wins)"))
    add(FakeRepo("mistralai/Mistral-Large-Instruct-2407",
                 {"language": ["en", "fr", "de", "es", "it", "pt", "zh", "ja", "ru", "ko"],
                  "license": "other", "license_name": "mrl",
                  "license_link": "https://mistral.ai/licenses/MRL-0.1.md",
                  "extra_gated_description": "If you want to learn more about how we process "
                                             "your personal data, please read our Privacy Policy.",
                  "library_name": "vllm", "tags": ["mistral-common"]},
                 _small_files(*safetensors_files(decoder_tensors(MISTRAL_LARGE))), MISTRAL_LARGE,
                 gated="auto", library_name="vllm", parameters_hint=122_610_069_504,
                 note="other/mrl research licence, gated"))
    add(FakeRepo("allenai/OLMo-2-1124-7B",
                 {"license": "apache-2.0", "language": ["en"], "library_name": "transformers",
                  "datasets": ["allenai/olmo-mix-1124", "allenai/dolmino-mix-1124"]},
                 _small_files(*safetensors_files(decoder_tensors(OLMO2_7B, qk_norm=True))),
                 OLMO2_7B, parameters_hint=7_298_617_344,
                 note="fully open (datasets listed), float32 checkpoint"))
    add(FakeRepo("microsoft/Phi-3-mini-4k-instruct",
                 {"license": "mit",
                  "license_link": "https://huggingface.co/microsoft/Phi-3-mini-4k-instruct/resolve/main/LICENSE",
                  "language": ["en", "fr"], "pipeline_tag": "text-generation",
                  "tags": ["nlp", "code"]},
                 _small_files(*safetensors_files(decoder_tensors(PHI3_MINI, fused=True))),
                 PHI3_MINI, extra_tags=("custom_code",), parameters_hint=3_821_079_552,
                 note="mit, fused qkv/gate_up tensors"))
    add(FakeRepo("deepseek-ai/DeepSeek-V2-Lite-Chat",
                 {"license": "other", "license_name": "deepseek",
                  "license_link": "https://github.com/deepseek-ai/DeepSeek-V2/blob/main/LICENSE-MODEL"},
                 _small_files(*safetensors_files(
                     _blob_tensors(15_706_484_224, "BF16", "model.layers", 8))),
                 DEEPSEEK_V2_LITE, extra_tags=("custom_code",), parameters_hint=15_706_484_224,
                 note="MoE (64 routed experts, 6 per token) + MLA (kv_lora_rank 512); opaque "
                      "tensors"))
    tiny_tensors = decoder_tensors(TINY)
    tiny_files = (*safetensors_files(tiny_tensors),
                  FakeFile.small("tokenizer.json", '{"version": "1.0"}\n'),
                  FakeFile.small("generation_config.json", '{"max_length": 64}\n'),
                  FakeFile.small("original/notes.txt", "not needed by vLLM\n"))
    add(FakeRepo("kubellm-test/tiny-llama", {"license": "apache-2.0", "language": ["en"]},
                 tiny_files, TINY, note="tiny real files (~0.2 MB) for download tests"))
    add(FakeRepo("kubellm-test/tiny-gated", {"license": "llama3.1"}, tiny_files, TINY,
                 gated="manual", note="tiny gated repo for download tests (token hf_good)"))
    # Mistral's layout: sharded HF weights + index next to consolidated.safetensors (the same
    # weights in Mistral's own format) and params.json; vLLM must load the HF shards.
    mistral_files = (*safetensors_files(tiny_tensors, shard_bytes=64 * 1024),
                     *safetensors_files(tiny_tensors, prefix="consolidated"),
                     FakeFile.small("params.json", '{"dim": 64, "n_layers": 2}\n'),
                     FakeFile.small("tokenizer.json", '{"version": "1.0"}\n'))
    add(FakeRepo("kubellm-test/tiny-mistral", {"license": "apache-2.0"}, mistral_files,
                 {**TINY, "architectures": ["MistralForCausalLM"], "model_type": "mistral"},
                 extra_tags=("mistral-common",),
                 note="tiny Mistral-style layout: model-*.safetensors + index + consolidated"))
    return {r.repo_id: r for r in repos}


CATALOGUE: dict[str, FakeRepo] = _build()


def get_repo(repo_id: str) -> FakeRepo:
    return CATALOGUE[repo_id]
