"""Read one repo's facts from the Hub (online) or from a standard HF cache (offline).

Online: ``HfApi.model_info(files_metadata=True)`` (card data, tags, gating, sha, file sizes, the
Hub's safetensors parameter counts), then ``hf_hub_download`` of ``config.json`` and
``model.safetensors.index.json`` at the resolved sha; ``get_safetensors_metadata`` only when the
Hub did not report safetensors parameters. README.md is read (``ModelCard``) only when the API
returned no ``cardData``.

Offline: ``refs/<revision>`` -> sha, ``snapshots/<sha>/``: README.md via ``ModelCard.load`` (a
local path), config.json, the index, the cached shards' headers (``parse.read_safetensors_header``)
and the .gguf files' sizes. Gating is unknown offline (None): the weights are already local.
The snapshot is located by hand (refs/<revision> -> snapshots/<sha>) because its files must be
listed, and huggingface_hub's only offline listing (``scan_cache_dir``) scans the whole cache.

Derived facts, the same in both modes:
- ``weight_bytes``: tensor data bytes = index ``metadata.total_size``, else the sum of the
  headers' ``data_offsets``, else element counts x dtype size, else the files' sizes. GGUF: the
  chosen file(s)' sizes.
- ``parameters``: header element counts, except for packed checkpoints (AWQ/GPTQ I32 holding 8
  int4 values, bitsandbytes/mxfp4 U8, compressed-tensors < 8 bit) where the counts are wrong:
  then the estimate from config.json's shape (``parse.estimate_parameters``; None for MLA or an
  incomplete config). GGUF repos: None (no header parsing; use spec.model.parameters).
- GGUF repos: ``architecture`` is config.json's when present, else an Architecture holding only
  ``quantization`` (method ``gguf``, bits per weight, ``raw["type"]`` e.g. Q4_K_M).
- ``base_models`` relations come from ``base_model:<relation>:`` tags; without them (offline)
  they are inferred as the Hub does: adapter files, several bases (merge), quantized, finetune.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from kubellm.errors import SpecError
from kubellm.facts import Architecture, ModelFacts
from kubellm.modelinfo import _hub, parse

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
INDEX = "model.safetensors.index.json"


def _facts(repo: str, revision: str, sha: str | None, card: dict[str, Any], tags: list[str],
           *, gated: str | None, config: dict[str, Any] | None, files: dict[str, int | None],
           counts: dict[str, int] | None, data_bytes: int | None, total_size: int | None,
           gguf_file: str | None, library: str | None, pipeline: str | None,
           source: str) -> ModelFacts:
    lic, lic_name, lic_link = parse.licence_from(card, tags)
    arch = parse.architecture_from(config) if config else None
    ggufs = parse.choose_gguf(files, gguf_file) if (gguf_file or not parse.weight_paths(files)) \
        else []
    if gguf_file and gguf_file not in files:
        available = ", ".join(sorted(p for p in files if p.endswith(".gguf"))) or "none"
        raise SpecError("spec.model.file", f"{gguf_file!r} is not a file of {repo}@{revision}",
                        f"choose one of: {available}")
    weights: list[str]
    params: int | None = None
    if ggufs:
        weights = ggufs
        quant = parse.gguf_quantization(ggufs)
        arch = Architecture(quantization=quant) if arch is None else \
            dataclasses.replace(arch, quantization=quant)
        sizes = [files.get(p) for p in ggufs]
        weight_bytes = sum(s for s in sizes if s) if all(s is not None for s in sizes) else None
    else:
        weights = parse.weight_paths(files)
        estimate = parse.estimate_parameters(config, arch) if config and arch else None
        params = parse.parameters_from(counts or {}, arch.quantization if arch else None, estimate)
        sizes = [files.get(p) for p in weights]
        weight_bytes = total_size or data_bytes or parse.bytes_from_counts(counts or {}) or (
            sum(s for s in sizes if s) if weights and all(s is not None for s in sizes) else None)
    return ModelFacts(
        repo=repo, revision=revision, sha=sha, license=lic, license_name=lic_name,
        license_link=lic_link, tags=tuple(tags), gated=gated,
        eu_disallowed=card.get("extra_gated_eu_disallowed") is True,
        base_models=parse.base_refs(infer_relations(parse.base_models_from(card, tags), files,
                                                     arch)),
        datasets=parse.datasets_from(card), architecture=arch, weight_bytes=weight_bytes,
        parameters=params, weight_files=parse.weight_files((p, files.get(p)) for p in weights),
        library_name=library or parse._str(card.get("library_name")),
        pipeline_tag=pipeline or parse._str(card.get("pipeline_tag")), source=source,
    )


def infer_relations(pairs: list[tuple[str, str]], files: dict[str, int | None],
                     arch: Architecture | None) -> list[tuple[str, str]]:
    """Fill ``unknown`` relations as the Hub derives them when it has no tag to say (offline
    caches have no API tags): adapter files -> adapter, several bases -> merge, a quantized
    checkpoint -> quantized, else finetune."""
    if "adapter_config.json" in files:
        guess = "adapter"
    elif len(pairs) > 1:
        guess = "merge"
    elif arch is not None and arch.quantization is not None:
        guess = "quantized"
    else:
        guess = "finetune"
    return [(repo, guess if rel == "unknown" else rel) for repo, rel in pairs]


# ---------------------------------------------------------------- online


def _card_dict(data: Any) -> dict[str, Any]:
    """CardData (huggingface_hub, untyped) -> plain dict; {} for None."""
    if data is None:
        return {}
    out = data.to_dict()
    return dict(out) if isinstance(out, dict) else {}


def _download_json(repo: str, filename: str, sha: str, token: str | None,
                   timeout: float) -> dict[str, Any]:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo, filename, revision=sha, token=token, etag_timeout=timeout)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}


def hub_card(repo: str, revision: str, token: str | None,
             timeout: float) -> tuple[dict[str, Any], list[str], str | None, str | None]:
    """(card, tags, gated, sha) from model_info only (used for base models)."""
    from huggingface_hub import HfApi

    info = HfApi(token=token).model_info(repo, revision=revision, timeout=timeout)
    card = _card_dict(info.card_data)
    return card, list(info.tags or []), parse.gated_from(info.gated), info.sha


def from_hub(repo: str, revision: str, *, token: str | None, gguf_file: str | None,
             timeout: float) -> ModelFacts:
    from huggingface_hub import (
        HfApi,
        ModelCard,
        get_hf_file_metadata,
        hf_hub_download,
        hf_hub_url,
    )
    from huggingface_hub.errors import (
        GatedRepoError,
        NotASafetensorsRepoError,
        SafetensorsParsingError,
    )

    api = HfApi(token=token)
    info = api.model_info(repo, revision=revision, files_metadata=True, timeout=timeout)
    sha = info.sha or revision
    files: dict[str, int | None] = {s.rfilename: s.size for s in (info.siblings or [])}
    tags = list(info.tags or [])
    gated = parse.gated_from(info.gated)
    if gated and files:
        # model_info is public for gated repos and files cached on disk are returned without a
        # request, so check the token explicitly (a HEAD; raises GatedRepoError without access).
        probe = "config.json" if "config.json" in files else sorted(files)[0]
        try:
            get_hf_file_metadata(
                hf_hub_url(repo, probe, revision=sha), token=token, timeout=timeout
            )
        except GatedRepoError:
            # The card (licence, base_model) is public: keep it so the licence can still be
            # decided (a research-only model is denied for its licence, not for a missing
            # token); the files stay unread and access_error says why.
            public = _facts(repo, revision, sha, _card_dict(info.card_data), tags, gated=gated,
                            config=None, files=files, counts=None, data_bytes=None,
                            total_size=None, gguf_file=gguf_file, library=info.library_name,
                            pipeline=info.pipeline_tag, source="hub")
            return dataclasses.replace(public, access_error=f"{repo}: {_hub.GATED_FIX}")
    if info.card_data is not None:
        card = _card_dict(info.card_data)
    elif "README.md" in files:
        readme = hf_hub_download(repo, "README.md", revision=sha, token=token,
                                 etag_timeout=timeout)
        card = _card_dict(ModelCard.load(Path(readme)).data)
    else:
        card = {}
    config = _download_json(repo, "config.json", sha, token, timeout) \
        if "config.json" in files else None
    counts: dict[str, int] | None = None
    data_bytes: int | None = None
    total_size: int | None = None
    use_gguf = bool(gguf_file) or not parse.weight_paths(files)
    if not use_gguf:
        if INDEX in files:
            index = _download_json(repo, INDEX, sha, token, timeout)
            meta = index.get("metadata") if isinstance(index.get("metadata"), dict) else {}
            total_size = parse._int((meta or {}).get("total_size"))
        if info.safetensors is not None and info.safetensors.parameters:
            counts = {str(k): int(v) for k, v in info.safetensors.parameters.items()}
        else:
            try:
                st = api.get_safetensors_metadata(repo, revision=sha, token=token)
            except (NotASafetensorsRepoError, SafetensorsParsingError):
                st = None
            if st is not None:
                counts = {str(k): int(v) for k, v in st.parameter_count.items()}
                data_bytes = sum(t.data_offsets[1] - t.data_offsets[0]
                                 for fm in st.files_metadata.values()
                                 for t in fm.tensors.values())
    return _facts(repo, revision, sha, card, tags, gated=gated,
                  config=config, files=files, counts=counts, data_bytes=data_bytes,
                  total_size=total_size, gguf_file=gguf_file, library=info.library_name,
                  pipeline=info.pipeline_tag, source="hub")


# ---------------------------------------------------------------- offline (HF cache)


def cached_snapshot(repo: str, revision: str, cache: Path) -> tuple[str, Path] | None:
    """(sha, snapshot dir) of a cached repo revision, or None on a cache miss."""
    storage = cache / ("models--" + repo.replace("/", "--"))
    sha: str | None = None
    if SHA_RE.match(revision) and (storage / "snapshots" / revision).is_dir():
        sha = revision
    elif (storage / "refs" / revision).is_file():
        sha = (storage / "refs" / revision).read_text().strip()
    if not sha or not (storage / "snapshots" / sha).is_dir():
        return None
    return sha, storage / "snapshots" / sha


def _load_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def cache_card(snapshot: Path) -> dict[str, Any] | None:
    from huggingface_hub import ModelCard

    readme = snapshot / "README.md"
    if not readme.is_file():
        return None
    return _card_dict(ModelCard.load(readme).data)


def from_cache(repo: str, revision: str, *, gguf_file: str | None,
               cache: Path | None = None) -> ModelFacts | None:
    """Facts from the HF cache (None on a miss). Never touches the network."""
    found = cached_snapshot(repo, revision, cache or _hub.cache_dir())
    if found is None:
        return None
    sha, snap = found
    card = cache_card(snap) or {}
    config = _load_json(snap / "config.json")
    files: dict[str, int | None] = {
        p.relative_to(snap).as_posix(): p.stat().st_size for p in sorted(snap.rglob("*"))
        if p.is_file()
    }
    counts: dict[str, int] = {}
    data_bytes = 0
    for name in parse.weight_paths(files):
        try:
            c, d = parse.header_stats(parse.read_safetensors_header(snap / name))
        except (OSError, ValueError):
            counts, data_bytes = {}, 0
            break
        data_bytes += d
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    index = _load_json(snap / INDEX) or {}
    meta = index.get("metadata") if isinstance(index.get("metadata"), dict) else {}
    total_size = parse._int((meta or {}).get("total_size"))
    return _facts(repo, revision, sha, card, parse.card_tags(card), gated=None, config=config,
                  files=files, counts=counts or None, data_bytes=data_bytes or None,
                  total_size=total_size, gguf_file=gguf_file, library=None, pipeline=None,
                  source="cache")
