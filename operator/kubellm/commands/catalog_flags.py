"""``--gpu-catalog`` and ``--runtime-image``: catalogue overrides shared by ``kubellm run`` and
``kubellm plan``, so the offline plan sizes and renders exactly as the operator does.

The pure catalogues (``kubellm.sizing.catalog``, ``kubellm.runtimes.catalog``) validate and merge;
this module only declares the flags and hands them the paths and pairs it was given. A bad file or
pair is a ``SpecError`` (exit code 2) naming the flag, the entry and the field.

``runtime_images`` returns the ``--runtime-image`` mapping, a value the caller passes down
(``plan_deployment(runtime_images=...)``, ``reconcile.Settings.runtime_images``).
``install_gpu_catalog`` still installs ``--gpu-catalog`` for the process
(``sizing.catalog.use_gpu_overrides``): the sizer looks GPUs up in the module's catalogue.
"""

from __future__ import annotations

import argparse
from typing import Any


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


def install_gpu_catalog(args: argparse.Namespace) -> None:
    """Install ``--gpu-catalog`` for this process (before anything sizes)."""
    from kubellm.errors import SpecError
    from kubellm.sizing.catalog import read_gpu_catalog_file, use_gpu_overrides

    try:
        gpus = tuple(g for path in args.gpu_catalog for g in read_gpu_catalog_file(path))
        use_gpu_overrides(gpus)
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
