"""Pure parsing of Hub documents into facts (kubellm.modelinfo.parse): no network, no Hub."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from kubellm.modelinfo import parse


@pytest.mark.parametrize(
    ("card", "tags", "expected"),
    [
        ({"license": "apache-2.0"}, [], ("apache-2.0", None, None)),
        ({"license": "other", "license_name": "qwen", "license_link": "https://x/LICENSE"}, [],
         ("other", "qwen", "https://x/LICENSE")),
        ({}, ["transformers", "license:mit"], ("mit", None, None)),
        ({"license": "Llama3.1"}, ["license:mit"], ("llama3.1", None, None)),  # card wins
        ({"license": ["cc-by-nc-4.0", "apache-2.0"]}, [], ("cc-by-nc-4.0", None, None)),
        ({}, [], (None, None, None)),
    ],
)
def test_licence(card: dict[str, Any], tags: list[str], expected: tuple[Any, ...]) -> None:
    assert parse.licence_from(card, tags) == expected


@pytest.mark.parametrize(
    ("card", "tags", "expected"),
    [
        ({"base_model": "meta-llama/Llama-3.1-8B"},
         ["base_model:finetune:meta-llama/Llama-3.1-8B"],
         [("meta-llama/Llama-3.1-8B", "finetune")]),
        ({"base_model": ["a/x", "b/y"]}, ["base_model:merge:a/x", "base_model:merge:b/y"],
         [("a/x", "merge"), ("b/y", "merge")]),
        ({}, ["base_model:quantized:meta-llama/Llama-3.1-70B-Instruct"],
         [("meta-llama/Llama-3.1-70B-Instruct", "quantized")]),
        ({}, ["base_model:adapter:org/base", "base_model:org/base"], [("org/base", "adapter")]),
        ({"base_model": "org/only-card"}, [], [("org/only-card", "unknown")]),
        ({}, ["base_model:org/bare"], [("org/bare", "unknown")]),
        ({}, ["transformers"], []),
    ],
)
def test_base_models(card: dict[str, Any], tags: list[str],
                     expected: list[tuple[str, str]]) -> None:
    assert parse.base_models_from(card, tags) == expected


@pytest.mark.parametrize(("value", "expected"),
                         [(False, None), (None, None), ("auto", "auto"), ("manual", "manual"),
                          (True, "auto")])
def test_gated(value: Any, expected: str | None) -> None:
    assert parse.gated_from(value) == expected


@pytest.mark.parametrize(
    ("config", "field", "expected"),
    [
        ({"num_attention_heads": 71, "num_kv_heads": 8, "hidden_size": 8192},
         "num_key_value_heads", 8),
        ({"n_head": 71, "multi_query": True, "n_embd": 4544}, "num_key_value_heads", 1),
        ({"n_head": 71, "multi_query": True, "n_embd": 4544}, "hidden_size", 4544),
        ({"num_attention_heads": 32}, "num_key_value_heads", None),
        ({"dtype": "bfloat16"}, "torch_dtype", "bfloat16"),
        ({"torch_dtype": "float16", "dtype": "bfloat16"}, "torch_dtype", "float16"),
        ({"num_local_experts": 8, "num_experts_per_tok": 2}, "num_experts", 8),
        ({"n_routed_experts": 256, "num_experts_per_tok": 8}, "num_experts", 256),
        ({"num_experts": 128}, "num_experts", 128),
        ({"kv_lora_rank": 512, "qk_rope_head_dim": 64}, "is_mla", True),
        ({"text_config": {"num_hidden_layers": 40, "hidden_size": 4096},
          "vision_config": {"hidden_size": 1280}}, "num_hidden_layers", 40),
        ({"text_config": {"num_hidden_layers": 40}, "vision_config": {}}, "multimodal", True),
        ({"num_hidden_layers": 32}, "multimodal", False),
        ({"head_dim": 256, "hidden_size": 3584, "num_attention_heads": 16}, "effective_head_dim",
         256),
    ],
)
def test_architecture(config: dict[str, Any], field: str, expected: Any) -> None:
    assert getattr(parse.architecture_from(config), field) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, ("awq", 4.0, 128)),
        ({"quant_method": "gptq", "bits": 4, "group_size": -1}, ("gptq", 4.0, -1)),
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, ("fp8", 8.0, None)),
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
            "weights": {"num_bits": 8, "type": "float"}}}}, ("compressed-tensors", 8.0, None)),
        ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
            "weights": {"num_bits": 4, "group_size": 128}}}}, ("compressed-tensors", 4.0, 128)),
        ({"quant_method": "bitsandbytes", "load_in_4bit": True}, ("bitsandbytes", 4.0, None)),
        ({"quant_method": "mxfp4"}, ("mxfp4", 4.0, None)),
        ({"load_in_8bit": True, "load_in_4bit": False}, ("bitsandbytes", 8.0, None)),
    ],
)
def test_quantization(raw: dict[str, Any], expected: tuple[Any, ...]) -> None:
    q = parse.quantization_from(raw)
    assert q is not None
    assert (q.method, q.bits, q.group_size) == expected


def test_no_quantization() -> None:
    assert parse.quantization_from(None) is None
    assert parse.quantization_from({"something": 1}) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("Meta-Llama-3.1-8B-Instruct-Q8_0.gguf", "Q8_0"),
        ("qwen2.5-7b-instruct-q5_k_m.gguf", "Q5_K_M"),
        ("Llama-3.3-70B-Instruct-IQ2_M.gguf", "IQ2_M"),
        ("Q6_K/Llama-3.3-70B-Instruct-Q6_K-00001-of-00002.gguf", "Q6_K"),
        ("model-f16.gguf", "F16"),
        ("model.gguf", None),
    ],
)
def test_gguf_type(name: str, expected: str | None) -> None:
    assert parse.gguf_type(name) == expected


@pytest.mark.parametrize(
    ("paths", "wanted", "expected"),
    [
        (["m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-Q2_K.gguf"], None, ["m-Q4_K_M.gguf"]),
        (["m-Q8_0.gguf", "m-Q2_K.gguf"], None, ["m-Q2_K.gguf"]),
        (["m-Q8_0.gguf", "m-Q4_K_M.gguf"], "m-Q8_0.gguf", ["m-Q8_0.gguf"]),
        (["a/m-Q8_0-00001-of-00002.gguf", "a/m-Q8_0-00002-of-00002.gguf", "m-Q4_K_M.gguf"],
         "a/m-Q8_0-00001-of-00002.gguf",
         ["a/m-Q8_0-00001-of-00002.gguf", "a/m-Q8_0-00002-of-00002.gguf"]),
        (["model.safetensors"], None, []),
    ],
)
def test_choose_gguf(paths: list[str], wanted: str | None, expected: list[str]) -> None:
    assert parse.choose_gguf(paths, wanted) == expected


LLAMA_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
            "num_key_value_heads": 8, "num_hidden_layers": 32, "vocab_size": 128256}
LLAMA_70B = {"hidden_size": 8192, "intermediate_size": 28672, "num_attention_heads": 64,
             "num_key_value_heads": 8, "num_hidden_layers": 80, "vocab_size": 128256}


@pytest.mark.parametrize(
    ("config", "low", "high"),
    [
        (LLAMA_8B, 8.02e9, 8.04e9),  # published 8.03B
        (LLAMA_70B, 70.5e9, 70.6e9),  # published 70.6B
        ({**LLAMA_8B, "tie_word_embeddings": True}, 7.49e9, 7.51e9),
    ],
)
def test_estimate_parameters(config: dict[str, Any], low: float, high: float) -> None:
    est = parse.estimate_parameters(config, parse.architecture_from(config))
    assert est is not None and low <= est <= high


def test_estimate_refuses_mla_and_incomplete() -> None:
    mla = {**LLAMA_8B, "kv_lora_rank": 512, "qk_rope_head_dim": 64}
    assert parse.estimate_parameters(mla, parse.architecture_from(mla)) is None
    assert parse.estimate_parameters({"hidden_size": 1}, parse.architecture_from({})) is None


@pytest.mark.parametrize(
    ("counts", "quant", "estimate", "expected"),
    [
        ({"BF16": 100}, None, 90, 100),
        ({"I32": 10, "F16": 5}, {"quant_method": "awq", "bits": 4}, 90, 90),
        ({"I32": 10, "F16": 5}, {"quant_method": "gptq", "bits": 4}, None, None),
        ({"F8_E4M3": 80, "BF16": 20}, {"quant_method": "compressed-tensors", "config_groups":
                                       {"g": {"weights": {"num_bits": 8}}}}, 90, 100),
        ({"F8_E4M3": 80, "BF16": 20}, {"quant_method": "fp8"}, 90, 100),
        ({}, None, 42, 42),
    ],
)
def test_parameters(counts: dict[str, int], quant: dict[str, Any] | None, estimate: int | None,
                    expected: int | None) -> None:
    assert parse.parameters_from(counts, parse.quantization_from(quant), estimate) == expected


def _write_st(path: Path, header: dict[str, Any], data: int) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * data)


def test_safetensors_header(tmp_path: Path) -> None:
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "BF16", "shape": [4, 8], "data_offsets": [0, 64]},
              "b": {"dtype": "I32", "shape": [2], "data_offsets": [64, 72]}}
    _write_st(tmp_path / "m.safetensors", header, 72)
    got = parse.read_safetensors_header(tmp_path / "m.safetensors")
    assert parse.header_stats(got) == ({"BF16": 32, "I32": 2}, 72)


@pytest.mark.parametrize("content", [b"", b"\x01\x02", struct.pack("<Q", 10**12),
                                     struct.pack("<Q", 50) + b"{}"])
def test_safetensors_header_rejects_garbage(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.safetensors").write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.safetensors"):
        parse.read_safetensors_header(tmp_path / "bad.safetensors")


def test_weight_paths_skip_subfolders() -> None:
    assert parse.weight_paths(["b.safetensors", "original/x.safetensors", "a.safetensors",
                               "config.json"]) == ["a.safetensors", "b.safetensors"]
