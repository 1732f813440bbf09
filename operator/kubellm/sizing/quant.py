"""Quantization resolution and weight bytes (pure).

``resolve_quant(spec, facts)`` turns ``spec.quantization`` (auto or explicit) and the checkpoint's
facts into the effective ``Quant``; ``weight_bytes(facts, spec, quant)`` says how many bytes of
weights the runtime holds in GPU memory (before the load expansion factor of ``memory.py``).

Rules:
- auto: the checkpoint's ``quantization_config`` (pre-quantized, the runtime detects it), else a
  GGUF file, else none at the checkpoint dtype.
- fp8 on an unquantized checkpoint is on-the-fly FP8 (vLLM ``--quantization fp8``): linear
  layers at 8 bits, embeddings and lm_head stay 16-bit (sizing.md: Llama-70B FP8 ~ 67.7 GiB).
- bitsandbytes on an unquantized checkpoint is on-the-fly 4-bit NF4 (4.5 bits/weight, QLoRA
  paper, without double quantization: the conservative figure).
- awq, gptq, compressed-tensors, mxfp4 need a checkpoint quantized that way: SpecError otherwise.
- gguf needs a ``.gguf`` file; bits per weight by GGUF type (table below) when its size is unknown.
"""

from __future__ import annotations

import re

from kubellm.api.v1alpha1 import LLMDeploymentSpec, parse_parameters
from kubellm.errors import SpecError
from kubellm.facts import ModelFacts, WeightFile
from kubellm.sizing.types import Quant

#: Bits per weight of GGUF types. Q4_K_M/Q5_K_M/Q6_K/Q8_0: llama.cpp tools/quantize/README.md,
#: measured on Llama-3.1-8B (sizing.md). Q2_K..Q5_K_S: the same README's Llama-2-7B table.
#: Q4_0/Q4_1/Q5_0/Q5_1: derived from their 32-weight blocks (e.g. Q4_0 = 16 B + fp16 scale = 4.5).
GGUF_BITS_PER_WEIGHT: dict[str, float] = {
    "Q2_K": 3.35,
    "Q3_K_S": 3.50,
    "Q3_K_M": 3.91,
    "Q3_K_L": 4.27,
    "Q4_0": 4.5,
    "Q4_1": 5.0,
    "Q4_K_S": 4.58,
    "Q4_K_M": 4.8944,
    "Q5_0": 5.5,
    "Q5_1": 6.0,
    "Q5_K_S": 5.52,
    "Q5_K_M": 5.7036,
    "Q6_K": 6.5633,
    "Q8_0": 8.5008,
    "F16": 16.0,
    "BF16": 16.0,
    "F32": 32.0,
}
_GGUF_TYPE = re.compile(
    r"(?<![A-Za-z0-9])(" + "|".join(sorted(GGUF_BITS_PER_WEIGHT, key=len, reverse=True)) + r")"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_GGUF_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)

#: AWQ/GPTQ int4 with group 128: 4 bits + a 16-bit scale and a 4-bit zero per 128 weights.
INT4_GROUP128_BITS = 4.0 + (16 + 4) / 128
#: bitsandbytes NF4 without double quantization (QLoRA paper); 4.127 with it.
NF4_BITS = 4.5
#: MXFP4: 4-bit values + one 8-bit shared exponent per 32 (OCP microscaling spec).
MXFP4_BITS = 4.0 + 8 / 32

_DTYPE_BITS = {
    "float32": 32.0, "fp32": 32.0, "float": 32.0,
    "bfloat16": 16.0, "bf16": 16.0, "float16": 16.0, "fp16": 16.0, "half": 16.0,
}  # fmt: skip

#: Method names in quantization_config -> kubellm's Quant.method.
_METHOD_ALIASES = {
    "awq": "awq", "awq_marlin": "awq",
    "gptq": "gptq", "gptq_marlin": "gptq", "marlin": "gptq",
    "fp8": "fp8", "fbgemm_fp8": "fp8", "modelopt": "fp8",
    "bitsandbytes": "bitsandbytes",
    "compressed-tensors": "compressed-tensors", "compressed_tensors": "compressed-tensors",
    "mxfp4": "mxfp4",
}  # fmt: skip


def checkpoint_bits(facts: ModelFacts) -> float:
    """Bits per weight of the unquantized checkpoint as served (fp32 is served as 16-bit)."""
    arch = facts.architecture
    dtype = (arch.torch_dtype if arch else None) or "bfloat16"
    return min(_DTYPE_BITS.get(dtype.lower(), 16.0), 16.0)


def _dtype_label(facts: ModelFacts) -> str:
    arch = facts.architecture
    dtype = ((arch.torch_dtype if arch else None) or "bfloat16").lower()
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "bf16"}.get(dtype, dtype)


def gguf_type(filename: str) -> str | None:
    """``Meta-Llama-3.1-70B-Instruct-Q4_K_M.gguf`` -> ``Q4_K_M`` (None if not recognised)."""
    match = _GGUF_TYPE.search(filename.rsplit("/", 1)[-1])
    return match.group(1).upper() if match else None


def gguf_files(facts: ModelFacts, spec: LLMDeploymentSpec) -> tuple[WeightFile, ...]:
    """The GGUF file(s) to serve: ``spec.model.file`` (with its split parts), else the Q4_K_M
    variant, else the first in sorted order (the same default as ``kubellm.modelinfo``, which
    downloads that file)."""
    ggufs = sorted(
        (f for f in facts.weight_files if f.path.lower().endswith(".gguf")), key=lambda f: f.path
    )
    chosen = spec.model.file
    if not chosen:
        if not ggufs:
            return ()
        preferred = [f for f in ggufs if gguf_type(f.path) == "Q4_K_M"]
        chosen = (preferred or ggufs)[0].path
    stem = _GGUF_SPLIT.sub("", chosen)
    picked = [f for f in ggufs if f.path == chosen or _GGUF_SPLIT.sub("", f.path) == stem]
    return tuple(picked) or (WeightFile(chosen),)


def _config_quant(facts: ModelFacts) -> Quant | None:
    arch = facts.architecture
    qc = arch.quantization if arch else None
    if qc is None:
        return None
    method = _METHOD_ALIASES.get(qc.method.lower(), qc.method.lower())
    bits = qc.bits
    if method == "gguf":  # kubellm.modelinfo records the chosen GGUF file's type this way
        kind = str(qc.raw.get("type") or "").upper() or None
        if kind is None and facts.weight_files:
            kind = gguf_type(facts.weight_files[0].path)
        per_gguf = GGUF_BITS_PER_WEIGHT.get(kind or "", float(bits or 0))
        return Quant("gguf", per_gguf, from_checkpoint=True, gguf_type=kind)
    if method == "fp8":
        per_weight = 8.0
    elif method in ("awq", "gptq"):
        per_weight = (bits or 4) + (16 + (bits or 4)) / (qc.group_size or 128)
    elif method == "bitsandbytes":
        per_weight = 8.0 if bits == 8 else NF4_BITS
    elif method == "mxfp4":
        per_weight = MXFP4_BITS
    else:
        per_weight = float(bits) if bits else 8.0
    return Quant(method=method, bits_per_weight=round(per_weight, 4), from_checkpoint=True)


def resolve_quant(spec: LLMDeploymentSpec, facts: ModelFacts) -> Quant:
    """The effective quantization for ``spec`` on this checkpoint; SpecError if impossible."""
    requested = spec.quantization
    from_config = _config_quant(facts)
    gguf_chosen = bool(spec.model.file and spec.model.file.lower().endswith(".gguf"))
    is_gguf = facts.is_gguf or gguf_chosen

    if requested == "auto":
        if from_config is not None:
            return from_config
        if is_gguf:
            requested = "gguf"
        else:
            return Quant("none", checkpoint_bits(facts), from_checkpoint=True)

    if requested == "gguf":
        if not is_gguf:
            raise SpecError(
                "spec.quantization",
                f"gguf needs a .gguf file but {facts.repo} has none",
                "use a GGUF repo (and spec.model.file) or quantization auto",
            )
        files = gguf_files(facts, spec)
        kind = gguf_type(files[0].path) if files else None
        bits = GGUF_BITS_PER_WEIGHT.get(kind or "", 0.0)
        if not bits and not all(f.size for f in files):
            raise SpecError(
                "spec.model.file",
                f"cannot tell the GGUF type of {files[0].path if files else '?'} and its size "
                "is unknown",
                f"name a file with a known type ({', '.join(GGUF_BITS_PER_WEIGHT)})",
            )
        return Quant("gguf", bits or 0.0, from_checkpoint=True, gguf_type=kind)

    if requested == "none":
        if from_config is not None:
            raise SpecError(
                "spec.quantization",
                f"none, but the checkpoint is already {from_config.method}-quantized",
                "use quantization auto (or the checkpoint's method), or an unquantized repo",
            )
        return Quant("none", checkpoint_bits(facts), from_checkpoint=True)

    if from_config is not None:
        if from_config.method == requested:
            return from_config
        raise SpecError(
            "spec.quantization",
            f"{requested} requested, but the checkpoint is {from_config.method}-quantized",
            f"use quantization auto or {from_config.method}, or a {requested} checkpoint",
        )
    if is_gguf:
        raise SpecError(
            "spec.quantization",
            f"{requested} requested, but {facts.repo} holds GGUF files",
            "use quantization auto or gguf",
        )
    if requested == "fp8":
        return Quant("fp8", 8.0, from_checkpoint=False)
    if requested == "bitsandbytes":
        return Quant("bitsandbytes", NF4_BITS, from_checkpoint=False)
    raise SpecError(
        "spec.quantization",
        f"{requested} needs a pre-quantized checkpoint and {facts.repo} is not {requested}-"
        "quantized",
        f"pick a {requested} repo (e.g. a *-{requested.upper()} variant), or use fp8 / "
        "bitsandbytes, which quantize on the fly",
    )


def describe(quant: Quant, facts: ModelFacts) -> str:
    """Short label for messages: bf16, fp8, fp8 (on the fly), awq, gguf Q4_K_M ..."""
    if quant.method == "none":
        return _dtype_label(facts)
    if quant.method == "gguf":
        return f"gguf {quant.gguf_type}" if quant.gguf_type else "gguf"
    return quant.method if quant.from_checkpoint else f"{quant.method} (on the fly)"


def parameter_count(facts: ModelFacts, spec: LLMDeploymentSpec) -> int | None:
    if facts.parameters:
        return facts.parameters
    if spec.model.parameters is not None:
        return parse_parameters(spec.model.parameters)
    return None


def embedding_parameters(facts: ModelFacts) -> int:
    """Parameters of the input embedding and lm_head (kept 16-bit by fp8/int4 methods).

    Counted twice (untied) when the config does not say: the conservative choice.
    """
    arch = facts.architecture
    if arch is None or not arch.vocab_size or not arch.hidden_size:
        return 0
    return 2 * arch.vocab_size * arch.hidden_size


def weight_bytes(facts: ModelFacts, spec: LLMDeploymentSpec, quant: Quant) -> int:
    """Bytes of weights resident on the GPUs of one replica (all of them, before expansion).

    Prefers the checkpoint's own bytes (``facts.weight_bytes``; for GGUF the chosen file's size),
    rescaled for on-the-fly quantization; else parameters x bits per weight.
    """
    src_bits = checkpoint_bits(facts)
    params = parameter_count(facts, spec)

    if quant.method == "gguf":
        files = gguf_files(facts, spec)
        sizes = [f.size for f in files]
        if files and all(sizes):
            return sum(s for s in sizes if s)
        if params and quant.bits_per_weight:
            return int(params * quant.bits_per_weight / 8)
        raise _missing_size(facts)

    if facts.weight_bytes and not facts.is_gguf:
        stored = facts.weight_bytes
        if quant.from_checkpoint:
            arch = facts.architecture
            dtype = ((arch.torch_dtype if arch else None) or "").lower()
            if quant.method == "none" and dtype in ("float32", "fp32", "float"):
                return stored // 2  # served as 16-bit
            return stored
        # On-the-fly quantization: linear layers shrink, embeddings/lm_head stay 16-bit.
        emb = min(embedding_parameters(facts) * src_bits / 8, stored)
        return int((stored - emb) * quant.bits_per_weight / src_bits + emb)

    if params:
        if quant.method == "none":
            return int(params * src_bits / 8)
        emb = min(embedding_parameters(facts), params)
        return int((params - emb) * quant.bits_per_weight / 8 + emb * 2)
    raise _missing_size(facts)


def _missing_size(facts: ModelFacts) -> SpecError:
    return SpecError(
        "spec.model.parameters",
        f"the weight size of {facts.repo} is unknown (no checkpoint metadata)",
        "declare the parameter count, e.g. parameters: 8B",
    )
