"""``kubellm license MODEL``: decide a model's licence against a LicensePolicy (Hub or declared).

Exit codes: 0 allowed (with or without warnings), 1 denied, 2 bad input, 3 the facts could not
be read (Hub or mirror unreachable: retry, or decide from declared facts with ``--license``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from kubellm.errors import SpecError, TemporaryError

EPILOG = """\
examples:
  kubellm license meta-llama/Llama-3.1-8B-Instruct
  kubellm license Qwen/Qwen2.5-3B-Instruct --policy policies.yaml --namespace team-a -o json
  kubellm license my-org/finetune --license mit --base-model meta-llama/Llama-3.1-8B   # no Hub
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "license",
        help="decide whether a model's licence passes a LicensePolicy",
        description=(
            "Resolve a model's licence (its card, its base_model chain, its family) and decide it "
            "against the LicensePolicy that governs NAMESPACE (or the built-in default: "
            "permissive and restrictive-community licences, commercial use, unknown denied). "
            "Exit 0 when allowed, 1 when denied, 2 on bad input, 3 when the Hub cannot be read."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="Hub repo id, e.g. Qwen/Qwen2.5-7B-Instruct")
    parser.add_argument("--revision", default="main", help="branch, tag or commit (default main)")
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="YAML file with one or more LicensePolicy objects (multi-document or a List)",
    )
    parser.add_argument(
        "--namespace",
        default="default",
        help="namespace whose policy applies (default: default)",
    )
    parser.add_argument(
        "--license",
        dest="license_id",
        metavar="ID",
        help="decide from this declared Hub licence id, without Hub access (e.g. apache-2.0)",
    )
    parser.add_argument(
        "--license-name",
        metavar="N",
        help="declared license_name for --license other (e.g. qwen, mrl)",
    )
    parser.add_argument(
        "--base-model",
        action="append",
        default=[],
        metavar="REPO",
        help="declared base model repo id (repeatable; with --license)",
    )
    parser.add_argument(
        "--today",
        type=_date,
        metavar="YYYY-MM-DD",
        help="date used for exception expiry (default: today, UTC)",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.set_defaults(func=run)


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def load_policies(path: Path) -> list[Any]:
    """LicensePolicy objects from a YAML file; bad input raises SpecError naming the field."""
    import yaml
    from pydantic import ValidationError

    from kubellm.api.v1alpha1 import LicensePolicy

    class Loader(yaml.SafeLoader):
        """Dates stay strings, as kubectl (sigs.k8s.io/yaml) reads them."""

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    try:
        docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=Loader))
    except OSError as exc:
        raise SpecError(f"--policy {path}", f"cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"--policy {path}", f"not valid YAML: {exc}") from None
    items: list[Any] = []
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind", "").endswith("List"):
            items.extend(doc.get("items") or [])
        else:
            items.append(doc)
    policies = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.get("kind") != "LicensePolicy":
            kind = item.get("kind") if isinstance(item, dict) else type(item).__name__
            raise SpecError(
                f"{path} document {index}",
                f"expected kind LicensePolicy, got {kind}",
                "give a file of LicensePolicy objects",
            )
        try:
            policies.append(LicensePolicy.model_validate(item))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            name = (item.get("metadata") or {}).get("name", index)
            raise SpecError(f"{path} LicensePolicy {name}: {where}", error["msg"]) from None
    return policies


def _facts(args: argparse.Namespace) -> Any:
    from kubellm.facts import BaseModelRef, ModelFacts

    if args.license_id is None:
        if args.license_name or args.base_model:
            raise SpecError(
                "--license-name/--base-model", "need --license", "add --license ID (e.g. other)"
            )
        from kubellm.modelinfo import resolve  # Hub or offline cache; imported lazily

        return resolve(args.model, args.revision)
    declared = ("license", "license_name", "base_model") if args.base_model else ("license",)
    return ModelFacts(
        repo=args.model,
        revision=args.revision,
        license=args.license_id,
        license_name=args.license_name,
        base_models=tuple(
            BaseModelRef(repo=repo, relation="unknown", resolved=False) for repo in args.base_model
        ),
        source="declared",
        declared=declared,
    )


def render_text(decision: Any) -> str:
    lic = decision.license
    policy = decision.policy_name or "(built-in default)"
    lines = [
        f"{decision.repo}: {decision.decision}",
        f"  licence:  {lic.label} ({lic.class_}, commercial: {lic.commercial}, {lic.openness})"
        + (" [declared]" if lic.declared else ""),
        f"  from:     {lic.from_repo}",
        f"  policy:   {policy} (mode {decision.mode})",
        "  reasons:",
    ]
    shown: str | None = None
    for reason in decision.reasons:
        lines.append(f"    [{reason.effect}] {reason.rule}: {reason.message}")
        if reason.fact and reason.fact != shown:  # the same fact is printed once in a row
            lines.append(f"        fact: {reason.fact}")
            shown = reason.fact
    if decision.obligations:
        lines.append("  obligations:")
        lines.extend(f"    - {text}" for text in decision.obligations)
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from kubellm.api.v1alpha1 import ModelSpec
    from kubellm.license import decide, select_policy

    try:
        ModelSpec(repo=args.model, revision=args.revision)
    except ValueError:
        raise SpecError(
            "MODEL", f"{args.model!r} is not a Hub repo id", "write it as org/name"
        ) from None
    policies = load_policies(args.policy) if args.policy is not None else []
    policy = select_policy(policies, args.namespace)
    try:
        facts = _facts(args)
    except TemporaryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            "hint: decide without the Hub from declared facts: --license ID [--license-name N]",
            file=sys.stderr,
        )
        return 3
    decision = decide(facts, policy, today=args.today)
    if args.output == "json":
        sys.stdout.write(json.dumps(decision.to_dict(), indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_text(decision))
    return 0 if decision.allowed else 1
