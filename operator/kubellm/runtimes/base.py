"""The runtime interface and what every runtime renders the same way (pure).

A runtime turns a ``RenderContext`` (spec, model facts, sizing, cache) into a Deployment and a
Service. ``vllm.py`` / ``tgi.py`` only say what differs: the server's arguments and environment.
Everything else (GPU placement, probes sized for the model, the cache mount, /dev/shm, the
rollout strategy, the spec hash) is decided here, once; the context is ``context.py``, the
checks before rendering (quantization, GPU, layout) are ``support.py``.

Choices, with reasons:

- Startup probe budget = runtime base (CUDA graphs / compile / warm-up) + weight bytes read at a
  conservative 100 MiB/s from the cache PVC (+ the bytes the pod downloads, ``download_bytes``,
  at 25 MiB/s from the Hub when there is no cache), at least 10 min; ``failureThreshold x
  periodSeconds >= budget``. Without the cache the pod-local emptyDir holds those downloaded bytes
  x 1.2 + 2 GiB (TGI downloads every top-level safetensors file, ``hub_download`` in the
  catalogue, so a repo with ``consolidated.safetensors`` needs room for both copies).
  Readiness probes a real endpoint; liveness uses ``/health`` with generous timeouts (a loaded
  GPU answers slowly, and a liveness kill costs a full model reload).
- Rollout: GPUs are scarce. With one replica, ``maxSurge 1 / maxUnavailable 0``: the old pod keeps
  serving while the new one loads; if no spare GPU exists the new pod stays Pending and the
  Deployment reports ProgressDeadlineExceeded - never an outage. With two or more replicas,
  ``maxSurge 0 / maxUnavailable 1``: replace one pod at a time inside the GPUs already held, so a
  rollout never needs a GPU the deployment does not have (capacity dips by one replica).
  ``progressDeadlineSeconds`` = startup budget + 10 min, so a slow load is not reported as stuck.
- Drain: a replaced pod sleeps in preStop (``rollout.endpoint_drain_seconds``) while the Service
  stops routing to it, then the runtime finishes accepted requests (``drain``: vLLM needs
  ``--shutdown-timeout``, else it aborts them); the grace period covers both.
- ``enableServiceLinks: false``: a Service named ``vllm`` would inject ``VLLM_PORT=tcp://...``,
  which vLLM reads as its own setting and crashes on.
- The container's ``command`` is the catalogue's (vLLM: ``vllm serve``); a runtime without one
  (TGI) gets args only, so the image's entrypoint runs. ``terminationGracePeriodSeconds`` is the
  runtime's (``termination_grace_seconds``: TGI drains for up to 90 s).
- Node placement: required node affinity on ``nvidia.com/gpu.product`` (the chosen GPU and its
  other label spellings), the ``nvidia.com/gpu`` NoSchedule toleration, GPU limits.
- ``kubellm.io/spec-hash`` (sha256 of the canonical JSON of the pod template) on the pod template
  and the Deployment, for drift detection without diffing whole objects.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from kubellm.errors import DoesNotFitError, SpecError
from kubellm.modelsource import layout
from kubellm.naming import (
    ANNOTATION_CACHE_KEY,
    ANNOTATION_MODEL,
    ANNOTATION_REVISION,
    ANNOTATION_SPEC_HASH,
    COMPONENT_SERVER,
    LABEL_RUNTIME,
    labels,
    selector_labels,
    serving_name,
)
from kubellm.runtimes.catalog import RuntimeInfo, endpoint_drain_seconds, runtime_info
from kubellm.runtimes.catalog import startup_budget as _budget

# re-exported: kubellm.runtimes.base stays the import path of the runtime interface
from kubellm.runtimes.context import RenderContext as RenderContext
from kubellm.runtimes.context import endpoint_url as endpoint_url
from kubellm.runtimes.support import check_layout, check_support, supported_text

if TYPE_CHECKING:
    from kubellm.sizing.types import GpuType, Quant

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
SERVICE_PORT = 80
MODEL_MOUNT = "/models"
CONTAINER_NAME = "server"
PROGRESS_MARGIN_SECONDS = 600
GIB = 1024**3


def spec_hash(template: dict[str, Any]) -> str:
    """sha256 (16 hex) of the canonical JSON of a pod template."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _env_list(values: dict[str, Any], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kubellm's env (name -> value or EnvVar dict) with the user's merged over it, sorted."""
    merged: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        merged[name] = value if isinstance(value, dict) else {"name": name, "value": str(value)}
    for index, item in enumerate(extra):
        given = item.get("name") if isinstance(item, dict) else None
        if not isinstance(given, str) or not given:
            raise SpecError(
                f"spec.env[{index}].name",
                "every environment variable needs a name",
                'write it as {"name": "KEY", "value": "..."} (a core/v1 EnvVar)',
            )
        merged[given] = item
    return [merged[k] for k in sorted(merged)]


class Runtime(ABC):
    """One serving runtime. Subclasses give ``name`` and the server's ``args`` / ``extra_env``."""

    name: str
    #: The container of a multi-node replica's worker pods (``worker_command`` runs in it).
    worker_container: str = "worker"

    @property
    def info(self) -> RuntimeInfo:
        return runtime_info(self.name)

    @property
    def multi_node(self) -> bool:
        """Can one replica span several nodes (a LeaderWorkerSet; runtimes.yaml multi_node)."""
        return self.info.multi_node is not None

    # --- support (kubellm.runtimes.support) ---------------------------------------------------

    def supported_text(self) -> str:
        """``none (compute capability 7.0+), fp8 (8.0+), ...`` for error messages."""
        return supported_text(self.info)

    def supports(self, quant: Quant, gpu: GpuType | None) -> None:
        """Raise UnsupportedError (listing what is supported) unless this runtime can serve
        ``quant`` on ``gpu`` (``gpu`` None: the quantization alone is checked)."""
        check_support(self.name, quant, gpu)

    def check(self, ctx: RenderContext) -> None:
        """Everything that must hold before rendering (support, fit, cache, parallelism)."""
        if not ctx.sizing.fits:
            raise DoesNotFitError(ctx.sizing.message or "the sizing found no GPU configuration")
        self.supports(ctx.quant, ctx.gpu)
        check_layout(self.name, ctx, multi_node=self.multi_node)

    # --- what differs per runtime ------------------------------------------------------------

    @abstractmethod
    def args(self, ctx: RenderContext) -> list[str]:
        """The server's arguments (kubellm's, sorted by flag, then spec.args as written)."""

    def extra_env(self, ctx: RenderContext) -> dict[str, Any]:
        """Runtime-specific environment beyond the common one."""
        return {}

    def leader_command(self, ctx: RenderContext, server: list[str]) -> dict[str, list[str]]:
        """``command``/``args`` of the leader pod of a replica spanning ``ctx.nodes`` nodes;
        ``server`` is the single-node command line. Only runtimes with ``multi_node``."""
        raise NotImplementedError(f"{self.name} has no multi-node leader")

    def worker_command(self, ctx: RenderContext, server: list[str]) -> dict[str, list[str]]:
        """``command``/``args`` of the other pods of that replica (no probes, no port)."""
        raise NotImplementedError(f"{self.name} has no multi-node worker")

    # --- shared rendering --------------------------------------------------------------------

    def image(self, ctx: RenderContext) -> str:
        return ctx.image or ctx.spec.image or self.info.image

    def env(self, ctx: RenderContext) -> list[dict[str, Any]]:
        values: dict[str, Any] = dict(self.info.env)
        # the model source's part (kubellm.modelsource): where the engine finds the cache, and
        # offline with it or the token when the engine downloads itself
        values.update(layout(ctx.spec.model.source).pod_env(
            MODEL_MOUNT, cached=ctx.cache is not None, token_ref=ctx.spec.hub_token_secret_ref))
        values.update(self.extra_env(ctx))
        return _env_list(values, list(ctx.spec.env))

    def download_bytes(self, ctx: RenderContext) -> int:
        """Bytes a pod without the cache downloads before it can load: the checkpoint's weights,
        or (``hub_download`` in the catalogue) every file the engine's own downloader selects
        among the repo's weight files. A file of unknown size counts as a full copy."""
        selection = self.info.hub_download
        if selection is None or not ctx.facts.weight_files:
            return ctx.weight_bytes
        picked = [f for f in ctx.facts.weight_files if selection.selects(f.path)]
        if not picked:
            return ctx.weight_bytes
        known = sum(f.size for f in picked if f.size is not None)
        unknown = sum(1 for f in picked if f.size is None)
        return max(known + unknown * ctx.weight_bytes, ctx.weight_bytes)

    def startup_seconds(self, ctx: RenderContext) -> int:
        """The time a pod may take to load the model before the startup probe gives up."""
        budget = _budget()
        seconds = self.info.probes.startup_base_seconds
        seconds += math.ceil(ctx.weight_bytes / budget.load_bytes_per_second)
        if ctx.cache is None:
            seconds += math.ceil(self.download_bytes(ctx) / budget.download_bytes_per_second)
        return max(budget.min_seconds, seconds)

    def probes(self, ctx: RenderContext) -> dict[str, dict[str, Any]]:
        period = _budget().period_seconds
        startup = self.startup_seconds(ctx)
        p = self.info.probes
        return {
            "livenessProbe": {
                "httpGet": {"path": p.liveness_path, "port": "http"},
                "periodSeconds": 30,
                "timeoutSeconds": 10,
                "failureThreshold": 5,
            },
            "readinessProbe": {
                "httpGet": {"path": p.readiness_path, "port": "http"},
                "periodSeconds": 10,
                "timeoutSeconds": 5,
                "failureThreshold": 3,
            },
            "startupProbe": {
                "httpGet": {"path": p.startup_path, "port": "http"},
                "periodSeconds": period,
                "timeoutSeconds": 5,
                "failureThreshold": math.ceil(startup / period),
            },
        }

    def resources(self, ctx: RenderContext) -> dict[str, Any]:
        """spec.resources merged under kubellm's GPU count (the GPU count is always kubellm's)."""
        user = ctx.spec.resources or {}
        out: dict[str, Any] = {}
        for section in ("limits", "requests"):
            given = user.get(section) or {}
            if not isinstance(given, dict):
                raise SpecError(
                    f"spec.resources.{section}",
                    f"must be a mapping of resource name to quantity, not {type(given).__name__}",
                    'e.g. {"memory": "64Gi", "cpu": "8"}',
                )
            values = {str(k): v for k, v in given.items()}
            if section == "limits" or GPU_RESOURCE in values:
                values[GPU_RESOURCE] = str(ctx.gpus_per_pod)
            if values:
                out[section] = dict(sorted(values.items()))
        for key in sorted(k for k in user if k not in ("limits", "requests")):
            out[key] = user[key]
        return out

    def container(self, ctx: RenderContext) -> dict[str, Any]:
        """The serving container."""
        self.check(ctx)
        mounts: list[dict[str, Any]] = []
        if self.needs_shm(ctx):
            mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        cache_mount: dict[str, Any] = {"name": "model-cache", "mountPath": MODEL_MOUNT}
        if ctx.cache is not None:
            cache_mount["readOnly"] = True
        mounts.append(cache_mount)
        command = {"command": list(self.info.command)} if self.info.command else {}
        return {
            "name": CONTAINER_NAME,
            "image": self.image(ctx),
            **command,
            "args": self.args(ctx),
            "env": self.env(ctx),
            "lifecycle": {"preStop": {"sleep": {"seconds": endpoint_drain_seconds()}}},
            "ports": [{"name": "http", "containerPort": self.info.port, "protocol": "TCP"}],
            **self.probes(ctx),
            "resources": self.resources(ctx),
            "volumeMounts": mounts,
        }

    def needs_shm(self, ctx: RenderContext) -> bool:
        """A memory-backed /dev/shm: NCCL between the GPUs of one pod needs more than the
        64 MiB default; some runtimes need it always (``shm_always`` in runtimes.yaml)."""
        return ctx.gpus_per_pod > 1 or self.info.shm_always

    def volumes(self, ctx: RenderContext) -> list[dict[str, Any]]:
        volumes: list[dict[str, Any]] = []
        if self.needs_shm(ctx):
            volumes.append(
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": self.info.shm_size}}
            )
        if ctx.cache is not None:
            volumes.append(
                {
                    "name": "model-cache",
                    "persistentVolumeClaim": {"claimName": ctx.cache.pvc_name, "readOnly": True},
                }
            )
        else:  # no shared cache: download into pod-local scratch of the right size
            size = math.ceil((self.download_bytes(ctx) * 1.2 + 2 * GIB) / GIB)
            volumes.append({"name": "model-cache", "emptyDir": {"sizeLimit": f"{size}Gi"}})
        return volumes

    def affinity(self, ctx: RenderContext) -> dict[str, Any] | None:
        product = ctx.sizing.gpu_type
        if not product:
            return None
        values = {product}
        if ctx.gpu is not None and product in (ctx.gpu.product, *ctx.gpu.products):
            values |= {ctx.gpu.product, *ctx.gpu.products}
        term = {"key": GPU_PRODUCT_LABEL, "operator": "In", "values": sorted(values)}
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [term]}]
                }
            }
        }

    def tolerations(self, ctx: RenderContext) -> list[dict[str, Any]]:
        ours: list[dict[str, Any]] = [
            {"effect": "NoSchedule", "key": GPU_RESOURCE, "operator": "Exists"}
        ]
        return ours + [t for t in ctx.spec.tolerations if t not in ours]

    def pod_annotations(self, ctx: RenderContext, *, scrape: bool = True) -> dict[str, str]:
        annotations = {
            ANNOTATION_MODEL: ctx.facts.repo,
            ANNOTATION_REVISION: ctx.revision,
        }
        if scrape:  # the server's metrics (not on pods that run no server, e.g. Ray workers)
            annotations.update(
                {
                    "prometheus.io/path": self.info.metrics_path,
                    "prometheus.io/port": str(self.info.port),
                    "prometheus.io/scrape": "true",
                }
            )
        if ctx.cache is not None:
            annotations[ANNOTATION_CACHE_KEY] = ctx.cache.key
        return dict(sorted(annotations.items()))

    def pod_labels(self, ctx: RenderContext) -> dict[str, str]:
        pod = {**labels(ctx.name, COMPONENT_SERVER), LABEL_RUNTIME: self.name}
        return dict(sorted(pod.items()))

    def pod_template(
        self, ctx: RenderContext, container: dict[str, Any] | None = None, *, scrape: bool = True
    ) -> dict[str, Any]:
        """The serving pod template (``container`` replaces the server container, e.g. for the
        leader and workers of a multi-node replica), its spec hash annotated."""
        pod_spec: dict[str, Any] = {}
        affinity = self.affinity(ctx)
        if affinity:
            pod_spec["affinity"] = affinity
        pod_spec.update(
            {
                "automountServiceAccountToken": False,
                "containers": [container if container is not None else self.container(ctx)],
                "enableServiceLinks": False,
            }
        )
        if ctx.spec.node_selector:
            pod_spec["nodeSelector"] = dict(sorted(ctx.spec.node_selector.items()))
        pod_spec["terminationGracePeriodSeconds"] = self.info.termination_grace_seconds
        pod_spec["tolerations"] = self.tolerations(ctx)
        pod_spec["volumes"] = self.volumes(ctx)
        template = {
            "metadata": {
                "labels": self.pod_labels(ctx),
                "annotations": self.pod_annotations(ctx, scrape=scrape),
            },
            "spec": pod_spec,
        }
        annotations = {
            **template["metadata"]["annotations"],
            ANNOTATION_SPEC_HASH: spec_hash(template),
        }
        template["metadata"]["annotations"] = dict(sorted(annotations.items()))
        return template

    def strategy(self, replicas: int) -> dict[str, Any]:
        if replicas >= 2:
            rolling = {"maxSurge": 0, "maxUnavailable": 1}
        else:
            rolling = {"maxSurge": 1, "maxUnavailable": 0}
        return {"type": "RollingUpdate", "rollingUpdate": rolling}

    def render(self, ctx: RenderContext) -> list[dict[str, Any]]:
        """[Deployment, Service] for ``ctx`` (no ownerReferences: see naming.owner_reference),
        or [LeaderWorkerSet, Service] when a replica spans several nodes (refused by ``check``
        unless the runtime has ``multi_node``: ``leader_command``/``worker_command``).
        """
        if ctx.nodes > 1:
            from kubellm.runtimes import lws

            return lws.render(self, ctx)
        name = serving_name(ctx.name)
        replicas = ctx.spec.replicas if ctx.replicas is None else ctx.replicas
        template = self.pod_template(ctx)
        meta_labels = self.pod_labels(ctx)
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": ctx.namespace,
                "labels": meta_labels,
                "annotations": {
                    ANNOTATION_MODEL: ctx.facts.repo,
                    ANNOTATION_REVISION: ctx.revision,
                    ANNOTATION_SPEC_HASH: template["metadata"]["annotations"][ANNOTATION_SPEC_HASH],
                },
            },
            "spec": {
                "progressDeadlineSeconds": self.startup_seconds(ctx) + PROGRESS_MARGIN_SECONDS,
                "replicas": replicas,
                "selector": {"matchLabels": selector_labels(ctx.name)},
                "strategy": self.strategy(replicas),
                "template": template,
            },
        }
        return [deployment, self.service(ctx, selector_labels(ctx.name))]

    def service(self, ctx: RenderContext, selector: dict[str, str]) -> dict[str, Any]:
        """The ClusterIP Service on the server's OpenAI port, selecting ``selector``."""
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": serving_name(ctx.name),
                "namespace": ctx.namespace,
                "labels": self.pod_labels(ctx),
                "annotations": {ANNOTATION_MODEL: ctx.facts.repo},
            },
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [
                    {
                        "name": "http",
                        "port": SERVICE_PORT,
                        "targetPort": "http",
                        "protocol": "TCP",
                        "appProtocol": "http",
                    }
                ],
            },
        }


def flag_args(flags: dict[str, str | None], extra: list[str]) -> list[str]:
    """``--flag value`` pairs sorted by flag (None values dropped), then ``extra`` as given."""
    out: list[str] = []
    for flag in sorted(flags):
        value = flags[flag]
        if value is not None:
            out += [flag, value]
    return out + list(extra)
