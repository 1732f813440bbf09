"""The GPU catalogue (``data/gpus.yaml``): names, memory, compute capability.

``lookup_gpu`` maps what users and clusters call a GPU (a GPU Feature Discovery product label, one
of its other spellings, a short alias such as ``l4``/``h100``/``a100-80gb``, or a cloud label value)
onto one catalogue entry, case-insensitively. MIG and time-slicing suffixes are stripped first
(``NVIDIA-A100-SXM4-40GB-MIG-1g.5gb`` and ``NVIDIA-L4-SHARED`` name the parent GPU): the entry
then gives the compute capability; a MIG slice's memory comes from ``mig_slice_memory_mib``.

``--gpu-catalog FILE`` (``kubellm run`` and ``kubellm plan``) adds or replaces entries:
``read_gpu_catalog_file`` validates them (errors name the file, the entry and the field),
``merge_gpu_catalogs`` is the pure merge and ``GpuCatalog.with_extra`` the value built from it:
passed down as a value (the inventory carries the catalogue its products are read in), never
installed in the process, so ``kubellm run`` and ``kubellm plan`` given the same files agree.

``gpu_supports`` answers whether a GPU generation runs a quantization on a runtime: the runtime's
own capability table (``data/runtimes.yaml``, ``kubellm.runtimes.catalog.serves_on``), the same
rule the planner's runtime check applies, so the sizer never picks a GPU the runtime refuses.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from kubellm.datafiles import load_mapping
from kubellm.sizing.types import GpuType, Quant

_MIG = re.compile(r"-MIG-(?P<g>\d+)g\.(?P<gb>\d+)gb$", re.IGNORECASE)
_SHARED = re.compile(r"-SHARED$", re.IGNORECASE)


def _cc(value: Any) -> tuple[int, int]:
    major, _, minor = str(value).partition(".")
    return int(major), int(minor or 0)


def _raw() -> dict[str, Any]:
    return load_mapping("gpus.yaml")


# Fields of one catalogue entry: name -> (required, accepted YAML types, what it must be).
_GPU_FIELDS: dict[str, tuple[bool, tuple[type, ...], str]] = {
    "product": (True, (str,), "the nvidia.com/gpu.product label value"),
    "memory_mib": (True, (int,), "a positive whole number of MiB"),
    "compute_capability": (True, (str, int, float), 'a CUDA compute capability such as "8.9"'),
    "products": (False, (list,), "a list of other label spellings"),
    "aliases": (False, (list,), "a list of short names"),
    "relative_cost": (False, (int, float), "a positive number"),
    "source": (False, (str,), "where the numbers come from"),
}
_CC = re.compile(r"^\d{1,2}(\.\d)?$")


def parse_gpu_entries(entries: Any, origin: str) -> tuple[GpuType, ...]:
    """Validate catalogue entries (``data/gpus.yaml``'s ``gpus`` or an override file's) into
    GpuTypes; a ValueError names ``origin``, the entry and the field when one is wrong."""
    if not isinstance(entries, list):
        raise ValueError(f"{origin}: gpus must be a list of GPU entries")
    out: list[GpuType] = []
    for i, entry in enumerate(entries):
        where = f"{origin}: gpus[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping with product, memory_mib, "
                             "compute_capability")
        if isinstance(entry.get("product"), str) and entry["product"].strip():
            where += f" ({entry['product']})"
        unknown = sorted(set(entry) - set(_GPU_FIELDS))
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}; known: "
                             f"{', '.join(_GPU_FIELDS)}")
        for field, (required, types, what) in _GPU_FIELDS.items():
            value = entry.get(field)
            if value is None:
                if required:
                    raise ValueError(f"{where}.{field}: missing; must be {what}")
                continue
            bad_type = not isinstance(value, types) or isinstance(value, bool)
            if bad_type or (isinstance(value, list) and not all(
                    isinstance(v, str) and v.strip() for v in value)):
                raise ValueError(f"{where}.{field}: {value!r} is not {what}")
        product = str(entry["product"]).strip()
        if not product:
            raise ValueError(f"{where}.product: empty; must be {_GPU_FIELDS['product'][2]}")
        if entry["memory_mib"] <= 0:
            raise ValueError(f"{where}.memory_mib: {entry['memory_mib']!r} is not "
                             f"{_GPU_FIELDS['memory_mib'][2]}")
        if not _CC.match(str(entry["compute_capability"])):
            raise ValueError(f"{where}.compute_capability: {entry['compute_capability']!r} is "
                             f"not {_GPU_FIELDS['compute_capability'][2]}")
        cost = float(entry.get("relative_cost", 1.0))
        if cost <= 0:
            raise ValueError(f"{where}.relative_cost: {cost!r} is not a positive number")
        out.append(
            GpuType(
                product=product,
                memory_gib=round(int(entry["memory_mib"]) / 1024, 2),
                compute_capability=_cc(entry["compute_capability"]),
                aliases=tuple(str(a) for a in entry.get("aliases") or ()),
                products=tuple(str(p) for p in entry.get("products") or ()),
                relative_cost=cost,
                source=str(entry.get("source", "")),
            )
        )
    return tuple(out)


def read_gpu_catalog_file(path: str) -> tuple[GpuType, ...]:
    """GPU entries from a YAML file (``gpus: [...]`` as in ``data/gpus.yaml``, or a bare list),
    e.g. ``kubellm run --gpu-catalog FILE``; a ValueError names the file and what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"gpus"})
        if unknown:
            raise ValueError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; "
                             "expected gpus")
        data = data.get("gpus")
    if data is None:
        return ()
    return parse_gpu_entries(data, path)


def merge_gpu_catalogs(base: tuple[GpuType, ...],
                       extra: tuple[GpuType, ...]) -> tuple[GpuType, ...]:
    """``base`` with ``extra`` applied: an extra entry whose product (case-insensitively) is a
    base product replaces it in place; the others are appended in their order. A name (product,
    spelling or alias) meaning two different GPUs afterwards is a ValueError naming both."""
    merged = list(base)
    position = {gpu.product.lower(): i for i, gpu in enumerate(merged)}
    for gpu in extra:
        key = gpu.product.lower()
        if key in position:
            merged[position[key]] = gpu
        else:
            position[key] = len(merged)
            merged.append(gpu)
    owner: dict[str, str] = {}
    for gpu in merged:
        for name in dict.fromkeys(n.lower() for n in (gpu.product, *gpu.products, *gpu.aliases)):
            if name in owner:
                raise ValueError(f"GPU catalogue: name {name!r} of {gpu.product} is already a "
                                 f"name of {owner[name]}")
            owner[name] = gpu.product
    return tuple(merged)


@dataclass(frozen=True)
class GpuCatalog:
    """The GPUs a deployment can be sized on: the built-in catalogue, or it with the entries of
    ``--gpu-catalog`` files (``with_extra``). ``lookup`` is case-insensitive over products,
    their other spellings and aliases."""

    gpus: tuple[GpuType, ...]
    _index: dict[str, GpuType] = dataclasses.field(init=False, repr=False, compare=False,
                                                   hash=False)

    def __post_init__(self) -> None:
        index: dict[str, GpuType] = {}
        for gpu in self.gpus:
            for name in (gpu.product, *gpu.products, *gpu.aliases):
                index[name.lower()] = gpu
        object.__setattr__(self, "_index", index)

    @classmethod
    def with_extra(cls, extra: tuple[GpuType, ...]) -> GpuCatalog:
        """The built-in catalogue with ``extra`` entries replacing (same product) or added; a
        ValueError names a clash."""
        return cls(merge_gpu_catalogs(builtin_gpu_catalog().gpus, extra)) if extra else (
            builtin_gpu_catalog())

    def lookup(self, name: str) -> GpuType | None:
        return self._index.get(base_product(name).lower())

    def known_names(self) -> list[str]:
        """Canonical products and their first alias, for error messages."""
        return [f"{g.product} ({g.aliases[0]})" if g.aliases else g.product for g in self.gpus]


@cache
def builtin_gpu_catalog() -> GpuCatalog:
    """Every GPU of ``data/gpus.yaml`` in file order."""
    return GpuCatalog(parse_gpu_entries(_raw()["gpus"], "kubellm/data/gpus.yaml"))


def load_gpu_catalog() -> tuple[GpuType, ...]:
    """Every GPU of the built-in catalogue (``data/gpus.yaml``), in file order."""
    return builtin_gpu_catalog().gpus


def base_product(name: str) -> str:
    """``NVIDIA-A100-SXM4-40GB-MIG-1g.5gb`` -> ``NVIDIA-A100-SXM4-40GB``; ``X-SHARED`` -> ``X``."""
    stripped = _SHARED.sub("", name.strip())
    return _MIG.sub("", stripped)


def is_mig(product: str) -> bool:
    return _MIG.search(_SHARED.sub("", product.strip())) is not None


def is_shared(product: str) -> bool:
    return _SHARED.search(product.strip()) is not None


def mig_slice_memory_mib(product: str) -> int | None:
    """The memory of a MIG slice from its profile name (``...-MIG-3g.20gb`` -> 20480)."""
    match = _MIG.search(_SHARED.sub("", product.strip()))
    return int(match.group("gb")) * 1024 if match else None


def lookup_gpu(name: str, catalog: GpuCatalog | None = None) -> GpuType | None:
    """The entry of ``catalog`` (default: the built-in one) for a product label, another
    spelling or an alias (case-insensitive).

    MIG (``-MIG-<profile>``) and time-slicing (``-SHARED``) suffixes are stripped, so the result
    is the parent GPU. Returns None for names the catalogue does not know.
    """
    return (catalog or builtin_gpu_catalog()).lookup(name)


def known_gpu_names(catalog: GpuCatalog | None = None) -> list[str]:
    """Canonical products and their first alias, for error messages."""
    return (catalog or builtin_gpu_catalog()).known_names()


def gpu_supports(gpu: GpuType, quant: Quant, *, runtime: str = "vllm") -> tuple[bool, str]:
    """Whether ``gpu`` runs ``quant`` on ``runtime``, and a short explanation (the runtime's
    capability table in runtimes.yaml; see ``kubellm.runtimes.catalog.serves_on``)."""
    from kubellm.runtimes.catalog import runtime_info, serves_on

    return serves_on(runtime_info(runtime), quant.method, quant.bits_per_weight,
                     gpu.compute_capability, gpu.product)
