"""``kubellm plan``: the offline twin of the operator.

For each LLMDeployment in the input it resolves the model facts (Hub, mirror via HF_ENDPOINT, or
the offline cache with HF_HUB_OFFLINE=1), applies the licence policy, sizes against the inventory
and prints the decision and the objects the operator would create. Exit code 0 when every
deployment is allowed and fits, 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubellm.commands.catalog_flags import add_catalog_flags, gpu_catalog, runtime_images

if TYPE_CHECKING:
    from kubellm.errors import KubellmError

EPILOG = """\
examples:
  kubellm plan -f examples/qwen2.5-7b-l4.yaml
  kubellm plan -f examples/ --policy examples/licensepolicy.yaml -o json
  cat my.yaml | kubellm plan -f - --inventory examples/cluster/inventory.yaml
  kubellm plan -f my.yaml --kubeconfig ~/.kube/config     # size against the cluster's GPUs

environment: HF_ENDPOINT (mirror), HF_TOKEN (gated repos), HF_HUB_OFFLINE=1 (cache only),
HF_HOME / HF_HUB_CACHE (cache location), as every huggingface_hub program.
offline, on the example models' real metadata (no Hub, no weights), from a checkout:
  HF_HUB_OFFLINE=1 HF_HUB_CACHE=$(python scripts/seed_hf_cache.py /tmp/kubellm-hf) \
    kubellm plan -f examples/
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="dry-run: licence decision, GPU sizing and objects for LLMDeployments",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        metavar="FILE|DIR|-",
        help="manifest file, directory of *.yaml, or - for stdin (repeatable)",
    )
    p.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="FILE",
        help="LicensePolicy manifest(s); policies inside -f files count too",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--inventory",
        metavar="FILE",
        help="node pools [{gpuProduct, gpusPerNode, nodes}] (default: every "
        "catalogue GPU, one node of 8)",
    )
    src.add_argument(
        "--kubeconfig", metavar="PATH", help="size against the GPUs of this cluster's Nodes"
    )
    p.add_argument("-o", "--output", choices=("text", "yaml", "json"), default="text")
    p.add_argument(
        "--show-objects", action="store_true", help="in text output, also print the manifests"
    )
    add_catalog_flags(p)  # the operator's --gpu-catalog / --runtime-image, for the same plan
    p.set_defaults(func=run)


def _read_sources(names: list[str]) -> list[tuple[str, str]]:
    from kubellm.errors import SpecError

    def text_of(path: Path) -> str:
        try:
            return path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(str(path), f"not UTF-8 text (byte {exc.start})",
                            "manifests are UTF-8 YAML or JSON") from None
        except OSError as exc:
            raise SpecError(str(path), f"cannot be read: {exc.strerror or exc}") from None

    out: list[tuple[str, str]] = []
    for name in names:
        if name == "-":
            try:
                out.append(("<stdin>", sys.stdin.read()))
            except UnicodeDecodeError as exc:
                raise SpecError("<stdin>", f"not UTF-8 text (byte {exc.start})") from None
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            out.extend((str(f), text_of(f)) for f in files)
        elif path.is_file():
            out.append((str(path), text_of(path)))
        else:
            raise SpecError(f"-f {name}", "no such file or directory")
    return out


def load_inventory(args: argparse.Namespace, gpus: Any = None) -> Any:
    """The inventory of ``--inventory``/``--kubeconfig``/the catalogue, its GPU products read in
    ``gpus`` (a ``GpuCatalog``; None: the built-in one)."""
    from kubellm import sizing
    from kubellm.errors import SpecError

    if args.inventory:
        import yaml

        path = Path(args.inventory)
        if not path.is_file():
            raise SpecError(f"--inventory {args.inventory}", "no such file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise SpecError(f"--inventory {args.inventory}", f"not valid YAML: {exc}") from None
        return sizing.inventory_from_file(data, source=f"file:{path}", catalog=gpus)
    if args.kubeconfig:
        return _cluster_inventory(args.kubeconfig, gpus)
    return sizing.default_inventory(gpus)


@dataclass(frozen=True)
class ClusterSnapshot:
    """Nodes, pods and kubellm serving Deployments of a live cluster, read once per plan run."""

    nodes: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    gpus: Any = None  # the GpuCatalog the products are read in (None: the built-in one)

    def inventory(self, own: tuple[str, str] | None = None) -> Any:
        """Free GPUs as the operator counts them for ``own`` (kubellm.sizing.commitments)."""
        from kubellm.sizing.commitments import committed_inventory, merge_commitments

        promised = merge_commitments({}, self.deployments)
        return committed_inventory(self.nodes, self.pods, promised, own, catalog=self.gpus)


def _cluster_inventory(kubeconfig: str, gpus: Any = None) -> ClusterSnapshot:
    """Nodes, pods and serving Deployments of a live cluster, read once through the operator's
    own adapter (``kubellm.k8s``); ``run`` derives the inventory per deployment from them."""
    from kubellm import naming
    from kubellm.errors import ClusterError, KubellmError
    from kubellm.k8s.cluster import KubeCluster, load_api_client

    try:
        cluster = KubeCluster(load_api_client(kubeconfig))
        nodes = cluster.list("v1", "Node")
        pods = cluster.list("v1", "Pod")
    except Exception as exc:  # bad kubeconfig, unreachable, refused: say which cluster and why
        raise ClusterError(
            f"cannot read Nodes/Pods with --kubeconfig {kubeconfig}: {exc}"
        ) from None
    try:  # GPUs promised to kubellm deployments whose pods are not all bound yet
        deployments = cluster.list("apps/v1", "Deployment", None, naming.SERVING_SELECTOR)
    except KubellmError:  # e.g. no RBAC to list Deployments: size against bound pods only
        deployments = []
    return ClusterSnapshot(nodes, pods, deployments, gpus)


def build_report(plan: Any) -> dict[str, Any]:
    """The JSON document for one deployment (``-o json``)."""
    from kubellm.reconcile.status import claims_wire

    facts = plan.facts
    lic = plan.license.to_dict() if plan.license is not None else None
    sizing = None
    if plan.sizing is not None:
        sizing = plan.sizing.to_status().model_dump(by_alias=True, mode="json")
        sizing["considered"] = list(plan.sizing.considered)
        sizing["nodesPerReplica"] = plan.sizing.nodes_per_replica or 1
    return {
        "name": plan.name,
        "namespace": plan.namespace,
        "model": {
            "repo": facts.repo,
            "revision": facts.revision,
            "sha": facts.sha,
            "source": facts.source,
            "declared": list(facts.declared),
            "claims": claims_wire(facts),  # the card's model-index, as published
        },
        "license": lic,
        "sizing": sizing,
        "runtime": plan.runtime,
        "deployable": plan.deployable,
        "refusal": (
            {"reason": plan.refusal_reason, "message": plan.refusal} if plan.refusal else None
        ),
        "warnings": list(plan.warnings),
        "cacheKey": plan.cache_key,
        "objects": list(plan.objects),
    }


def run(args: argparse.Namespace) -> int:
    from kubellm.errors import KubellmError
    from kubellm.manifests import Manifests, parse_documents
    from kubellm.planner import plan_deployment

    gpus = gpu_catalog(args)
    images = runtime_images(args)
    manifests = Manifests()
    sources = _read_sources(args.filename) + _read_sources(args.policy)
    for source, text in sources:
        parsed = parse_documents(text, source)
        manifests.deployments += parsed.deployments
        manifests.policies += parsed.policies
        manifests.ignored += parsed.ignored
        manifests.documents += parsed.documents
    if not manifests.deployments:
        from kubellm.errors import SpecError

        read = ", ".join(source for source, _ in sources) or "no *.yaml file"
        seen = f"; ignored {', '.join(manifests.ignored[:5])}" if manifests.ignored else ""
        raise SpecError(
            f"-f {read}",
            f"no LLMDeployment found in the input ({manifests.documents} "
            f"document{'' if manifests.documents == 1 else 's'}{seen})",
        )
    loaded = load_inventory(args, gpus)
    inventory = loaded.inventory() if isinstance(loaded, ClusterSnapshot) else loaded

    from kubellm.modelinfo import FactsResolver

    resolver = FactsResolver()
    reports: list[dict[str, Any]] = []
    ok = True
    for llmd in manifests.deployments:
        spec = llmd.spec
        try:
            facts = resolver.resolve(
                spec.model.repo,
                spec.model.revision,
                declared=spec.model,
                gguf_file=spec.model.file,
            )
        except KubellmError as exc:
            ok = False
            reports.append(_facts_failure(llmd, exc))
            continue
        own = (llmd.metadata.namespace or "default", llmd.metadata.name or "unnamed")
        sized_against = loaded.inventory(own) if isinstance(loaded, ClusterSnapshot) else inventory
        plan = plan_deployment(llmd, facts, manifests.policies, sized_against,
                               hub_endpoint=os.environ.get("HF_ENDPOINT") or None,
                               runtime_images=images)
        ok = ok and plan.deployable
        reports.append(build_report(plan))

    if args.output == "json":
        doc: Any = reports[0] if len(reports) == 1 else reports
        print(json.dumps(doc, indent=2, sort_keys=False))
    elif args.output == "yaml":
        import yaml

        print(yaml.safe_dump_all(reports, sort_keys=False), end="")
    else:
        from kubellm.commands.plan_text import render_text

        render_text(reports, inventory, show_objects=args.show_objects)
    return 0 if ok else 1


def _facts_failure(llmd: Any, exc: KubellmError) -> dict[str, Any]:
    reason = exc.reason
    return {
        "name": llmd.metadata.name,
        "namespace": llmd.metadata.namespace or "default",
        "model": {"repo": llmd.spec.model.repo, "revision": llmd.spec.model.revision},
        "license": None,
        "sizing": None,
        "runtime": None,
        "deployable": False,
        "refusal": {"reason": reason, "message": str(exc)},
        "warnings": [],
        "cacheKey": None,
        "objects": [],
    }
