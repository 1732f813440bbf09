"""``--gpu-catalog`` and ``--runtime-image``: catalogue overrides shared by ``kubellm run`` and
``kubellm plan``, so the offline plan sizes and renders exactly as the operator does.

The pure catalogues (``kubellm.sizing.catalog``, ``kubellm.runtimes.catalog``) validate and merge;
this module only declares the flags and hands them the paths and pairs it was given. A bad file or
pair is a ``SpecError`` (exit code 2) naming the flag, the entry and the field.

Both return values the caller passes down, nothing is installed in the process:
``runtime_images`` the ``--runtime-image`` mapping (``plan_deployment(runtime_images=...)``,
``reconcile.Settings.runtime_images``), ``gpu_catalog`` the ``GpuCatalog`` of ``--gpu-catalog``
(the inventories' ``gpus``, ``reconcile.Settings.gpu_catalog``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubellm.sizing.catalog import GpuCatalog


def add_catalog_flags(parser: Any) -> None:
    parser.add_argument(
        "--gpu-catalog",
        action="append",
        default=[],
        metavar="FILE",
        help="YAML file of GPU catalogue entries (gpus: [{product, memory_mib, "
        "compute_capability, aliases, products, relative_cost, source}]) added to the built-in "
        "catalogue; an entry with a known product replaces it (repeatable)",
    )
    parser.add_argument(
        "--runtime-image",
        action="append",
        default=[],
        metavar="RUNTIME=IMAGE",
        help="serve RUNTIME (vllm, tgi) from IMAGE instead of the catalogue's pinned image, e.g. "
        "a mirror; an LLMDeployment's spec.image still wins (repeatable)",
    )


def gpu_catalog(args: argparse.Namespace) -> GpuCatalog | None:
    """The built-in GPU catalogue with the ``--gpu-catalog`` files' entries (None: no file)."""
    from kubellm.errors import SpecError
    from kubellm.sizing.catalog import GpuCatalog, read_gpu_catalog_file

    if not args.gpu_catalog:
        return None
    try:
        extra = tuple(g for path in args.gpu_catalog for g in read_gpu_catalog_file(path))
        return GpuCatalog.with_extra(extra)
    except ValueError as exc:
        raise SpecError("--gpu-catalog", str(exc)) from None


def runtime_images(args: argparse.Namespace) -> dict[str, str]:
    """``--runtime-image`` pairs, validated: runtime -> image."""
    from kubellm.errors import SpecError
    from kubellm.runtimes.catalog import parse_image_overrides

    try:
        return parse_image_overrides(args.runtime_image)
    except ValueError as exc:
        raise SpecError("--runtime-image", str(exc)) from None
