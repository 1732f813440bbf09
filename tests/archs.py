"""Architectures of real models (config.json shapes), shared by tests and benchmarks.

Values from the models' config.json as published on the Hub (see tests/data/sizing_cases.json for
the cited ones).
"""

from __future__ import annotations

from kubellm.facts import Architecture

LLAMA_8B = Architecture(
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    hidden_size=4096,
    vocab_size=128256,
    max_position_embeddings=131072,
    torch_dtype="bfloat16",
)
LLAMA_70B = Architecture(
    num_hidden_layers=80,
    num_attention_heads=64,
    num_key_value_heads=8,
    head_dim=128,
    hidden_size=8192,
    vocab_size=128256,
    max_position_embeddings=131072,
    torch_dtype="bfloat16",
)
LLAMA_405B = Architecture(
    num_hidden_layers=126,
    num_attention_heads=128,
    num_key_value_heads=8,
    head_dim=128,
    hidden_size=16384,
    vocab_size=128256,
    max_position_embeddings=131072,
    torch_dtype="bfloat16",
)
DEEPSEEK_V3 = Architecture(
    num_hidden_layers=61,
    num_attention_heads=128,
    num_key_value_heads=128,
    hidden_size=7168,
    kv_lora_rank=512,
    qk_rope_head_dim=64,
    vocab_size=129280,
    max_position_embeddings=163840,
)
FALCON_40B = Architecture(
    num_hidden_layers=60, num_attention_heads=128, num_key_value_heads=8, hidden_size=8192
)
FALCON_7B_MQA = Architecture(
    num_hidden_layers=32, num_attention_heads=71, num_key_value_heads=1, hidden_size=4544
)
QWEN2_1_5B = Architecture(
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    hidden_size=1536,
    head_dim=128,
)
GEMMA2_9B = Architecture(
    num_hidden_layers=42,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=256,
    hidden_size=3584,
)

QWEN2_5_7B = Architecture(
    model_type="qwen2",
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    head_dim=128,
    hidden_size=3584,
    vocab_size=152064,
    max_position_embeddings=32768,
    torch_dtype="bfloat16",
)
