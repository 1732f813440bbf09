"""``kubellm crds``: print the generated CRDs, or write them into a directory (``--write DIR``),
and/or write the Markdown API reference generated from them (``--docs DIR``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "crds",
        help="print the kubellm CRDs (generated from the pydantic API models)",
        description=(
            "Print the CustomResourceDefinitions of kubellm.io/v1alpha1 (LLMDeployment, "
            "LicensePolicy) as YAML, e.g. `kubellm crds | kubectl apply --server-side -f -`. "
            "With --write DIR, write DIR/kubellm.io_llmdeployments.yaml and "
            "DIR/kubellm.io_licensepolicies.yaml instead (the repository keeps them in crds/). "
            "With --docs DIR, write the API reference generated from the CRD schemas as "
            "DIR/llmdeployment.md and DIR/licensepolicy.md (the repository keeps them in "
            "docs/reference/)."
        ),
    )
    parser.add_argument(
        "--write",
        metavar="DIR",
        type=Path,
        help="write one file per CRD into DIR instead of printing",
    )
    parser.add_argument(
        "--docs",
        metavar="DIR",
        type=Path,
        help="write one Markdown reference page per CRD into DIR instead of printing",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubellm import apiref, crdgen

    if args.write is None and args.docs is None:
        sys.stdout.write(crdgen.render_all())
        return 0
    written: list[Path] = []
    if args.write is not None:
        written += crdgen.write_all(args.write)
    if args.docs is not None:
        written += apiref.write_all(crdgen.all_crds(), args.docs)
    for path in written:
        print(f"wrote {path}")
    return 0
