"""``kubellm download``: fill the shared model cache (what the operator's download Job runs).

Downloads one repo revision into the source's cache layout (Hugging Face: the HF cache;
ModelScope: models/<owner>--<name>/snapshots/<revision>) under --cache-dir with per-request
timeouts, bounded retries and resumption, and writes a completion marker only after success.
Exit codes: 0 done (or already complete), 2 not found / gated without a usable token / bad input,
1 Hub unavailable after the retries. The logic lives in ``kubellm.modelinfo.download``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from kubellm.errors import SpecError
from kubellm.modelsource import DEFAULT_SOURCE, layout, source_names

EPILOG = """\
examples:
  kubellm download --repo Qwen/Qwen2.5-7B-Instruct \\
      --revision a09a35458c702b33eeacc393d103063234e8bc28 --cache-dir /models/hub \\
      --include '*.json' --include '*.safetensors'
  HF_TOKEN=hf_... kubellm download --repo meta-llama/Llama-3.1-8B-Instruct --revision main

  MODELSCOPE_ENDPOINT=http://mirror:8000 kubellm download --source modelscope \
      --repo Qwen/Qwen2.5-0.5B-Instruct --revision master --cache-dir /models

environment: HF_ENDPOINT (mirror), HF_TOKEN (gated repos), HF_HUB_CACHE (default cache dir);
ModelScope: MODELSCOPE_ENDPOINT, MODELSCOPE_API_TOKEN (--cache-dir is required).
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "download",
        help="download a model revision into the shared HF cache (the download Job)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--repo", required=True, help="Hub repo id, e.g. Qwen/Qwen2.5-7B-Instruct")
    p.add_argument("--source", default=DEFAULT_SOURCE, choices=source_names(),
                   help="the hub to download from (spec.model.source; default huggingface)")
    p.add_argument("--revision", default=None,
                   help="40-hex commit sha (recommended) or branch (default: the source's "
                        "default branch, main or master)")
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only files matching this glob (repeatable; default: all files)",
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="HF cache directory (default: HF_HUB_CACHE)"
    )
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file holding a Hub token (default: env HF_TOKEN)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    p.add_argument(
        "--retries",
        type=int,
        default=5,
        help="extra attempts when the Hub is unavailable (default 5)",
    )
    p.add_argument(
        "--backoff",
        type=float,
        default=2.0,
        help="first retry wait in seconds, doubled each time (default 2)",
    )
    p.add_argument(
        "--marker",
        default=None,
        help="completion marker name in <cache-dir>/.kubellm/ (default: repo+sha)",
    )
    p.add_argument(
        "--progress-interval",
        type=float,
        default=15.0,
        metavar="S",
        help="seconds between progress lines (0: none; default 15)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    token: str | None = None
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise SpecError(
                "--token-file",
                f"cannot read {args.token_file}: {exc.strerror}",
                "mount the token Secret at that path",
            ) from exc
        if token is None:
            raise SpecError(
                "--token-file", f"{args.token_file} is empty", "put the Hub token in the Secret key"
            )
    source = layout(args.source)
    token = token or os.environ.get(source.token_env) or None
    if args.retries < 0 or args.timeout <= 0:
        raise SpecError("--retries/--timeout", "must be >= 0 and > 0")

    from kubellm.modelinfo.download import DownloadRequest, download

    download(
        DownloadRequest(
            repo=args.repo,
            revision=args.revision or source.default_revision,
            source=source.name,
            include=tuple(args.include),
            cache_dir=args.cache_dir,
            token=token,
            timeout=args.timeout,
            retries=args.retries,
            backoff=args.backoff,
            marker=args.marker,
            progress_interval=args.progress_interval,
        ),
        log=lambda line: print(line, flush=True),
    )
    return 0
