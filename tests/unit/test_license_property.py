"""Property tests: no false "allowed" for non-commercial or EU-excluded models, whatever the chain.

The oracle reads the catalogue directly (every licence id, license_name and family of every repo
in the chain) instead of going through ``classify``: if any licence of the chain forbids
commercial use, a commercial Enforce policy without an applicable exception must deny; if any
licence excludes the EU for this model, an EU (member state) jurisdiction must deny.
"""

from __future__ import annotations

import datetime

from hypothesis import event, given, settings
from hypothesis import strategies as st

from kubellm.api.v1alpha1 import LicenseException, LicensePolicy, LicensePolicySpec, ObjectMeta
from kubellm.facts import Architecture, BaseModelRef, ModelFacts
from kubellm.license import decide, load_catalog
from kubellm.license.catalog import EU_MEMBERS, LicenseEntry

TODAY = datetime.date(2026, 11, 27)
CATALOG = load_catalog()

REPOS = [
    "acme/model",
    "acme/other-model",
    "meta-llama/Llama-3.2-11B-Vision-Instruct",
    "meta-llama/Llama-3.2-3B",
    "meta-llama/Llama-4-Scout-17B-16E",
    "meta-llama/Llama-3.1-8B",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "Qwen/Qwen2.5-3B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "mistralai/Mistral-Large-Instruct-2407",
    "mistralai/Codestral-22B-v0.1",
    "CohereLabs/c4ai-command-r-v01",
    "tencent/Hunyuan-7B-Instruct",
    "allenai/OLMo-2-1124-7B",
    "TheBloke/whatever-GGUF",
]
HUB_IDS = sorted({e.hub_id for e in CATALOG.licenses.values()} | {"unknown", "other", "custom-x"})
NAMES = sorted(set(CATALOG.aliases) | {"acme-licence"})

licence_ids = st.one_of(st.none(), st.sampled_from(HUB_IDS))
licence_names = st.one_of(st.none(), st.sampled_from(NAMES))


@st.composite
def base_refs(draw: st.DrawFn) -> BaseModelRef:
    lic = draw(licence_ids)
    return BaseModelRef(
        repo=draw(st.sampled_from(REPOS)),
        relation=draw(st.sampled_from(["finetune", "quantized", "merge", "adapter"])),
        license=lic,
        license_name=draw(licence_names) if lic in (None, "other") else None,
        resolved=draw(st.booleans()),
    )


@st.composite
def model_facts(draw: st.DrawFn) -> ModelFacts:
    lic = draw(licence_ids)
    arch = draw(st.one_of(st.none(), st.builds(Architecture, multimodal=st.booleans())))
    return ModelFacts(
        repo=draw(st.sampled_from(REPOS)),
        license=lic,
        license_name=draw(licence_names) if lic in (None, "other") else None,
        gated=draw(st.sampled_from([None, "auto", "manual"])),
        eu_disallowed=draw(st.booleans()),
        base_models=tuple(draw(st.lists(base_refs(), max_size=3))),
        architecture=arch,
        pipeline_tag=draw(st.sampled_from([None, "text-generation", "image-text-to-text"])),
        declared=draw(st.sampled_from([(), ("license",)])),
    )


@st.composite
def policies(draw: st.DrawFn, /, **fixed: object) -> LicensePolicy:
    exceptions = draw(
        st.lists(
            st.builds(
                LicenseException,
                model=st.sampled_from(["nobody/*", "acme/none", "*"]),
                reason=st.just("test"),
                expires=st.sampled_from([None, "2020-01-01", "2030-01-01"]),
            ),
            max_size=2,
        )
    )
    allowed = draw(st.lists(st.sampled_from(HUB_IDS + NAMES), max_size=3, unique=True))
    spec = {
        "mode": "Enforce",
        "allowed_classes": draw(
            st.lists(
                st.sampled_from(["permissive", "restrictive-community", "research-only"]),
                unique=True,
            )
        ),
        "allowed_licenses": allowed,
        "commercial_use": draw(st.booleans()),
        "jurisdiction": draw(st.sampled_from([None, "EU", "DE", "FR", "US", "UK", "KR", "IE"])),
        "monthly_active_users": draw(st.sampled_from([None, 1000, 10**9])),
        "require_open_source": draw(st.booleans()),
        "allow_gated": draw(st.booleans()),
        "unknown_license": draw(st.sampled_from(["Deny", "Warn"])),
        "exceptions": exceptions,
    }
    spec.update(fixed)
    return LicensePolicy(metadata=ObjectMeta(name="p"), spec=LicensePolicySpec(**spec))


def _entries(facts: ModelFacts) -> list[tuple[LicenseEntry, bool | None]]:
    """Catalogue entries of every repo of the chain, each with its family's multimodal flag."""
    out: list[tuple[LicenseEntry, bool | None]] = []
    chain = [(facts.repo, facts.license, facts.license_name)]
    chain += [(b.repo, b.license, b.license_name) for b in facts.base_models]
    for repo, lic, name in chain:
        entry = CATALOG.lookup(lic, name) if lic and lic != "unknown" else None
        if entry is not None:
            out.append((entry, None))
        family = CATALOG.family(repo)
        if family is not None:
            out.append((CATALOG.licenses[family.license_key], family.multimodal))
    return out


def _exception_applies(policy: LicensePolicy, facts: ModelFacts) -> bool:
    import fnmatch

    for exc in policy.spec.exceptions:
        if fnmatch.fnmatchcase(facts.repo.lower(), exc.model.lower()) and (
            exc.expires is None or datetime.date.fromisoformat(exc.expires) >= TODAY
        ):
            return True
    return False


def _known_multimodal(facts: ModelFacts, entries: list[tuple[LicenseEntry, bool | None]]) -> bool:
    if any(mm is True for _, mm in entries) or facts.pipeline_tag == "image-text-to-text":
        return True
    return facts.architecture is not None and facts.architecture.multimodal


@settings(max_examples=300, deadline=None)
@given(facts=model_facts(), policy=policies(commercial_use=True))
def test_no_false_allowed_for_non_commercial(facts: ModelFacts, policy: LicensePolicy) -> None:
    decision = decide(facts, policy, today=TODAY)
    non_commercial = [
        e.key for e, _ in _entries(facts) if e.commercial == "no" or e.class_ == "research-only"
    ]
    event("non-commercial in chain" if non_commercial else "commercial chain")
    if non_commercial and not _exception_applies(policy, facts):
        assert not decision.allowed, (non_commercial, decision.reasons)
        assert decision.license.class_ == "research-only"


@settings(max_examples=300, deadline=None)
@given(
    facts=model_facts(),
    policy=policies(jurisdiction="EU"),
    member=st.sampled_from(sorted(EU_MEMBERS | {"EU"})),
)
def test_no_false_allowed_for_eu_excluded(
    facts: ModelFacts, policy: LicensePolicy, member: str
) -> None:
    policy = policy.model_copy(
        update={"spec": policy.spec.model_copy(update={"jurisdiction": member})}
    )
    decision = decide(facts, policy, today=TODAY)
    entries = _entries(facts)
    multimodal = _known_multimodal(facts, entries)
    excluded = facts.eu_disallowed or any(
        "EU" in g.regions and (g.scope == "all" or multimodal) for e, _ in entries for g in e.geo
    )
    event("EU-excluded" if excluded else "not excluded")
    if excluded and not _exception_applies(policy, facts):
        assert not decision.allowed, decision.reasons
        assert any(r.rule == "jurisdiction" and r.effect == "deny" for r in decision.reasons)


@settings(max_examples=150, deadline=None)
@given(facts=model_facts(), policy=policies())
def test_decision_invariants(facts: ModelFacts, policy: LicensePolicy) -> None:
    decision = decide(facts, policy, today=TODAY)
    assert decision == decide(facts, policy, today=TODAY)  # deterministic
    assert decision.allowed is (decision.decision != "Denied")
    assert (decision.decision == "Denied") is any(r.effect == "deny" for r in decision.reasons)
    assert all(r.fact for r in decision.reasons)
    status = decision.to_status()
    assert status.allowed is decision.allowed
    warn = policy.model_copy(update={"spec": policy.spec.model_copy(update={"mode": "Warn"})})
    assert decide(facts, warn, today=TODAY).allowed
