"""``kubellm crds``: print the generated CRDs, or write them into a directory (``--write DIR``)."""

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
            "DIR/kubellm.io_licensepolicies.yaml instead (the repository keeps them in crds/)."
        ),
    )
    parser.add_argument(
        "--write",
        metavar="DIR",
        type=Path,
        help="write one file per CRD into DIR instead of printing",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubellm import crdgen

    if args.write is not None:
        for path in crdgen.write_all(args.write):
            print(f"wrote {path}")
        return 0
    sys.stdout.write(crdgen.render_all())
    return 0
