"""The planner: facts + policy + inventory -> Plan (pure).

The same function serves ``kubellm plan`` and the operator, so what plan prints is what the
operator does. Steps, in order; the first that refuses decides the refusal reason:

1. licence: the LicensePolicy covering the namespace decides (``kubellm.license``);
2. quantization: resolve ``auto`` from the checkpoint (``kubellm.sizing.resolve_quant``);
3. runtime: explicit, or chosen by quantization (``kubellm.runtimes.choose_runtime``), and
   what the spec adds to its pod (args, env, image: ``kubellm.runtimes.guard``), so the pod can
   load only what the licence decision covered (``NotPermitted`` otherwise);
4. sizing against the inventory (``kubellm.sizing.size``);
5. runtime x quantization x GPU support check;
6. objects: the shared cache (PVC + download Job) and the serving Deployment + Service, or a
   LeaderWorkerSet + Service when one replica spans several nodes (vLLM only; a runtime that
   cannot span nodes is refused as Unsupported when vLLM would fit that way).

A denied (Enforce) or unfit deployment gets no objects at all: nothing half-created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from kubellm.api.v1alpha1 import LicensePolicy, LLMDeployment
from kubellm.errors import PermanentError, SpecError
from kubellm.facts import ModelFacts
from kubellm.modelsource import layout
from kubellm.reasons import Reason
from kubellm.sizing.types import Inventory, Quant, SizingResult


@dataclass(frozen=True)
class Plan:
    """What to do for one LLMDeployment.

    ``deployable`` is False when the licence denies (Enforce), nothing fits, or the spec is
    invalid/unsupported; then ``objects`` is empty and ``refusal`` says why (with numbers).
    ``cache_objects`` (PVC, download Job) and ``serving_objects`` (Deployment, Service) are
    complete manifests without ownerReferences (the operator adds them). ``objects`` is what to
    apply now: the cache objects, plus the serving objects unless the caller said the cache is
    not complete yet.
    """

    name: str
    namespace: str
    facts: ModelFacts
    license: Any  # kubellm.license.LicenseDecision
    sizing: SizingResult | None
    runtime: str | None
    quant: Quant | None = None
    cache_objects: tuple[dict[str, Any], ...] = ()
    serving_objects: tuple[dict[str, Any], ...] = ()
    objects: tuple[dict[str, Any], ...] = ()
    cache_key: str | None = None
    cache: Any = None  # kubellm.cache.CacheRef
    refusal_reason: str | None = None  # a kubellm.reasons.Reason value, as a plain str
    refusal: str | None = None  # human sentence with numbers
    warnings: tuple[str, ...] = field(default=())

    @property
    def deployable(self) -> bool:
        return self.refusal is None


def plan_deployment(
    llmd: LLMDeployment,
    facts: ModelFacts,
    policies: Sequence[LicensePolicy],
    inventory: Inventory,
    *,
    cache_complete: bool | None = None,
    today: date | None = None,
    image: str | None = None,
    hub_endpoint: str | None = None,
    runtime_images: Mapping[str, str] | None = None,
) -> Plan:
    """Decide everything for one LLMDeployment; never raises for user errors.

    ``image`` and ``hub_endpoint`` (HF_ENDPOINT, a mirror) go to the model download Job;
    ``runtime_images`` (``--runtime-image``: runtime -> image) replace the catalogue's serving
    images (``spec.image`` still wins).

    ``cache_complete``: None (plan: show everything), True (operator: the download finished),
    False (operator: hold the serving objects back until the cache is ready).
    """
    from kubellm import cache as cache_mod
    from kubellm import license as license_mod
    from kubellm import runtimes, sizing
    from kubellm.runtimes import guard

    name = llmd.metadata.name or "unnamed"
    namespace = llmd.metadata.namespace or "default"
    spec = llmd.spec
    policy = license_mod.select_policy(policies, namespace)
    decision = license_mod.decide(facts, policy, today=today)
    warnings = tuple(r.message for r in decision.reasons if getattr(r, "effect", "") == "warn")
    base = Plan(
        name=name,
        namespace=namespace,
        facts=facts,
        license=decision,
        sizing=None,
        runtime=None,
        warnings=warnings,
    )

    if facts.access_error is not None:  # gated without a usable token: the card was readable
        if not decision.allowed:
            return _refuse(base, Reason.LICENSE_DENIED, _denials(decision))
        return _refuse(base, Reason.GATED_MODEL, facts.access_error)

    try:
        quant = sizing.resolve_quant(spec, facts)
        runtime_name = (
            spec.runtime if spec.runtime != "auto" else runtimes.choose_runtime(spec, quant, None)
        )
        runtime = runtimes.get_runtime(runtime_name)
        runtime_image = (runtime_images or {}).get(runtime_name)
        guard.check_overrides(
            runtime_name, spec.args, spec.env, spec.image, runtime_image or runtime.info.image,
            policy.spec.allowed_images if policy is not None else (),
            policy.metadata.name if policy is not None else None,
        )
        result = sizing.size(facts, spec, inventory, runtime=runtime_name)
    except PermanentError as exc:
        return _refuse(base, exc.reason, exc.message)
    base = _replace(base, sizing=result, runtime=runtime_name, quant=quant)

    if not decision.allowed:
        return _refuse(base, Reason.LICENSE_DENIED, _denials(decision))
    if not result.fits:
        multi = _multi_node_instead(runtime, facts, spec, inventory)
        if multi is not None:
            return _refuse(base, Reason.UNSUPPORTED, multi)
        return _refuse(base, result.reason or Reason.DOES_NOT_FIT, result.message)

    gpu = sizing.lookup_gpu(result.gpu_type, inventory.gpus) if result.gpu_type else None
    try:
        runtime.supports(quant, gpu)
        cache_ref = None
        cache_objects: tuple[dict[str, Any], ...] = ()
        if not spec.cache.enabled and layout(spec.model.source).serve_by_path:
            raise SpecError(
                "spec.cache.enabled",
                f"a {spec.model.source} model is served from the shared cache by path "
                "(the engines cannot download from that source themselves)",
                "set spec.cache.enabled: true (the default)",
            )
        if spec.cache.enabled:
            operator_image = image or cache_mod.default_image()
            cache_ref = cache_mod.plan_cache(namespace, facts, quant, spec, image=operator_image)
            cache_objects = (
                cache_mod.render_pvc(cache_ref, namespace, spec),
                cache_mod.render_download_job(
                    cache_ref, namespace, facts, spec, image=operator_image,
                    hub_endpoint=hub_endpoint,
                ),
            )
        ctx = runtimes.RenderContext(
            name=name,
            namespace=namespace,
            spec=spec,
            facts=facts,
            sizing=result,
            cache=cache_ref,
            image=None if spec.image else runtime_image,
            gpu=gpu,
        )
        serving = tuple(runtime.render(ctx))
    except PermanentError as exc:
        return _refuse(base, exc.reason, exc.message)

    objects = cache_objects + (serving if cache_complete is not False else ())
    return _replace(
        base,
        cache_objects=cache_objects,
        serving_objects=serving,
        objects=objects,
        cache_key=cache_ref.key if cache_ref else None,
        cache=cache_ref,
    )


def _multi_node_instead(
    runtime: Any, facts: ModelFacts, spec: Any, inventory: Inventory
) -> str | None:
    """Why a runtime that cannot span nodes (TGI) is refused when vLLM would fit across several
    nodes; None when that is not the case (then the sizing's own refusal stands)."""
    from kubellm import sizing
    from kubellm.runtimes import DEFAULT_RUNTIME

    if runtime.multi_node:
        return None
    try:
        alt = sizing.size(facts, spec, inventory, runtime=DEFAULT_RUNTIME)
    except PermanentError:
        return None
    nodes = alt.nodes_per_replica or 1
    if not alt.fits or nodes <= 1:
        return None
    return (
        f"spec.runtime: runtime {runtime.name} cannot run one replica across several nodes (no "
        f"pipeline parallelism), and {facts.repo} needs {alt.gpus_per_replica} x "
        f"{alt.gpu_type} per replica ({nodes} nodes). vLLM can (a LeaderWorkerSet with Ray: tp "
        f"{alt.tensor_parallel_size} x pp {alt.pipeline_parallel_size}). Fix: set spec.runtime "
        f"to vllm or auto, or a GPU type with more memory in spec.gpu.type."
    )


def _denials(decision: Any) -> str:
    denials = [r.message for r in decision.reasons if getattr(r, "effect", "") == "deny"]
    return "; ".join(denials) or "denied by licence policy"


def _replace(plan: Plan, **changes: Any) -> Plan:
    from dataclasses import replace

    return replace(plan, **changes)


def _refuse(plan: Plan, reason: str, message: str) -> Plan:
    """``reason`` is a ``Reason`` (or an error's reason); stored as a plain ``str``, because the
    plan leaves kubellm as data (``kubellm plan -o yaml``: PyYAML's safe dumper refuses ``str``
    subclasses)."""
    return _replace(
        plan,
        refusal_reason=str(reason),
        refusal=message,
        objects=(),
        cache_objects=(),
        serving_objects=(),
    )
