"""The runtime catalogue: ``data/runtimes.yaml`` read into typed, frozen records (pure).

Images with pinned tags, ports, probe paths and timings, quantization flag mappings and the GPU
each (runtime x quantization) needs all live in the YAML with their sources; code reads them here.
So do the engine facts the rendering and the sizer depend on: the command (none: the image's
entrypoint), the pod's termination grace period, how much of the memory fraction the engine
really fills (``memory_multiplier``), when TGI needs ``--max-batch-prefill-tokens``, which files
TGI downloads itself, and the launcher's flags (``launcher_flags``, from the file the runtime's
``launcher_flags`` key names).

``parse_image_overrides`` validates ``--runtime-image vllm=IMAGE`` pairs (``kubellm run``/``plan``:
a mirror or a pinned digest) into a runtime -> image mapping that is passed down as a value
(``plan_deployment(runtime_images=...)``), never installed in the process; an LLMDeployment's
own ``spec.image`` still wins over both the override and the catalogue.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from kubellm import __version__
from kubellm.datafiles import load_mapping


@dataclass(frozen=True)
class QuantSupport:
    """What one runtime needs to serve one quantization."""

    min_cc: tuple[int, int]  # the oldest GPU that serves it at all
    needs_checkpoint: bool = False  # cannot quantize on the fly: needs a pre-quantized checkpoint
    note: str = ""  # what runs between min_cc and native_cc
    native_cc: tuple[int, int] | None = None  # from here on the fast kernels run


@dataclass(frozen=True)
class Probes:
    startup_path: str
    readiness_path: str
    liveness_path: str
    startup_base_seconds: int


@dataclass(frozen=True)
class MemoryFraction:
    """What the engine makes of the memory fraction kubellm passes: it fills ``fraction x
    effective_multiplier`` of the GPU (TGI: x TGI_WIGGLE_ROOM 0.90; vLLM: x 1.0).
    ``multiplier_env`` names the environment variable that replaces the multiplier."""

    effective_multiplier: float = 1.0
    multiplier_env: str | None = None


@dataclass(frozen=True)
class PrefillChunking:
    """When a TGI shard cannot chunk prefill (then ``flag`` must be >= --max-input-tokens)."""

    flag: str
    without_chunking: dict[str, str]  # config.json model_type -> where the engine says so
    paged_attention_below_cc: tuple[int, int] | None = None
    flash_head_dims: tuple[int, ...] = ()
    fallback_attention_model_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class HubDownload:
    """Which repo files the engine downloads itself when there is no cache (top level only)."""

    suffix: str
    exclude_substrings: tuple[str, ...] = ()

    def selects(self, path: str) -> bool:
        return (
            "/" not in path
            and path.endswith(self.suffix)
            and not any(s in path for s in self.exclude_substrings)
        )


@dataclass(frozen=True)
class LauncherFlag:
    """One command-line flag of the engine: ``value`` is switch, int, float, string, bool,
    int_list or an enum name; ``values`` the enum's values (empty when not an enum)."""

    name: str
    line: int
    value: str
    env: str | None = None
    default: str | None = None
    repeatable: bool = False
    values: tuple[str, ...] = ()

    @property
    def takes_value(self) -> bool:
        return self.value != "switch"


@dataclass(frozen=True)
class Drain:
    """How a runtime finishes accepted requests on SIGTERM: ``seconds`` of drain, set with
    ``flag`` (None: the runtime drains that long by default)."""

    seconds: int
    flag: str | None = None


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    display_name: str  # "vLLM", for messages
    image: str
    image_source: str
    port: int
    metrics_path: str
    probes: Probes
    shm_size: str
    env: dict[str, str]
    quantize_flag: dict[str, str]
    kv_cache_dtype_flag: dict[str, str]
    quantizations: dict[str, QuantSupport]
    termination_grace_seconds: int
    drain: Drain
    #: How one replica spans several nodes (a LeaderWorkerSet ...), for messages; None: it cannot.
    multi_node: str | None = None
    command: tuple[str, ...] = ()  # empty: the image's ENTRYPOINT runs, kubellm renders args only
    entrypoint: tuple[str, ...] = ()  # the image's ENTRYPOINT, when kubellm relies on it
    memory_fraction: MemoryFraction = MemoryFraction()
    prefill_chunking: PrefillChunking | None = None
    hub_download: HubDownload | None = None  # None: the pod downloads the checkpoint's files
    launcher_flags_file: str | None = None
    #: Mount the memory-backed /dev/shm for every pod, not only for several GPUs per pod.
    shm_always: bool = False
    unsupported: dict[str, str] = field(default_factory=dict)
    no_pipeline_parallel: bool = False
    min_cc: tuple[int, int] = (0, 0)  # the engine's own floor, whatever the quantization
    min_cc_source: str = ""


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


def as_cc(value: Any) -> tuple[int, int]:
    """A compute capability ``[8, 0]`` / ``(8, 0)`` as a tuple."""
    return (int(value[0]), int(value[1]))


def _runtime(name: str, raw: dict[str, Any]) -> RuntimeInfo:
    probes = raw["probes"]
    quants = {
        q: QuantSupport(
            min_cc=as_cc(v["min_cc"]),
            needs_checkpoint=bool(v.get("needs_checkpoint", False)),
            note=" ".join(str(v.get("note", "")).split()),
            native_cc=as_cc(v["native_cc"]) if "native_cc" in v else None,
        )
        for q, v in raw["quantizations"].items()
    }
    unsupported = _strings(raw.get("unsupported", {}))
    memory = raw.get("memory_fraction") or {}
    chunking = raw.get("prefill_chunking")
    download = raw.get("hub_download")
    return RuntimeInfo(
        name=name,
        display_name=str(raw["display_name"]),
        multi_node=str(raw["multi_node"]) if raw.get("multi_node") else None,
        image=str(raw["image"]),
        image_source=" ".join(str(raw.get("image_source", "")).split()),
        command=tuple(str(c) for c in raw.get("command") or ()),
        entrypoint=tuple(str(c) for c in raw.get("entrypoint") or ()),
        termination_grace_seconds=int(raw["termination_grace_seconds"]),
        drain=Drain(seconds=int(raw["drain"]["seconds"]),
                    flag=str(raw["drain"]["flag"]) if raw["drain"].get("flag") else None),
        memory_fraction=MemoryFraction(
            effective_multiplier=float(memory.get("effective_multiplier", 1.0)),
            multiplier_env=str(memory["multiplier_env"]) if memory.get("multiplier_env") else None,
        ),
        prefill_chunking=_chunking(chunking) if chunking else None,
        hub_download=_download(download) if download else None,
        launcher_flags_file=str(raw["launcher_flags"]) if raw.get("launcher_flags") else None,
        port=int(raw["port"]),
        metrics_path=str(raw["metrics_path"]),
        probes=Probes(
            startup_path=str(probes["startup_path"]),
            readiness_path=str(probes["readiness_path"]),
            liveness_path=str(probes["liveness_path"]),
            startup_base_seconds=int(probes["startup_base_seconds"]),
        ),
        shm_size=str(raw["shm_size"]),
        shm_always=bool(raw.get("shm_always", False)),
        env=_strings(raw.get("env", {})),
        quantize_flag=_strings(raw.get("quantize_flag", {})),
        kv_cache_dtype_flag=_strings(raw.get("kv_cache_dtype_flag", {})),
        quantizations=quants,
        unsupported={k: " ".join(v.split()) for k, v in unsupported.items()},
        min_cc=as_cc(raw.get("min_cc", (0, 0))),
        min_cc_source=" ".join(str(raw.get("min_cc_source", "")).split()),
        no_pipeline_parallel=bool(raw.get("no_pipeline_parallel", False)),
    )


def _chunking(raw: dict[str, Any]) -> PrefillChunking:
    below = raw.get("paged_attention_below_cc")
    return PrefillChunking(
        flag=str(raw["flag"]),
        without_chunking=_strings(raw.get("without_chunking", {})),
        paged_attention_below_cc=(int(below[0]), int(below[1])) if below else None,
        flash_head_dims=tuple(int(h) for h in raw.get("flash_head_dims", ())),
        fallback_attention_model_types=tuple(
            str(t) for t in raw.get("fallback_attention_model_types", ())
        ),
    )


def _download(raw: dict[str, Any]) -> HubDownload:
    return HubDownload(
        suffix=str(raw["suffix"]),
        exclude_substrings=tuple(str(x) for x in raw.get("exclude_substrings", ())),
    )


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


@lru_cache(maxsize=1)
def runtime_infos() -> dict[str, RuntimeInfo]:
    """Every runtime of the catalogue, by name (sorted)."""
    raw = _raw()["runtimes"]
    return {name: _runtime(name, raw[name]) for name in sorted(raw)}


def runtime_info(name: str) -> RuntimeInfo:
    return runtime_infos()[name]


def auto_order() -> tuple[str, ...]:
    """The runtimes ``spec.runtime: auto`` tries, in order (runtimes.yaml ``auto_order``)."""
    return tuple(str(n) for n in _raw()["auto_order"])


def runtimes_that(pred: Callable[[RuntimeInfo], bool], *, but: str) -> list[str]:
    """Names of the runtimes other than ``but`` for which ``pred`` holds (for a refusal's fix)."""
    return [n for n, info in runtime_infos().items() if n != but and pred(info)]


@cache
def launcher_flags(name: str) -> dict[str, LauncherFlag]:
    """The engine's command-line flags (``--flag`` -> LauncherFlag) from the data file the
    runtime's ``launcher_flags`` names; {} when the catalogue has none for it."""
    filename = runtime_info(name).launcher_flags_file
    if filename is None:
        return {}
    raw = load_mapping(filename)
    enums = {k: tuple(str(v) for v in e["values"]) for k, e in raw.get("enums", {}).items()}
    out: dict[str, LauncherFlag] = {}
    for flag, entry in raw["flags"].items():
        value = str(entry["value"])
        out[str(flag)] = LauncherFlag(
            name=str(flag),
            line=int(entry["line"]),
            value=value,
            env=str(entry["env"]) if entry.get("env") else None,
            default=str(entry["default"]) if "default" in entry else None,
            repeatable=bool(entry.get("repeatable", False)),
            values=enums.get(value, ()),
        )
    return out


def memory_multiplier(name: str, env: list[dict[str, Any]] | None = None) -> float:
    """The share of the memory fraction runtime ``name`` really fills: TGI's TGI_WIGGLE_ROOM
    (0.90, or the value ``env`` - spec.env - gives it), vLLM's 1.0. A ValueError when ``env``
    sets it to something the engine refuses (TGI asserts 0 < x < 1); a value from a Secret or
    ConfigMap cannot be read here, so the default stands."""
    memory = runtime_info(name).memory_fraction
    for item in env or ():
        if not memory.multiplier_env or not isinstance(item, dict):
            continue
        if item.get("name") != memory.multiplier_env or "value" not in item:
            continue
        text = str(item["value"])
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0.0 < value < 1.0:
            raise ValueError(f"{memory.multiplier_env}={text!r} is not a number between 0 and 1")
        return value
    return memory.effective_multiplier


@lru_cache(maxsize=1)
def startup_budget() -> StartupBudget:
    raw = _raw()["startup"]
    return StartupBudget(
        load_bytes_per_second=int(raw["load_bytes_per_second"]),
        download_bytes_per_second=int(raw["download_bytes_per_second"]),
        min_seconds=int(raw["min_seconds"]),
        period_seconds=int(raw["period_seconds"]),
    )


def endpoint_drain_seconds() -> int:
    """The preStop sleep of a serving container: time for the Service to stop routing to it."""
    return int(_raw()["rollout"]["endpoint_drain_seconds"])


def downloader_image(version: str = __version__) -> str:
    """The kubellm image whose ``kubellm download`` fills the cache (tag = kubellm's version)."""
    return str(_raw()["downloader"]["image"]).format(version=version)


def cc_text(cc: tuple[int, int]) -> str:
    """``(8, 0)`` -> ``8.0``."""
    return f"{cc[0]}.{cc[1]}"


def capability_row(info: RuntimeInfo, method: str, bits_per_weight: float) -> str:
    """The row of ``info.quantizations`` that decides ``method``: 8-bit compressed-tensors
    checkpoints (FP8/INT8 W8A8) follow the fp8 row."""
    if method == "compressed-tensors" and bits_per_weight >= 7.5 and "fp8" in info.quantizations:
        return "fp8"
    return method


def serves_on(info: RuntimeInfo, method: str, bits_per_weight: float, cc: tuple[int, int],
              product: str) -> tuple[bool, str]:
    """Whether runtime ``info`` serves ``method`` on a GPU of compute capability ``cc``, and why:
    the one rule both the sizer and the planner apply (runtimes.yaml ``min_cc``/``native_cc``).
    A method the runtime does not serve at all is True here; ``Runtime.supports`` refuses it."""
    if cc < info.min_cc:
        return False, (f"{info.name} does not run on {product} (compute capability {cc_text(cc)}; "
                       f"needs {cc_text(info.min_cc)} or newer)")
    row = info.quantizations.get(capability_row(info, method, bits_per_weight))
    if row is None:
        return True, f"{method}: not served by {info.name} (refused by the runtime check)"
    if cc < row.min_cc:
        return False, (f"{info.name} cannot run {method} on {product} (compute capability "
                       f"{cc_text(cc)}; needs {cc_text(row.min_cc)} or newer)")
    if row.native_cc is None or cc >= row.native_cc:
        return True, f"{method} runs natively on compute capability {cc_text(cc)}"
    return True, f"{method} on compute capability {cc_text(cc)}: {row.note}"
