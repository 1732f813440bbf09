#!/usr/bin/env python3
"""Seed a standard Hugging Face cache from examples/hub-metadata (no network, no weights).

    scripts/seed_hf_cache.py DIR      # writes DIR/hub, prints it (use as HF_HUB_CACHE, HF_HOME=DIR)

The files are the real metadata of the example models (see examples/hub-metadata/SOURCES.yaml);
the layout is the hand-made cache huggingface_hub reads offline (hub-api.md §6): refs/main
without a trailing newline, snapshots/<sha>/<files>. The work is done by
tests/hubfixtures/cache.py build_cache_from_metadata, which the unit tests use too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hubfixtures.cache import build_cache_from_metadata  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="HF_HOME to write (DIR/hub is the hub cache)")
    ap.add_argument("--src", type=Path, default=ROOT / "examples" / "hub-metadata")
    args = ap.parse_args()
    print(build_cache_from_metadata(args.dir, args.src))
    return 0


if __name__ == "__main__":
    sys.exit(main())
