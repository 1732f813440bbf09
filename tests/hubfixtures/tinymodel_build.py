"""Build a tiny, real, random-weight Llama offline (run with the vLLM engine venv's Python).

    <engine venv>/bin/python tests/hubfixtures/tinymodel_build.py OUT_DIR

Writes two repos' files (a vLLM server really loads both):

- ``OUT_DIR/hf/``: the plain Hugging Face layout: ``config.json`` (LlamaForCausalLM, head_dim 32
  for vLLM's CPU attention kernels, vocab 512), ``model.safetensors`` (bf16, seed 0),
  ``generation_config.json``, a byte-level BPE ``tokenizer.json`` trained here with
  ``tokenizers`` on a generated corpus, ``tokenizer_config.json`` with a chat template;
- ``OUT_DIR/mistral/``: Mistral's layout of the same weights: sharded
  ``model-0000N-of-00002.safetensors`` + ``model.safetensors.index.json`` next to
  ``consolidated.safetensors`` (Mistral's own tensor names) and ``params.json``
  (config ``MistralForCausalLM``).

Standalone on purpose: only torch, safetensors and tokenizers (the engine venv has them), no
kubellm import. Deterministic: same seed, same corpus, same bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

VOCAB = 512
HIDDEN = 128
HEADS = 4  # head_dim 32
KV_HEADS = 2
LAYERS = 2
INTERMEDIATE = 256
SPECIAL = ["<unk>", "<s>", "</s>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HIDDEN // HEADS,
    "vocab_size": VOCAB, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2,
}
TEXT = ("kubellm serves tiny models on real pods with a shared cache and a licence policy "
        "the download job fills the volume then vllm starts offline and answers chat requests "
        "hello world one two three four five six seven eight nine ten")
WORDS = TEXT.split(" ")


def corpus() -> list[str]:
    lines = []
    for i in range(400):
        lines.append(" ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(12)))
    return lines


def tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def weights() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * 0.02).to(torch.bfloat16)

    head = HIDDEN // HEADS
    out = {"model.embed_tokens.weight": rand(VOCAB, HIDDEN), "lm_head.weight": rand(VOCAB, HIDDEN),
           "model.norm.weight": torch.ones(HIDDEN, dtype=torch.bfloat16)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        out.update({
            p + "self_attn.q_proj.weight": rand(HEADS * head, HIDDEN),
            p + "self_attn.k_proj.weight": rand(KV_HEADS * head, HIDDEN),
            p + "self_attn.v_proj.weight": rand(KV_HEADS * head, HIDDEN),
            p + "self_attn.o_proj.weight": rand(HIDDEN, HEADS * head),
            p + "mlp.gate_proj.weight": rand(INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": rand(INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": rand(HIDDEN, INTERMEDIATE),
            p + "input_layernorm.weight": torch.ones(HIDDEN, dtype=torch.bfloat16),
            p + "post_attention_layernorm.weight": torch.ones(HIDDEN, dtype=torch.bfloat16),
        })
    return out


MISTRAL_NAMES = {
    "self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
    "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
    "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2",
    "mlp.up_proj": "feed_forward.w3", "input_layernorm": "attention_norm",
    "post_attention_layernorm": "ffn_norm",
}


def mistral_name(name: str) -> str:
    """HF tensor name -> Mistral's consolidated name."""
    fixed = {"model.embed_tokens.weight": "tok_embeddings.weight", "lm_head.weight":
             "output.weight", "model.norm.weight": "norm.weight"}
    if name in fixed:
        return fixed[name]
    name = name.removeprefix("model.")
    for hf, mi in MISTRAL_NAMES.items():
        name = name.replace(hf, mi)
    return name


def common(out: Path, tok: Tokenizer, config: dict[str, object]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 1, "eos_token_id": 2, "max_length": 256}, indent=2) + "\n")
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "model_max_length": 4096, "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
    }, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2) + "\n")


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    tok = tokenizer()
    tensors = weights()
    meta = {"format": "pt"}
    hf = out / "hf"
    common(hf, tok, CONFIG)
    save_file(tensors, str(hf / "model.safetensors"), metadata=meta)

    mi = out / "mistral"
    common(mi, tok, {**CONFIG, "architectures": ["MistralForCausalLM"], "model_type": "mistral"})
    names = sorted(tensors)
    shards = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map: dict[str, str] = {}
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: tensors[n] for n in shard}, str(mi / fname), metadata=meta)
        weight_map.update({n: fname for n in shard})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (mi / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")
    save_file({mistral_name(n): t for n, t in tensors.items()},
              str(mi / "consolidated.safetensors"), metadata=meta)
    (mi / "params.json").write_text(json.dumps({
        "dim": HIDDEN, "n_layers": LAYERS, "head_dim": HIDDEN // HEADS, "hidden_dim": INTERMEDIATE,
        "n_heads": HEADS, "n_kv_heads": KV_HEADS, "norm_eps": 1e-5, "vocab_size": VOCAB,
        "rope_theta": 10000.0,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
