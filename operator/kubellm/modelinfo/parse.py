"""Turn Hub documents (card front matter, tags, config.json, safetensors headers, file lists) into
``kubellm.facts`` values. Pure: no huggingface_hub, no I/O except ``read_safetensors_header``.

``read_safetensors_header`` is hand-written (8-byte little-endian length + JSON header) because
huggingface_hub 2.4 parses safetensors headers only over HTTP (``get_safetensors_metadata`` and
``parse_safetensors_file_metadata`` raise ``OfflineModeIsEnabled`` even when the files are cached,
hub-api.md §6), and the ``safetensors`` package would need the whole file to be present.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kubellm.facts import Architecture, BaseModelRef, Claim, QuantizationConfig, WeightFile

RELATIONS = ("quantized", "finetune", "merge", "adapter")
MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors format's own limit

# llama.cpp tools/quantize/README.md bits per weight (measured on Llama-3.1-8B) + nominal ones.
GGUF_BITS: dict[str, float] = {
    "Q2_K": 3.35, "Q3_K_S": 3.5, "Q3_K_M": 3.91, "Q3_K_L": 4.27, "Q4_0": 4.5, "Q4_K_S": 4.58,
    "Q4_K_M": 4.8944, "Q5_0": 5.5, "Q5_K_S": 5.54, "Q5_K_M": 5.7036, "Q6_K": 6.5633,
    "Q8_0": 8.5008, "F16": 16.0, "BF16": 16.0, "F32": 32.0, "IQ2_M": 2.7, "IQ3_M": 3.66,
    "IQ4_XS": 4.25, "IQ4_NL": 4.5,
}
_GGUF_TYPE = re.compile(
    r"(?:^|[-_.])((?:I?Q\d(?:_[A-Z0-9]+)*)|F16|BF16|F32)(?=[-_.])", re.IGNORECASE
)
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


# Bounds of plausible shape numbers: a config.json value outside them (0, negative, 1e30) is
# treated as unknown rather than sized with (a negative layer count would "fit" any GPU).
MAX_DIM = 2**31  # layers, heads, hidden/intermediate size, vocab, positions, experts
MAX_BYTES = 2**53  # tensor data of one checkpoint (8 PiB)


def _dim(value: Any, limit: int = MAX_DIM) -> int | None:
    """A positive integer up to ``limit``, else None (unknown)."""
    number = _int(value)
    return number if number is not None and 0 < number <= limit else None


def _size(value: Any) -> int | None:
    """A byte count (positive, at most MAX_BYTES), else None."""
    return _dim(value, MAX_BYTES)


REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


# ---------------------------------------------------------------- card + tags


def licence_from(card: Mapping[str, Any], tags: Sequence[str]) -> tuple[str | None, str | None,
                                                                          str | None]:
    """(license, license_name, license_link) from the card, else the ``license:*`` tag."""
    lic = card.get("license")
    if isinstance(lic, list):  # a few cards list several ids: keep the first
        lic = lic[0] if lic else None
    license_id = _str(lic)
    if license_id is None:
        license_id = next((t.split(":", 1)[1] for t in tags
                           if isinstance(t, str) and t.startswith("license:")), None)
    license_id = license_id.lower() if license_id else None
    return license_id, _str(card.get("license_name")), _str(card.get("license_link"))


def base_models_from(card: Mapping[str, Any], tags: Sequence[str]) -> list[tuple[str, str]]:
    """[(repo, relation)] from card ``base_model`` (str or list) and ``base_model:*`` tags.

    The relation comes from ``base_model:<relation>:<repo>`` tags; a base named only in the card
    or in a bare ``base_model:<repo>`` tag gets ``unknown`` (the licence engine treats every
    relation alike: the strictest licence in the chain wins).
    """
    relation: dict[str, str] = {}
    order: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.startswith("base_model:"):
            continue
        rest = tag[len("base_model:"):]
        rel, _, repo = rest.partition(":")
        if repo and rel in RELATIONS:
            relation[repo] = rel
            if repo not in order:
                order.append(repo)
        elif rest and ":" not in rest and rest not in order:
            order.append(rest)
    raw = card.get("base_model")
    card_bases = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
    ordered = [b.strip() for b in card_bases if isinstance(b, str) and b.strip()]
    ordered += [r for r in order if r not in ordered]
    # Only repo ids the Hub could serve: anything else in a card is not a base model to fetch.
    valid = [r for r in dict.fromkeys(ordered) if len(r) <= 200 and REPO_ID.match(r)]
    return [(repo, relation.get(repo, "unknown")) for repo in valid]


def gated_from(value: Any) -> str | None:
    """ModelInfo.gated (False | "auto" | "manual") -> None | "auto" | "manual"."""
    if value in (None, False, "", "false", "False"):
        return None
    if value is True:
        return "auto"
    return str(value)


def datasets_from(card: Mapping[str, Any]) -> tuple[str, ...]:
    raw = card.get("datasets")
    items = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return tuple(str(d) for d in items if d)


MAX_CLAIMS = 50  # a card's model-index can list hundreds of results; status stays bounded
MAX_TEXT = 120


def _short(value: Any) -> str | None:
    text = _str(value) if not isinstance(value, int | float) or isinstance(value, bool) else \
        str(value)
    return text[:MAX_TEXT] if text else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) \
        and len(value) <= 2048 else None


def claims_from(card: Mapping[str, Any]) -> tuple[Claim, ...]:
    """The numeric results of the card's ``model-index`` (the Hub's evaluation-results
    metadata: ``- name, results: [{task, dataset, metrics: [{type, value, name, verified}],
    source}]``), at most ``MAX_CLAIMS``. Malformed entries and non-numeric values are skipped:
    a card is user input."""
    out: list[Claim] = []
    index = card.get("model-index")
    for model in index if isinstance(index, list) else []:
        results = model.get("results") if isinstance(model, Mapping) else None
        for result in results if isinstance(results, list) else []:
            if not isinstance(result, Mapping):
                continue
            task, data, source = (_mapping(result.get(k)) for k in ("task", "dataset", "source"))
            benchmark = _short(data.get("name")) or _short(data.get("type"))
            metrics = result.get("metrics")
            for metric in metrics if isinstance(metrics, list) else []:
                if not isinstance(metric, Mapping) or not benchmark:
                    continue
                value = metric.get("value")
                if isinstance(value, str):
                    try:
                        value = float(value.strip().rstrip("%"))
                    except ValueError:
                        continue
                if isinstance(value, bool) or not isinstance(value, int | float) or \
                        value != value or value in (float("inf"), float("-inf")):
                    continue
                name = _short(metric.get("name")) or _short(metric.get("type"))
                if not name:
                    continue
                out.append(Claim(
                    benchmark=benchmark, metric=name, value=float(value),
                    task=_short(task.get("name")) or _short(task.get("type")),
                    split=_short(data.get("split")), source=_short(source.get("name")),
                    url=_url(source.get("url")),
                    verified=metric.get("verified") is True))
                if len(out) >= MAX_CLAIMS:
                    return tuple(out)
    return tuple(out)


def card_tags(card: Mapping[str, Any]) -> list[str]:
    """Tags a card declares (used offline, where the API's derived tags are unavailable)."""
    raw = card.get("tags")
    tags = [str(t) for t in raw] if isinstance(raw, list) else []
    if card.get("license"):
        tags.append(f"license:{card['license']}")
    return tags


# ---------------------------------------------------------------- config.json


def _group(value: Any) -> int | None:
    """A quantization group size: positive, or -1 (GPTQ's per-channel)."""
    number = _int(value)
    return number if number == -1 else _dim(number)


def quantization_from(raw: Any) -> QuantizationConfig | None:
    """``quantization_config`` -> QuantizationConfig (method, bits, group_size)."""
    if not isinstance(raw, Mapping):
        return None
    method = _str(raw.get("quant_method")) or ("bitsandbytes" if "load_in_4bit" in raw else None)
    if method is None:
        return None
    method = method.lower()
    bits: float | None = None
    group: int | None = _group(raw.get("group_size", raw.get("q_group_size")))
    for key in ("bits", "w_bit", "weight_bits", "num_bits"):
        if _dim(raw.get(key), 64) is not None:
            bits = float(raw[key])
            break
    if method == "bitsandbytes" and bits is None:
        bits = 4.0 if raw.get("load_in_4bit") else 8.0 if raw.get("load_in_8bit") else None
    if method in ("fp8", "fbgemm_fp8") and bits is None:
        bits = 8.0
    if method == "mxfp4" and bits is None:
        bits = 4.0
    groups = raw.get("config_groups")
    if isinstance(groups, Mapping):  # compressed-tensors: first group's weight scheme
        for group_cfg in groups.values():
            weights = group_cfg.get("weights") if isinstance(group_cfg, Mapping) else None
            if isinstance(weights, Mapping):
                if bits is None and _dim(weights.get("num_bits"), 64) is not None:
                    bits = float(weights["num_bits"])
                if group is None:
                    group = _group(weights.get("group_size"))
                break
    return QuantizationConfig(method=method, bits=bits, group_size=group, raw=dict(raw))


def architecture_from(config: Mapping[str, Any]) -> Architecture:
    """config.json -> Architecture; multimodal models read their ``text_config``."""
    text: Mapping[str, Any] = config
    multimodal = False
    for key in ("text_config", "llm_config", "language_config"):
        if isinstance(config.get(key), Mapping):
            text = {**config[key]}
            break
    if any(isinstance(config.get(k), Mapping) for k in ("vision_config", "audio_config")):
        multimodal = True

    def get(*keys: str) -> Any:
        for key in keys:
            if text.get(key) is not None:
                return text[key]
            if config.get(key) is not None:
                return config[key]
        return None

    heads = _dim(get("num_attention_heads", "n_head", "num_heads"))
    kv = _dim(get("num_key_value_heads", "num_kv_heads", "n_head_kv"))
    if kv is None and get("multi_query") is True:
        kv = 1
    dtype = _str(_text(text.get("torch_dtype")) or _text(text.get("dtype"))
                 or _text(config.get("torch_dtype")) or _text(config.get("dtype")))
    archs = config.get("architectures") or text.get("architectures") or []
    return Architecture(
        model_type=_str(_text(config.get("model_type"))),
        architectures=tuple(a for a in archs if isinstance(a, str))
        if isinstance(archs, list) else (),
        num_hidden_layers=_dim(get("num_hidden_layers", "n_layer", "num_layers")),
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=_dim(get("head_dim")),
        hidden_size=_dim(get("hidden_size", "n_embd", "d_model")),
        intermediate_size=_dim(get("intermediate_size", "ffn_hidden_size")),
        vocab_size=_dim(get("vocab_size")),
        max_position_embeddings=_dim(get("max_position_embeddings", "n_positions",
                                         "max_sequence_length", "seq_length")),
        torch_dtype=dtype,
        quantization=quantization_from(config.get("quantization_config")
                                       or text.get("quantization_config")),
        num_experts=_dim(get("num_local_experts", "n_routed_experts", "num_experts")),
        num_experts_per_tok=_dim(get("num_experts_per_tok", "moe_topk")),
        kv_lora_rank=_dim(get("kv_lora_rank")),
        qk_rope_head_dim=_dim(get("qk_rope_head_dim")),
        multimodal=multimodal,
    )


def _text(value: Any) -> str | None:
    """A string field of config.json (anything else is as good as absent)."""
    return value if isinstance(value, str) else None


def estimate_parameters(config: Mapping[str, Any], arch: Architecture) -> int | None:
    """A dense/MoE decoder's parameter count from its shape (None when the shape is unknown).

    Used for packed checkpoints (AWQ/GPTQ store 8 int4 values per I32, so header counts are
    wrong). Counts embeddings, attention (q/k/v/o), a gated MLP (3 matrices; x experts for MoE)
    and lm_head unless tied; ignores norms and biases (< 0.01 %). MLA models are not estimated.
    """
    h, layers, heads, vocab = (arch.hidden_size, arch.num_hidden_layers,
                               arch.num_attention_heads, arch.vocab_size)
    inter = arch.intermediate_size
    if not (h and layers and heads and vocab and inter) or arch.is_mla:
        return None
    hd = arch.effective_head_dim or h // heads
    kv = arch.effective_kv_heads or heads
    attn = h * heads * hd * 2 + h * kv * hd * 2
    mlp = 3 * h * inter
    if arch.num_experts:
        text = config.get("text_config") if isinstance(config.get("text_config"), Mapping) else {}
        moe_inter = _dim((text or config).get("moe_intermediate_size")) or inter
        mlp = 3 * h * moe_inter * arch.num_experts + h * arch.num_experts
    tied = config.get("tie_word_embeddings", False) is True
    return layers * (attn + mlp) + vocab * h * (1 if tied else 2)


# ---------------------------------------------------------------- safetensors


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a local .safetensors file (reads 8 + N bytes, never the tensors)."""
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) != 8:
            raise ValueError(f"{path.name}: not a safetensors file (shorter than 8 bytes)")
        (size,) = struct.unpack("<Q", prefix)
        if size > MAX_SAFETENSORS_HEADER:
            raise ValueError(f"{path.name}: safetensors header of {size} bytes is implausible")
        raw = f.read(size)
    if len(raw) != size:
        raise ValueError(f"{path.name}: truncated safetensors header")
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{path.name}: safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path.name}: safetensors header is not a JSON object")
    return header


def header_stats(header: Mapping[str, Any]) -> tuple[dict[str, int], int]:
    """(parameters per dtype, tensor data bytes) of one safetensors header.

    A ValueError names the first tensor entry that is not ``{dtype: str, shape: [int >= 0],
    data_offsets: [begin, end]}`` with ``0 <= begin <= end`` (the safetensors format)."""
    counts: dict[str, int] = {}
    data = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(t, Mapping):
            raise ValueError(f"tensor {name!r}: not a mapping")
        dtype, shape, offsets = t.get("dtype"), t.get("shape"), t.get("data_offsets")
        dims = [_int(d) for d in shape] if isinstance(shape, list) else None
        ends = [_int(o) for o in offsets] if isinstance(offsets, list) else None
        if not isinstance(dtype, str) or dims is None or any(d is None or d < 0 for d in dims):
            raise ValueError(f"tensor {name!r}: dtype {dtype!r} / shape {shape!r} malformed")
        if ends is None or len(ends) != 2 or ends[0] is None or ends[1] is None \
                or not 0 <= ends[0] <= ends[1] <= MAX_BYTES:
            raise ValueError(f"tensor {name!r}: data_offsets {offsets!r} malformed")
        n = 1
        for d in dims:
            n *= d  # type: ignore[operator]
        counts[dtype] = counts.get(dtype, 0) + n
        data += ends[1] - ends[0]
    return counts, data


def counts_from(raw: Any) -> dict[str, int] | None:
    """Parameters per dtype as the Hub reports them (``safetensors.parameters``); None unless
    every entry is a dtype name with a non-negative integer count."""
    if not isinstance(raw, Mapping) or not raw:
        return None
    out: dict[str, int] = {}
    for dtype, count in raw.items():
        number = _int(count)
        if not isinstance(dtype, str) or number is None or not 0 <= number <= MAX_BYTES:
            return None
        out[dtype] = number
    return out


DTYPE_BYTES: dict[str, int] = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
    "U16": 2, "I8": 1, "U8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "BOOL": 1,
}


def bytes_from_counts(counts: Mapping[str, int]) -> int | None:
    """Tensor data bytes from element counts per stored dtype (None if a dtype is unknown)."""
    if not counts or any(d not in DTYPE_BYTES for d in counts):
        return None
    return sum(n * DTYPE_BYTES[d] for d, n in counts.items())


PACKED_METHODS = ("awq", "gptq", "bitsandbytes", "mxfp4", "compressed-tensors")


def parameters_from(counts: Mapping[str, int], quant: QuantizationConfig | None,
                    estimate: int | None) -> int | None:
    """Parameter count from header dtype counts, unless the checkpoint packs several values per
    element (AWQ/GPTQ I32, bnb/mxfp4 U8, compressed-tensors int4): then the shape estimate."""
    if not counts:
        return estimate
    packed = quant is not None and quant.method in PACKED_METHODS and (
        quant.method != "compressed-tensors" or (quant.bits or 8) < 8
    )
    if packed:
        return estimate
    return sum(counts.values())


def weight_paths(paths: Iterable[str]) -> list[str]:
    """The safetensors weight files of a checkpoint (top level only; ``original/`` etc. skipped)."""
    return sorted(p for p in paths if p.endswith(".safetensors") and "/" not in p)


# ---------------------------------------------------------------- GGUF


def gguf_type(filename: str) -> str | None:
    """``Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf`` -> ``Q4_K_M``."""
    name = filename.rsplit("/", 1)[-1]
    found = _GGUF_TYPE.findall(_SPLIT.sub(".gguf", name))
    return found[-1].upper() if found else None


def choose_gguf(paths: Iterable[str], wanted: str | None) -> list[str]:
    """The .gguf file(s) to serve: ``wanted`` (with its split siblings), else Q4_K_M, else the
    first in sorted order. Returns [] when the repo has no .gguf file."""
    ggufs = sorted(p for p in paths if p.endswith(".gguf"))
    if not ggufs:
        return []
    if wanted:
        chosen = wanted
    else:
        preferred = [p for p in ggufs if gguf_type(p) == "Q4_K_M"]
        chosen = (preferred or ggufs)[0]
    m = _SPLIT.search(chosen)
    if m:
        stem = chosen[: m.start()]
        return [p for p in ggufs if p.startswith(stem) and _SPLIT.search(p)]
    return [chosen]


def gguf_quantization(files: Sequence[str]) -> QuantizationConfig | None:
    qtype = gguf_type(files[0]) if files else None
    if not files:
        return None
    return QuantizationConfig(method="gguf", bits=GGUF_BITS.get(qtype or ""),
                              raw={"type": qtype} if qtype else {})


def base_refs(pairs: Sequence[tuple[str, str]]) -> tuple[BaseModelRef, ...]:
    return tuple(BaseModelRef(repo=r, relation=rel) for r, rel in pairs)


def weight_files(pairs: Iterable[tuple[str, int | None]]) -> tuple[WeightFile, ...]:
    return tuple(WeightFile(path=p, size=s) for p, s in sorted(pairs))
