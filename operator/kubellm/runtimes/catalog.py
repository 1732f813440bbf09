"""The runtime catalogue: ``data/runtimes.yaml`` read into typed, frozen records (pure).

Images with pinned tags, ports, probe paths and timings, quantization flag mappings and the GPU
each (runtime x quantization) needs all live in the YAML with their sources; code reads them here.

``use_image_overrides`` replaces runtime images for the process (``kubellm run``/``plan``
``--runtime-image vllm=IMAGE``, e.g. a mirror or a pinned digest); an LLMDeployment's own
``spec.image`` still wins over both the override and the catalogue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from kubellm import __version__
from kubellm.datafiles import load_mapping


@dataclass(frozen=True)
class QuantSupport:
    """What one runtime needs to serve one quantization."""

    min_cc: tuple[int, int]
    needs_checkpoint: bool = False  # cannot quantize on the fly: needs a pre-quantized checkpoint
    needs_cache: bool = False  # served from a local file of the cache (GGUF in vLLM)
    note: str = ""


@dataclass(frozen=True)
class Probes:
    startup_path: str
    readiness_path: str
    liveness_path: str
    startup_base_seconds: int


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    image: str
    image_source: str
    command: tuple[str, ...]
    port: int
    metrics_path: str
    probes: Probes
    shm_size: str
    env: dict[str, str]
    quantize_flag: dict[str, str]
    kv_cache_dtype_flag: dict[str, str]
    quantizations: dict[str, QuantSupport]
    unsupported: dict[str, str] = field(default_factory=dict)
    no_pipeline_parallel: bool = False


@dataclass(frozen=True)
class StartupBudget:
    load_bytes_per_second: int
    download_bytes_per_second: int
    min_seconds: int
    period_seconds: int


def _raw() -> dict[str, Any]:
    return load_mapping("runtimes.yaml")


def _strings(raw: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()}


def _runtime(name: str, raw: dict[str, Any]) -> RuntimeInfo:
    probes = raw["probes"]
    quants = {
        q: QuantSupport(
            min_cc=(int(v["min_cc"][0]), int(v["min_cc"][1])),
            needs_checkpoint=bool(v.get("needs_checkpoint", False)),
            needs_cache=bool(v.get("needs_cache", False)),
            note=str(v.get("note", "")),
        )
        for q, v in raw["quantizations"].items()
    }
    unsupported = _strings(raw.get("unsupported", {}))
    return RuntimeInfo(
        name=name,
        image=str(raw["image"]),
        image_source=" ".join(str(raw.get("image_source", "")).split()),
        command=tuple(str(c) for c in raw["command"]),
        port=int(raw["port"]),
        metrics_path=str(raw["metrics_path"]),
        probes=Probes(
            startup_path=str(probes["startup_path"]),
            readiness_path=str(probes["readiness_path"]),
            liveness_path=str(probes["liveness_path"]),
            startup_base_seconds=int(probes["startup_base_seconds"]),
        ),
        shm_size=str(raw["shm_size"]),
        env=_strings(raw.get("env", {})),
        quantize_flag=_strings(raw.get("quantize_flag", {})),
        kv_cache_dtype_flag=_strings(raw.get("kv_cache_dtype_flag", {})),
        quantizations=quants,
        unsupported={k: " ".join(v.split()) for k, v in unsupported.items()},
        no_pipeline_parallel=bool(raw.get("no_pipeline_parallel", False)),
    )


_image_overrides: dict[str, str] = {}
# An OCI reference: [registry[:port]/]path[:tag][@digest], no spaces (distribution/reference).
_IMAGE = re.compile(
    r"^[a-z0-9]+([._:/-][a-zA-Z0-9_]+)*(:[\w][\w.-]{0,127})?(@[a-z0-9]+:[a-f0-9]{32,})?$")


def parse_image_overrides(pairs: list[str]) -> dict[str, str]:
    """``["vllm=IMAGE", "tgi=IMAGE"]`` -> ``{runtime: image}``; a ValueError names the pair and
    what is wrong (unknown runtime, missing ``=``, not an image reference, given twice)."""
    known = sorted(_raw()["runtimes"])
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, image = (part.strip() for part in pair.partition("="))
        if not sep or not name or not image:
            raise ValueError(f"{pair!r}: expected RUNTIME=IMAGE, e.g. "
                             "vllm=registry.example/vllm-openai:v0.29.0")
        if name not in known:
            raise ValueError(f"{pair!r}: unknown runtime {name!r}; known: "
                             f"{', '.join(known)}")
        if not _IMAGE.match(image):
            raise ValueError(f"{pair!r}: {image!r} is not an image reference")
        if name in out and out[name] != image:
            raise ValueError(f"{name} given twice ({out[name]}, {image})")
        out[name] = image
    return out


def use_image_overrides(images: dict[str, str]) -> None:
    """Serve ``images`` (runtime -> image) instead of the catalogue's for this process; ``{}``
    resets. Process-wide like the catalogue itself, so run and plan render the same images."""
    global _image_overrides
    unknown = sorted(set(images) - set(_raw()["runtimes"]))
    if unknown:
        raise ValueError(f"image overrides for unknown runtime(s): {', '.join(unknown)}")
    _image_overrides = dict(images)
    runtime_infos.cache_clear()


@lru_cache(maxsize=1)
def runtime_infos() -> dict[str, RuntimeInfo]:
    """Every runtime of the catalogue, by name (sorted), with the image overrides applied."""
    raw = _raw()["runtimes"]
    infos = {name: _runtime(name, raw[name]) for name in sorted(raw)}
    for name, image in _image_overrides.items():
        infos[name] = replace(infos[name], image=image,
                              image_source=f"override (--runtime-image {name}=...)")
    return infos


def runtime_info(name: str) -> RuntimeInfo:
    return runtime_infos()[name]


@lru_cache(maxsize=1)
def startup_budget() -> StartupBudget:
    raw = _raw()["startup"]
    return StartupBudget(
        load_bytes_per_second=int(raw["load_bytes_per_second"]),
        download_bytes_per_second=int(raw["download_bytes_per_second"]),
        min_seconds=int(raw["min_seconds"]),
        period_seconds=int(raw["period_seconds"]),
    )


def downloader_image(version: str = __version__) -> str:
    """The kubellm image whose ``kubellm download`` fills the cache (tag = kubellm's version)."""
    return str(_raw()["downloader"]["image"]).format(version=version)
