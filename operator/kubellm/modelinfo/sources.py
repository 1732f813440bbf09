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

Malformed metadata (both modes): a config.json or safetensors index that is not a JSON object,
or (offline) a shard whose safetensors header is unreadable, is a ``ModelMetadataError``
(``InvalidModelMetadata``: no runtime could load the model); a README.md whose front matter is
not YAML gives an empty card and ``facts.card_error`` (the licence is then unknown, and says
why); out-of-range or wrong-typed numbers are unknown (``parse``). A model_info answer that is
not the Hub API's (no sha, nameless files, or what huggingface_hub cannot parse) is a
``HubUnavailableError`` (``_hub.translate``): a mirror or proxy in between, not the user's spec.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from kubellm.errors import HubUnavailableError, ModelMetadataError, SpecError
from kubellm.facts import Architecture, ModelFacts
from kubellm.modelinfo import _hub, parse

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
INDEX = "model.safetensors.index.json"


def json_document(data: bytes, name: str, repo: str, revision: str) -> dict[str, Any]:
    """A metadata file (config.json, the safetensors index) as a JSON object, else a
    ModelMetadataError saying what it is instead (no runtime could load the model from it)."""
    where = f"{name} of {repo}@{revision}"
    fix = "fix the file in the repo or pin a revision (spec.model.revision) where it is valid"
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ModelMetadataError(f"{where} is not UTF-8 text (byte {exc.start}); {fix}") from None
    except RecursionError:
        raise ModelMetadataError(f"{where} is nested too deeply to be JSON metadata; {fix}") \
            from None
    except ValueError as exc:
        html = data.lstrip()[:1] == b"<"
        what = ("an HTML page (a proxy or mirror answering instead of the Hub?)" if html
                else f"not valid JSON ({exc})")
        raise ModelMetadataError(f"{where} is {what}; {fix}") from None
    if not isinstance(doc, dict):
        raise ModelMetadataError(
            f"{where} is a JSON {type(doc).__name__}, not an object; {fix}"
        )
    return doc


def read_card(readme: Path) -> tuple[dict[str, Any], str | None]:
    """(card metadata, error) of a README.md: ({}, why) when its front matter is unreadable
    (the licence is then unknown and the decision says why), never an exception."""
    import yaml
    from huggingface_hub import ModelCard

    try:
        return _card_dict(ModelCard.load(readme).data), None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        first = " ".join(str(exc).split())[:160]
        return {}, f"its README.md metadata (front matter) is not readable YAML: {first}"


def facts_from(repo: str, revision: str, sha: str | None, card: dict[str, Any], tags: list[str],
           *, gated: str | None, config: dict[str, Any] | None, files: dict[str, int | None],
           counts: dict[str, int] | None, data_bytes: int | None, total_size: int | None,
           gguf_file: str | None, library: str | None, pipeline: str | None,
           source: str, card_error: str | None = None) -> ModelFacts:
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
        datasets=parse.datasets_from(card), claims=parse.claims_from(card), architecture=arch,
        weight_bytes=weight_bytes,
        parameters=params, weight_files=parse.weight_files((p, files.get(p)) for p in weights),
        library_name=parse._str(_text(library) or _text(card.get("library_name"))),
        pipeline_tag=parse._str(_text(pipeline) or _text(card.get("pipeline_tag"))),
        source=source, card_error=card_error,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


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
    return json_document(Path(path).read_bytes(), filename, repo, sha)


def _malformed(repo: str, what: str) -> HubUnavailableError:
    return HubUnavailableError(
        f"the Hugging Face Hub at {_hub.endpoint()} answered model_info of {repo} with {what}, "
        "not what the Hub API sends (temporary; check HF_ENDPOINT if a mirror or proxy is in "
        "between)"
    )


def _siblings(repo: str, info: Any) -> dict[str, int | None]:
    files: dict[str, int | None] = {}
    for s in info.siblings or []:
        name, size = getattr(s, "rfilename", None), getattr(s, "size", None)
        if not isinstance(name, str) or not name:
            raise _malformed(repo, f"a file entry without a name ({name!r})")
        files[name] = size if isinstance(size, int) and not isinstance(size, bool) \
            and size >= 0 else None
    return files


def _sha_of(repo: str, info: Any, revision: str) -> str:
    sha = info.sha if info.sha is not None else revision
    if not isinstance(sha, str) or not sha:
        raise _malformed(repo, f"a commit sha {sha!r}")
    return sha


def _tags(info: Any) -> list[str]:
    return [t for t in (info.tags or []) if isinstance(t, str)]


def hub_card(repo: str, revision: str, token: str | None,
             timeout: float) -> tuple[dict[str, Any], list[str], str | None, str | None]:
    """(card, tags, gated, sha) from model_info only (used for base models)."""
    from huggingface_hub import HfApi

    info = HfApi(token=token).model_info(repo, revision=revision, timeout=timeout)
    card = _card_dict(info.card_data)
    return card, _tags(info), parse.gated_from(info.gated), _sha_of(repo, info, revision)


def from_hub(repo: str, revision: str, *, token: str | None, gguf_file: str | None,
             timeout: float) -> ModelFacts:
    from huggingface_hub import (
        HfApi,
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
    sha = _sha_of(repo, info, revision)
    files = _siblings(repo, info)
    tags = _tags(info)
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
            public = facts_from(repo, revision, sha, _card_dict(info.card_data), tags, gated=gated,
                            config=None, files=files, counts=None, data_bytes=None,
                            total_size=None, gguf_file=gguf_file, library=info.library_name,
                            pipeline=info.pipeline_tag, source="hub")
            return dataclasses.replace(public, access_error=f"{repo}: {_hub.GATED_FIX}")
    card_error: str | None = None
    if info.card_data is not None:
        card = _card_dict(info.card_data)
    elif "README.md" in files:
        readme = hf_hub_download(repo, "README.md", revision=sha, token=token,
                                 etag_timeout=timeout)
        card, card_error = read_card(Path(readme))
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
            total_size = parse._size((meta or {}).get("total_size"))
        hub_counts = parse.counts_from(getattr(info.safetensors, "parameters", None))
        if hub_counts is not None:
            counts = hub_counts
        else:
            try:
                st = api.get_safetensors_metadata(repo, revision=sha, token=token)
            except (NotASafetensorsRepoError, SafetensorsParsingError):
                st = None
            if st is not None:
                counts = parse.counts_from(st.parameter_count)
                data_bytes = parse._size(sum(t.data_offsets[1] - t.data_offsets[0]
                                             for fm in st.files_metadata.values()
                                             for t in fm.tensors.values()))
    return facts_from(repo, revision, sha, card, tags, gated=gated,
                  config=config, files=files, counts=counts, data_bytes=data_bytes,
                  total_size=total_size, gguf_file=gguf_file, library=info.library_name,
                  pipeline=info.pipeline_tag, source="hub", card_error=card_error)


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


def _load_json(path: Path, repo: str, sha: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelMetadataError(
            f"{path.name} of {repo}@{sha} in the offline cache cannot be read: {exc}"
        ) from None
    return json_document(data, path.name, repo, sha)


def cache_card(snapshot: Path) -> tuple[dict[str, Any], str | None] | None:
    """(card, error) of a cached README.md (see ``read_card``); None when there is none."""
    readme = snapshot / "README.md"
    if not readme.is_file():
        return None
    return read_card(readme)


def from_cache(repo: str, revision: str, *, gguf_file: str | None,
               cache: Path | None = None) -> ModelFacts | None:
    """Facts from the HF cache (None on a miss). Never touches the network."""
    found = cached_snapshot(repo, revision, cache or _hub.cache_dir())
    if found is None:
        return None
    sha, snap = found
    card, card_error = cache_card(snap) or ({}, None)
    config = _load_json(snap / "config.json", repo, sha)
    files: dict[str, int | None] = {
        p.relative_to(snap).as_posix(): p.stat().st_size for p in sorted(snap.rglob("*"))
        if p.is_file()
    }
    counts: dict[str, int] = {}
    data_bytes = 0
    for name in parse.weight_paths(files):
        try:
            c, d = parse.header_stats(parse.read_safetensors_header(snap / name))
        except (OSError, ValueError) as exc:  # a corrupt shard: no runtime could load it
            raise ModelMetadataError(
                f"{name} of {repo}@{sha} in the offline cache is not a readable safetensors "
                f"file ({exc}); download it again (kubellm download, or hf download)"
            ) from None
        data_bytes += d
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    index = _load_json(snap / INDEX, repo, sha) or {}
    meta = index.get("metadata") if isinstance(index.get("metadata"), dict) else {}
    total_size = parse._size((meta or {}).get("total_size"))
    return facts_from(repo, revision, sha, card, parse.card_tags(card), gated=None, config=config,
                  files=files, counts=counts or None, data_bytes=parse._size(data_bytes),
                  total_size=total_size, gguf_file=gguf_file, library=None, pipeline=None,
                  source="cache", card_error=card_error)
