"""``kubellm eval``: run an LLMDeployment's spec.evaluation against an OpenAI-compatible endpoint.

The same code runs in the evaluation Job the operator creates (``--evaluation JSON
--termination-log /dev/termination-log``) and on a laptop against any endpoint (``-f
deployment.yaml --endpoint URL``). Exit code 0 when the weighted pass rate reaches
minPassRate, 1 below it, 2 on bad input (a check, the file) or an unreachable endpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubellm.api.v1alpha1 import EvaluationSpec
    from kubellm.evaluation.checks import Check
    from kubellm.evaluation.report import Report

EPILOG = """\
examples:
  kubellm eval -f my-model.yaml --endpoint http://localhost:8000/v1
  kubectl port-forward svc/my-model 8000:8000 &
  kubellm eval -f my-model.yaml --endpoint http://localhost:8000 -o json
  kubellm eval -f my-model.yaml --endpoint URL --checks-file checks.jsonl   # spec checksFrom
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="run spec.evaluation's checks against an OpenAI-compatible endpoint",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-f", "--filename", metavar="FILE|-",
                     help="a manifest with the LLMDeployment (its spec.evaluation)")
    src.add_argument("--evaluation", metavar="JSON",
                     help="spec.evaluation itself as JSON (what the evaluation Job passes)")
    p.add_argument("--name", help="the LLMDeployment to evaluate when the file holds several")
    p.add_argument("--endpoint", required=True, metavar="URL",
                   help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--model", help="model name in requests (default: spec.servedModelName, "
                   "else spec.model.repo)")
    p.add_argument("--checks-file", metavar="FILE",
                   help="the checks of spec.evaluation.checksFrom (JSON Lines or YAML list)")
    p.add_argument("--checks-source", metavar="TEXT", help=argparse.SUPPRESS)
    p.add_argument("--retries", type=int, default=3, help="retries of a failed connection")
    p.add_argument("--termination-log", metavar="PATH",
                   help="also write the bounded report there (the Job's termination message)")
    p.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace) -> tuple[EvaluationSpec, str | None]:
    """spec.evaluation and the model name from the file (or --evaluation)."""
    from kubellm.api.v1alpha1 import EvaluationSpec
    from kubellm.commands.plan import _read_sources
    from kubellm.errors import SpecError
    from kubellm.manifests import field_path, parse_documents

    if args.evaluation is not None:
        from pydantic import ValidationError
        try:
            return EvaluationSpec.model_validate(json.loads(args.evaluation)), None
        except json.JSONDecodeError as exc:
            raise SpecError("--evaluation", f"not JSON: {exc.msg}") from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise SpecError(f"spec.evaluation.{field_path(first['loc'])}".rstrip("."),
                            first["msg"].removeprefix("Value error, ")) from None
    deployments = []
    for source, text in _read_sources([args.filename]):
        deployments += parse_documents(text, source).deployments
    if args.name:
        deployments = [d for d in deployments if d.metadata.name == args.name]
    if len(deployments) != 1:
        names = ", ".join(str(d.metadata.name) for d in deployments) or "none"
        raise SpecError(f"-f {args.filename}", f"holds {len(deployments)} LLMDeployments "
                        f"({names})", "keep one, or pick one with --name")
    llmd = deployments[0]
    if llmd.spec.evaluation is None:
        raise SpecError(f"{llmd.metadata.name}: spec.evaluation", "not set",
                        "add spec.evaluation.checks (see docs/evaluation.md)")
    return llmd.spec.evaluation, llmd.spec.served_model_name or llmd.spec.model.repo


def _checks(spec: EvaluationSpec, args: argparse.Namespace) -> list[Check]:
    from kubellm.errors import SpecError
    from kubellm.evaluation.checks import inline_checks, parse_checks_text

    if spec.checks_from is None:
        return inline_checks(spec)
    ref = spec.checks_from.config_map_ref
    source = args.checks_source or f"ConfigMap {ref.name} key {ref.key}"
    if not args.checks_file:
        raise SpecError("spec.evaluation.checksFrom", f"the checks are in {source}",
                        f"pass them with --checks-file (kubectl get configmap {ref.name} -o "
                        f"jsonpath='{{.data.{ref.key}}}' > checks.jsonl)")
    path = Path(args.checks_file)
    if not path.is_file():
        raise SpecError(f"spec.evaluation.checksFrom: {source}", "not found",
                        "create the ConfigMap with that key in the deployment's namespace")
    return parse_checks_text(path.read_text(encoding="utf-8"), source)


def _write_log(path: str | None, report: Report) -> None:
    if path:
        from kubellm.evaluation.report import encode

        Path(path).write_bytes(encode(report))


def _print(report: Report, output: str, endpoint: str) -> None:
    from kubellm.evaluation.report import to_status

    status = to_status(report, revision=None, generation=None, spec_hash=None).dump()
    status["endpoint"] = endpoint
    if output == "json":
        print(json.dumps(status, indent=2))
        return
    if output == "yaml":
        import yaml

        print(yaml.safe_dump(status, sort_keys=False), end="")
        return
    for check in report.checks:
        line = f"{'PASS' if check.passed else 'FAIL'}  {check.name}  {check.duration_seconds:.2f}s"
        print(line + (f"  {check.failure}" if check.failure else ""))
    if report.error:
        print(f"evaluation failed: {report.error}")
        return
    verdict = "passed" if report.passed else "below threshold"
    print(f"pass rate {report.pass_rate:.1%} ({report.total - report.failed}/{report.total} "
          f"checks), minimum {report.min_pass_rate:.1%}: {verdict} "
          f"({report.duration_seconds:.1f}s, {endpoint})")


def run(args: argparse.Namespace) -> int:
    from kubellm.endpoint import OpenAIClient
    from kubellm.errors import SpecError
    from kubellm.evaluation.report import failed_report
    from kubellm.evaluation.runner import run as run_checks

    try:
        spec, model = _load(args)
        checks = _checks(spec, args)
        model = args.model or model
        if not model:
            raise SpecError("--model", "not given", "name the served model (--model NAME)")
    except SpecError as exc:
        _write_log(args.termination_log, failed_report(str(exc), 1.0))
        raise
    client = OpenAIClient(args.endpoint, model, timeout=spec.request_timeout_seconds,
                          retries=max(args.retries, 0))
    report = run_checks(checks, client.complete, min_pass_rate=spec.min_pass_rate,
                        timeout_seconds=spec.timeout_seconds)
    _write_log(args.termination_log, report)
    _print(report, args.output, client.base)
    if report.error:
        print(f"error: {report.error}", file=sys.stderr)
        return 2
    return 0 if report.passed else 1
